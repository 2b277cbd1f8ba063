"""apply_voi against pydicom's apply_voi_lut(apply_modality_lut(...)) on a table of cases;
the torch twin against apply_voi; the min-max fallback; the header fields."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from dicom_cases import make_dataset, phantom, real, write
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from rsna_pkg.dicom import apply_voi, apply_voi_torch, read_header
from rsna_pkg.dicom.header import DicomHeader, VoiLut, header_from_dataset
from rsna_pkg.dicom.voi import (
    fallback_stride,
    lut_problem,
    oriented_values,
    robust_range,
    voi_plan,
)
from rsna_pkg.errors import DicomError


def expected(ds: Dataset, stored: np.ndarray, index: int = 0) -> np.ndarray:
    """pydicom's output rescaled from its output range to [0, 1], MONOCHROME1 inverted."""
    out = apply_voi_lut(apply_modality_lut(stored, ds), ds, index).astype(np.float64)
    if "VOILUTSequence" in ds:
        lo, hi = 0.0, 2.0 ** ds.VOILUTSequence[index].LUTDescriptor[2] - 1
    else:
        bits = ds.BitsStored
        lo, hi = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if ds.PixelRepresentation
            else (0, 2**bits - 1)
        )
        if "RescaleSlope" in ds:
            lo, hi = (v * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for v in (lo, hi))
    y = (out - lo) / (hi - lo)
    return 1.0 - y if ds.PhotometricInterpretation == "MONOCHROME1" else y


def lut_item(first: int, bits: int, data: list[int]) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data
    return item


RAMP12 = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # every 12-bit value
SIGNED = np.arange(-2048, 2048, dtype=np.int16).reshape(64, 64)

CASES: dict[str, tuple[np.ndarray, dict]] = {
    "linear": (RAMP12, dict(WindowCenter=2000, WindowWidth=1500)),
    "linear exact": (RAMP12, dict(WindowCenter=2000.5, WindowWidth=1499.5, VOILUTFunction="LINEAR_EXACT")),
    "sigmoid": (RAMP12, dict(WindowCenter=1800, WindowWidth=900, VOILUTFunction="SIGMOID")),
    "width 1": (RAMP12, dict(WindowCenter=1000, WindowWidth=1)),
    # the step's own value: c - 0.5 = 1000 is a stored value, and goes to y_min (x <= c)
    "width 1 at a stored value": (RAMP12, dict(WindowCenter=1000.5, WindowWidth=1)),
    # width 2 (w - 1 = 1) on quarter values: a ramp, not a step
    "width 2 rescaled": (RAMP12, dict(WindowCenter=500, WindowWidth=2, RescaleSlope=0.25, RescaleIntercept=0)),
    "fractional window": (RAMP12, dict(WindowCenter=2047.37, WindowWidth=4093.9)),
    "monochrome1": (RAMP12, dict(WindowCenter=2000, WindowWidth=1500, photometric="MONOCHROME1")),
    "mono1 sigmoid": (RAMP12, dict(WindowCenter=1500, WindowWidth=3000, VOILUTFunction="SIGMOID", photometric="MONOCHROME1")),
    "rescale": (RAMP12, dict(WindowCenter=40, WindowWidth=400, RescaleSlope=1, RescaleIntercept=-1024)),
    "rescale slope 2": (RAMP12, dict(WindowCenter=3000, WindowWidth=5000, RescaleSlope=2, RescaleIntercept=-10)),
    "rescale slope only": (RAMP12, dict(WindowCenter=3000, WindowWidth=5000, RescaleSlope=2, RescaleIntercept=0)),
    "rescale intercept 1 only": (RAMP12, dict(WindowCenter=30, WindowWidth=40, RescaleSlope=1, RescaleIntercept=1)),
    "signed": (SIGNED, dict(signed=True, WindowCenter=-100, WindowWidth=2500)),
    "multi index0": (RAMP12, dict(WindowCenter=[2000, 1000], WindowWidth=[1500, 400])),
    "multi index1": (RAMP12, dict(WindowCenter=[2000, 1000], WindowWidth=[1500, 400], index=1)),
    "single, index 1": (RAMP12, dict(WindowCenter=2000, WindowWidth=1500, index=1)),
    "lut": (RAMP12, dict(lut=(100, 12, list(range(0, 4096, 2))))),
    # pydicom indexes an 8-bit LUT through a uint8 array (wraps above 255): keep inputs < 256
    "lut 8 bit mono1": (RAMP12 // 16, dict(lut=(10, 8, [255 - v for v in range(200)]), photometric="MONOCHROME1")),
    "lut over window": (RAMP12, dict(WindowCenter=5, WindowWidth=10, lut=(0, 16, list(range(0, 65536, 16))))),
}  # fmt: skip


def build(name: str) -> tuple[Dataset, np.ndarray, int]:
    stored, spec = CASES[name]
    spec = dict(spec)
    index = spec.pop("index", 0)
    lut = spec.pop("lut", None)
    ds = make_dataset(stored, signed=spec.pop("signed", False), bits_stored=12,
                      photometric=spec.pop("photometric", "MONOCHROME2"), **spec)  # fmt: skip
    if lut is not None:
        ds.VOILUTSequence = [lut_item(*lut)]
    return ds, stored, index


@pytest.mark.parametrize("name", list(CASES))
def test_apply_voi_matches_pydicom(name: str) -> None:
    ds, stored, index = build(name)
    header = header_from_dataset(ds, f"{name}.dcm")
    got = apply_voi(stored, header, index)
    assert got.dtype == np.float32 and got.shape == stored.shape
    assert got.min() >= 0.0 and got.max() <= 1.0
    np.testing.assert_allclose(got, expected(ds, stored, index), atol=2e-6, rtol=0)
    twin = apply_voi_torch(torch.from_numpy(stored.astype(np.int32)), header, index)
    assert twin.dtype == torch.float32
    np.testing.assert_allclose(twin.numpy(), got, atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", [*CASES, "minmax", "minmax mono1"])
def test_mirrored_windowing_equals_the_mirrored_window(name: str) -> None:
    """``mirror=True`` (preprocessing puts the breast on the left in the same pass) gives
    the mirror of the unmirrored result bit for bit, on a crop view whose odd width puts
    the min-max fallback's subsample on other columns once mirrored."""
    if name.startswith("minmax"):
        stored = phantom(900, 611, bits=12)
        ds = make_dataset(stored, photometric="MONOCHROME1" if "mono1" in name else "MONOCHROME2")
        index = 0
    else:
        ds, stored, index = build(name)
    header = header_from_dataset(ds, f"{name}.dcm")
    view = stored[3:-2, 1:-4]  # a crop, as preprocessing passes it
    got = apply_voi(view, header, index, mirror=True)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, apply_voi(view, header, index)[:, ::-1])
    if name.startswith("minmax"):
        assert fallback_stride(view.shape) > 1 and (view.shape[1] - 1) % 2  # other columns


def test_vlut_file_from_header_alone() -> None:
    path = real("vlut_04")
    ds = pydicom.dcmread(path)
    header = read_header(path)
    assert header.has_voi_lut_sequence and voi_plan(header).kind == "lut"
    got = apply_voi(ds.pixel_array, header)
    np.testing.assert_allclose(got, expected(ds, ds.pixel_array), atol=1e-6)


@pytest.mark.parametrize("name", ["MR2_UNCR", "RG1_UNCR", "693_UNCR", "J2K_pixelrep_mismatch"])
def test_real_files_match_pydicom(name: str) -> None:
    ds = pydicom.dcmread(real(name))
    header = read_header(real(name))
    stored = ds.pixel_array
    index = len(header.window_centers) - 1  # the last window, when there are several
    np.testing.assert_allclose(apply_voi(stored, header, index), expected(ds, stored, index),
                               atol=2e-6)  # fmt: skip


def test_minmax_fallback_ignores_background_and_labels() -> None:
    img = phantom(120, 80, bits=12).astype(np.uint16)
    img[:, 60:] = 0  # flat background
    img[0:4, 0:4] = 4095  # saturated label
    ds = make_dataset(img)
    header = header_from_dataset(ds, "x.dcm")
    assert voi_plan(header).kind == "minmax"
    out = apply_voi(img, header)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.all(out[:, 60:] == 0.0)
    tissue = out[img > 1000]
    assert 0.2 < float(np.median(tissue)) < 0.95  # window spread over the tissue, not the label
    mono1 = header_from_dataset(make_dataset(img, photometric="MONOCHROME1"), "y.dcm")
    np.testing.assert_allclose(apply_voi(img, mono1), 1.0 - out, atol=1e-7)
    twin = apply_voi_torch(torch.from_numpy(img.astype(np.int32)), header)
    np.testing.assert_allclose(twin.numpy(), out, atol=1e-5)


def test_fallback_constant_image_is_zero() -> None:
    img = np.full((16, 16), 700, dtype=np.uint16)
    header = header_from_dataset(make_dataset(img), "c.dcm")
    assert np.all(apply_voi(img, header) == 0.0)


@pytest.mark.parametrize(
    ("tags", "index", "reason"),
    [
        (dict(WindowCenter=[1, 2], WindowWidth=[10, 20]), 2, "no window number 2"),
        (dict(WindowCenter=10, WindowWidth=0.5), 0, "width 0.5 < 1"),
        (dict(WindowCenter=10, WindowWidth=0, VOILUTFunction="SIGMOID"), 0, "<= 0"),
        (dict(WindowCenter=10, WindowWidth=5, VOILUTFunction="CUBIC"), 0, "CUBIC"),
    ],
)
def test_bad_voi_raises(tags: dict, index: int, reason: str) -> None:
    header = header_from_dataset(make_dataset(RAMP12, **tags), "bad.dcm")
    with pytest.raises(DicomError, match=reason):
        apply_voi(RAMP12, header, index)


def test_header_fields_and_speed(tmp_path: Path) -> None:
    ds = make_dataset(RAMP12, WindowCenter=[2000, 1000], WindowWidth=[1500, 400],
                      WindowCenterWidthExplanation=["A", "B"], VOILUTFunction="SIGMOID",
                      RescaleSlope=1, RescaleIntercept=0, ImageLaterality="R",
                      ViewPosition="MLO", PatientID="10006")  # fmt: skip
    path = write(ds, tmp_path / "462822612.dcm")
    h = read_header(path)
    assert isinstance(h, DicomHeader)
    assert (h.rows, h.columns, h.bits_allocated, h.bits_stored) == (64, 64, 16, 12)
    assert (h.pixel_representation, h.photometric) == (0, "MONOCHROME2")
    assert h.window_centers == (2000.0, 1000.0) and h.window_widths == (1500.0, 400.0)
    assert h.window_explanations == ("A", "B") and h.voi_lut_function == "SIGMOID"
    assert not h.has_voi_lut_sequence and h.has_rescale
    assert (h.laterality, h.view, h.patient_id, h.image_id) == ("R", "MLO", "10006", "462822612")
    assert h.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    with pytest.raises(AttributeError):
        h.rows = 5  # type: ignore[misc]
    # its speed is a figure `rsna bench decode` prints ("header read: ... ms/file")


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_oriented_values_are_the_modality_values_bright_dense(photometric: str) -> None:
    """No window: RescaleSlope/Intercept applied (pydicom's modality LUT), negated for
    MONOCHROME1 so that dense tissue is the larger value either way."""
    ds = make_dataset(RAMP12, photometric=photometric, RescaleSlope=2, RescaleIntercept=-100)
    out = oriented_values(RAMP12, header_from_dataset(ds, "o.dcm"))
    modality = apply_modality_lut(RAMP12, ds).astype(np.float64)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, modality if photometric == "MONOCHROME2" else -modality)
    plain = make_dataset(RAMP12, photometric=photometric)
    raw = oriented_values(RAMP12, header_from_dataset(plain, "p.dcm"))
    np.testing.assert_array_equal(
        raw, RAMP12 if photometric == "MONOCHROME2" else -RAMP12.astype(float)
    )


@pytest.mark.parametrize(
    ("lut", "problem"),
    [
        (VoiLut(first_mapped=0, bits=12, data=(), entries=0), "LUT Data is empty"),
        (VoiLut(first_mapped=0, bits=12, data=(1, 2, 3), entries=4),
         "LUT Descriptor declares 4 entries, LUT Data holds 3"),
        (VoiLut(first_mapped=0, bits=0, data=(1, 2), entries=2), "LUT Descriptor bits 0 outside 1..16"),
        (VoiLut(first_mapped=0, bits=17, data=(1, 2), entries=2), "LUT Descriptor bits 17 outside 1..16"),
        (VoiLut(first_mapped=0, bits=16, data=(1, 2), entries=2), ""),
        (VoiLut(first_mapped=0, bits=1, data=(0, 1), entries=2), ""),
    ],
)  # fmt: skip
def test_lut_problem_names_what_c_11_2_1_1_forbids(lut: VoiLut, problem: str) -> None:
    assert lut_problem(lut) == problem


@pytest.mark.parametrize(
    ("shape", "stride"),
    [((512, 512), 1), ((513, 512), 2), ((64, 64), 1), ((4096, 3328), 8), ((1, 1), 1)],
)
def test_minmax_fallback_samples_about_2_18_pixels(shape: tuple[int, int], stride: int) -> None:
    """ceil(sqrt(pixels / 2**18)), at least 1: 512x512 is read whole, one pixel more is not."""
    assert fallback_stride(shape) == stride


def lut_sequence(entries: int, data: list[int]) -> Dataset:
    item = lut_item(0, 12, data)
    item.LUTDescriptor = [entries, 0, 12]
    return make_dataset(RAMP12, VOILUTSequence=[item])


NAN, INF = float("nan"), float("inf")
WINDOW = make_dataset(RAMP12, WindowCenter=2048, WindowWidth=400)
# (dataset, header fields replaced, index) -> the one-line reason, exactly
REFUSALS: dict[str, tuple[Dataset, dict, int, str]] = {
    "lut index past the sequence": (lut_sequence(4, [1, 2, 3, 4]), {}, 1, "no VOI LUT number 1"),
    "lut shorter than declared": (lut_sequence(4, [1, 2, 3]), {}, 0,
                                  "VOI LUT 0: LUT Descriptor declares 4 entries, LUT Data holds 3"),
    "window index past both": (make_dataset(RAMP12, WindowCenter=[1, 2], WindowWidth=[10, 20]), {},
                               2, "no window number 2 (has 2)"),
    "center inf": (WINDOW, {"window_centers": (INF,)}, 0, "window center inf / width 400.0 not finite"),
    "width nan": (WINDOW, {"window_widths": (NAN,)}, 0, "window center 2048.0 / width nan not finite"),
    "linear width under 1": (make_dataset(RAMP12, WindowCenter=10, WindowWidth=0.5), {}, 0,
                             "LINEAR window width 0.5 < 1"),
    "sigmoid width 0": (make_dataset(RAMP12, WindowCenter=10, WindowWidth=0, VOILUTFunction="SIGMOID"),
                        {}, 0, "SIGMOID window width 0.0 <= 0"),
    "linear exact width -1": (make_dataset(RAMP12, WindowCenter=10, WindowWidth=-1,
                                           VOILUTFunction="LINEAR_EXACT"), {}, 0,
                              "LINEAR_EXACT window width -1.0 <= 0"),
    "cubic": (make_dataset(RAMP12, WindowCenter=10, WindowWidth=5, VOILUTFunction="CUBIC"), {}, 0,
              "unsupported VOILUTFunction 'CUBIC'"),
    "slope nan": (WINDOW, {"rescale_slope": NAN}, 0, "RescaleSlope/Intercept not finite"),
    "intercept inf": (WINDOW, {"rescale_intercept": INF}, 0, "RescaleSlope/Intercept not finite"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(REFUSALS))
def test_voi_refusals_name_the_file_and_the_reason(name: str) -> None:
    ds, change, index, reason = REFUSALS[name]
    header = replace(header_from_dataset(ds, "bad.dcm"), **change)
    with pytest.raises(DicomError) as info:
        voi_plan(header, index)
    assert (info.value.path, info.value.reason) == ("bad.dcm", reason)


def test_voi_accepts_the_edges_it_should() -> None:
    """A window center without a width is no window (min-max); LINEAR_EXACT and SIGMOID take
    any positive width, below 1 too; the last LUT of a sequence is usable."""
    centre_only = header_from_dataset(make_dataset(RAMP12, WindowCenter=2048), "c.dcm")
    assert voi_plan(centre_only).kind == "minmax"
    for func in ("LINEAR_EXACT", "SIGMOID"):
        ds = make_dataset(RAMP12, WindowCenter=10, WindowWidth=0.5, VOILUTFunction=func)
        plan = voi_plan(header_from_dataset(ds, "e.dcm"))
        assert (plan.kind, plan.center, plan.width) == (func, 10.0, 0.5)
    two = make_dataset(RAMP12, VOILUTSequence=[lut_item(0, 12, [1, 2]), lut_item(5, 12, [3, 4])])
    plan = voi_plan(header_from_dataset(two, "l.dcm"), 1)
    assert (plan.kind, plan.lut, plan.lut_first) == ("lut", (3, 4), 5)


def test_lut_problem_with_no_entries_declared() -> None:
    lut = VoiLut(first_mapped=0, bits=12, data=(1, 2), entries=0)
    assert lut_problem(lut) == "LUT Descriptor declares 0 entries, LUT Data holds 2"


def test_robust_range_rule() -> None:
    """Percentiles 0.5 / 99.5 of the pixels strictly between the minimum and the maximum,
    on the every-s-th-row-and-column subsample; the extremes when fewer than two pixels
    are in between or all of them are equal."""
    assert robust_range(np.array([[0.0, 5.0], [7.0, 10.0]])) == pytest.approx(
        tuple(np.percentile([5.0, 7.0], (0.5, 99.5)))
    )
    assert robust_range(np.array([[0.0, 5.0], [5.0, 10.0]])) == (0.0, 10.0)
    assert robust_range(np.array([[0.0, 5.0], [10.0, 10.0]])) == (0.0, 10.0)
    rng = np.random.default_rng(0)
    big = rng.uniform(100.0, 200.0, (1024, 1024))  # stride 2: only [::2, ::2] is read
    big[::2, ::2] = rng.uniform(10.0, 20.0, (512, 512))
    sample = big[::2, ::2].ravel()
    inner = sample[(sample > sample.min()) & (sample < sample.max())]
    assert robust_range(big) == pytest.approx(tuple(np.percentile(inner, (0.5, 99.5))))


def test_flat_image_without_window_is_zero_of_its_shape() -> None:
    img = np.full((12, 7), 300, dtype=np.uint16)
    out = apply_voi(img, header_from_dataset(make_dataset(img), "f.dcm"))
    assert out.shape == (12, 7) and out.dtype == np.float32 and not out.any()
