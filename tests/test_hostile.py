"""Hostile inputs: lying DICOM headers, lying CSVs, bad model files, interruptions and a
full disk. For every case ``rsna preprocess`` and ``rsna infer`` finish without a
traceback, each bad input is reported on one line naming its file and the reason, and
inference still writes every prediction_id of sample_submission.csv, in order, in [0, 1].

The DICOM cases share one dataset (the synthetic test split plus one hostile file per
case, each its own patient) and three runs of it: preprocess with reduced decoding,
preprocess with full decoding (the dicomsdl route), and an inference ensemble of one
reduced and one full-resolution checkpoint.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import torch
from dicom_bombs import (
    deflate_bomb,
    j2k_fragment_bomb,
    many_fragments_bomb,
    native_length_bomb,
    private_element_bomb,
)
from dicom_cases import J2K, LJPEG, encapsulated, make_dataset, phantom, write
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless
from test_infer import make_checkpoint

import rsna_pkg
from rsna_pkg import cli
from rsna_pkg import outputs as files
from rsna_pkg.dicom import decode, read_header
from rsna_pkg.dicom.header import VoiLut, header_from_dataset
from rsna_pkg.dicom.voi import lut_problem, voi_plan
from rsna_pkg.errors import DicomError, InputError
from rsna_pkg.infer.command import EXIT_ALL_FALLBACK
from rsna_pkg.models.checkpoint import load_checkpoint, read_checkpoint
from rsna_pkg.preprocess import PreprocessConfig
from rsna_pkg.preprocess.pipeline import preprocess_stored
from rsna_pkg.preprocess.runner import MANIFEST_NAME, journal_path

SIZE = ("64", "32")
REPO = Path(rsna_pkg.__file__).resolve().parent.parent


# -- running the commands ---------------------------------------------------------------


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def lines_naming(self, *parts: str) -> list[str]:
        return [line for line in self.text.splitlines() if all(p in line for p in parts)]


def rsna(*argv: object) -> Run:
    """``rsna ARGV`` in this process, its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return Run(rc, out.getvalue(), err.getvalue())


def preprocess(data: Path, out: Path, *extra: object) -> Run:
    return rsna("preprocess", "--data", data, "--split", "test", "--out", out, "--size", *SIZE,
                "--quiet", "--preview", "0", *extra)  # fmt: skip


def infer(data: Path, models: list[Path], out: Path, *extra: object) -> Run:
    return rsna("infer", "--data", data, "--model", *models, "--out", out, "--device", "cpu",
                "--threads", "1", "--threshold", "none", "--report", out.with_suffix(".json"),
                *extra)  # fmt: skip


def assert_clean(run: Run) -> None:
    assert "Traceback" not in run.text, run.text[-3000:]


def assert_full_submission(data: Path, out: Path) -> pd.Series:
    """Every sample_submission.csv id, in its order, once, with a value in [0, 1]."""
    sub = pd.read_csv(out, dtype={"prediction_id": str})
    sample = pd.read_csv(data / "sample_submission.csv", dtype={"prediction_id": str})
    assert sub.columns.tolist() == ["prediction_id", "cancer"]
    assert sub["prediction_id"].tolist()[: len(sample)] == sample["prediction_id"].tolist()
    assert sub["prediction_id"].is_unique
    values = sub["cancer"].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    return sub.set_index("prediction_id")["cancer"]


def copy_test_split(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("test.csv", "sample_submission.csv", "train.csv"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "test_images", dst / "test_images")
    return dst


@pytest.fixture(scope="module")
def models(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hostile_ckpt")
    train = synth_data / "train.csv"
    return {
        "reduced": make_checkpoint(out / "reduced.pt", train, (64, 32), seed=0),
        "full": make_checkpoint(out / "full.pt", train, (64, 32), seed=1, reduce=False),
        "other_size": make_checkpoint(out / "other.pt", train, (96, 48), seed=2),
    }


# -- hostile DICOM files ----------------------------------------------------------------

IMG = phantom(96, 64, bits=12)


def j2k_frame(img: np.ndarray = IMG) -> bytes:
    return bytes(imagecodecs.jpeg2k_encode(img, level=0, codecformat="JP2", reversible=True,
                                           bitspersample=12))  # fmt: skip


def native(**tags: Any) -> Dataset:
    return make_dataset(IMG, **tags)


def with_tags(ds: Dataset, **tags: Any) -> Dataset:
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def multiframe() -> Dataset:
    ds = native(NumberOfFrames=2)
    ds.PixelData = np.concatenate([IMG, IMG]).astype(np.uint16).tobytes()
    return ds


def bits32(data_bits: int) -> Dataset:
    ds = native(BitsAllocated=32, BitsStored=32, HighBit=31)
    wide = IMG.astype(np.uint32) << 8
    ds.PixelData = wide.tobytes() if data_bits == 32 else IMG.tobytes()
    return ds


def signed() -> Dataset:
    return make_dataset(IMG.astype(np.int32) - 2048, signed=True)


def rgb() -> Dataset:
    ds = native(PhotometricInterpretation="RGB", SamplesPerPixel=3, PlanarConfiguration=0,
                BitsAllocated=8, BitsStored=8, HighBit=7)  # fmt: skip
    ds.PixelData = np.repeat((IMG >> 4).astype(np.uint8)[..., None], 3, axis=2).tobytes()
    return ds


def palette() -> Dataset:
    return native(PhotometricInterpretation="PALETTE COLOR")


def rle() -> Dataset:
    ds = native()
    ds.compress(RLELossless)
    return ds


IMG8 = (IMG >> 4).astype(np.uint8)
JPEG_BASELINE_FRAME = bytes(imagecodecs.jpeg8_encode(IMG8, level=95))


def jpeg_baseline() -> Dataset:
    ds = encapsulated(IMG8, JPEG_BASELINE_FRAME, "1.2.840.10008.1.2.4.50", 8)
    return with_tags(ds, BitsAllocated=8, BitsStored=8, HighBit=7)


def jpeg_ls() -> Dataset:
    return encapsulated(IMG, bytes(imagecodecs.jpegls_encode(IMG)), "1.2.840.10008.1.2.4.80", 12)


def lut_sequence(entries: int, data_words: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [entries, 0, 12]
    item.LUTData = np.linspace(0, 4095, data_words).astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    return native(VOILUTSequence=[item])


# case -> (dataset builder, None when the image must decode, else the reason's pattern)
DICOM_CASES: dict[str, tuple[Callable[[], Dataset], str | None]] = {
    "rows_columns_60000_native": (lambda: native(Rows=60000, Columns=60000),
                                  r"60000x60000 exceeds"),
    "rows_columns_60000_j2k": (lambda: with_tags(encapsulated(IMG, j2k_frame(), J2K, 12),
                                                 Rows=60000, Columns=60000), r"60000x60000 exceeds"),
    "header_smaller_than_jpeg_lossless": (
        lambda: with_tags(encapsulated(IMG, bytes(imagecodecs.ljpeg_encode(IMG, bitspersample=12)),
                                       LJPEG, 12), Rows=50, Columns=40),
        r"codestream is 96x64 pixels but the header says Rows x Columns = 50x40"),
    "header_larger_than_j2k": (
        lambda: with_tags(encapsulated(IMG, j2k_frame(), J2K, 12), Rows=4000, Columns=3000),
        r"codestream is 96x64 pixels but the header says Rows x Columns = 4000x3000"),
    "header_smaller_than_rle": (lambda: with_tags(rle(), Rows=50, Columns=40),
                                r"RLE frame holds more than the 4000 bytes of the header's "
                                r"Rows x Columns = 50x40"),
    "header_larger_than_rle": (lambda: with_tags(rle(), Rows=100),
                               r"RLE frame decodes to 12288 bytes, the header's Rows x Columns "
                               r"= 100x64 needs 12800"),
    "number_of_frames_2": (multiframe, r"NumberOfFrames=2: multi-frame"),
    "bits_allocated_32": (lambda: bits32(32), None),
    "bits_allocated_32_over_16_bit_data": (lambda: bits32(16), r"less than expected"),
    "signed_pixel_representation": (signed, None),
    "bits_stored_above_allocated": (lambda: native(BitsStored=20, HighBit=19),
                                    r"BitsStored=20 outside 1..BitsAllocated=16"),
    "rgb": (rgb, r"SamplesPerPixel=3 \(photometric RGB\)"),
    "palette_color": (palette, r"photometric PALETTE COLOR is not grayscale"),
    "rle_lossless": (rle, None),
    "jpeg_baseline": (jpeg_baseline, None),
    "jpeg_ls": (jpeg_ls, None),
    "transfer_syntax_no_backend": (
        lambda: encapsulated(IMG, j2k_frame(), "1.2.840.10008.1.2.4.100", 12),
        r"unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100"),
    "window_width_0": (lambda: native(WindowCenter=2048, WindowWidth=0),
                       r"LINEAR window width 0.0 < 1"),
    "window_width_negative": (lambda: native(WindowCenter=2048, WindowWidth=-400),
                              r"LINEAR window width -400.0 < 1"),
    "sigmoid_huge_width": (lambda: native(WindowCenter=2048, WindowWidth=1e30,
                                          VOILUTFunction="SIGMOID"), None),
    "voi_lut_sequence_wrong_length": (lambda: lut_sequence(4096, 10),
                                      r"VOI LUT 0: LUT Descriptor declares 4096 entries, "
                                      r"LUT Data holds 10"),
}  # fmt: skip
# Header values refused from the header alone, each rule on its own (tested file by file,
# not in the shared runs, whose logs show the first 20 failures)
HEADER_CASES: dict[str, tuple[Callable[[], Dataset], str]] = {
    # a side over 16384 px in 1.3 Mpx; 2**26 px exceeded with sides of 9000
    "side_over_16384_alone": (lambda: native(Rows=20000, Columns=64),
                              r"Rows x Columns = 20000x64 exceeds the 16384 px side"),
    "pixels_over_2_26_alone": (lambda: native(Rows=9000, Columns=9000),
                               r"Rows x Columns = 9000x9000 exceeds the 16384 px side / "
                               r"67108864 px limit"),
    "bits_allocated_12": (lambda: native(BitsAllocated=12),
                          r"BitsAllocated=12, expected 8, 16 or 32"),
    "bits_allocated_24_j2k": (lambda: with_tags(encapsulated(IMG, j2k_frame(), J2K, 12),
                                                BitsAllocated=24),
                              r"BitsAllocated=24, expected 8, 16 or 32"),
    "pixel_representation_2": (lambda: native(PixelRepresentation=2),
                               r"PixelRepresentation=2, expected 0 or 1"),
}  # fmt: skip
# The stored values each decodable case must give, as the test wrote them; for the lossy
# JPEG, as libjpeg-turbo (imagecodecs) decodes the frame, within 1: pydicom's plugin
# (pylibjpeg-libjpeg) rounds its IDCT otherwise on about 3 % of the pixels, which JPEG's
# accuracy rule allows between conforming decoders. case -> (values, tolerance)
DECODED_TRUTH: dict[str, tuple[Callable[[], np.ndarray], int]] = {
    "bits_allocated_32": (lambda: IMG.astype(np.uint32) << 8, 0),
    "signed_pixel_representation": (lambda: (IMG.astype(np.int32) - 2048).astype(np.int16), 0),
    "rle_lossless": (lambda: IMG, 0),
    "jpeg_baseline": (lambda: np.asarray(imagecodecs.jpeg8_decode(JPEG_BASELINE_FRAME)), 1),
    "jpeg_ls": (lambda: IMG, 0),
    "sigmoid_huge_width": (lambda: IMG, 0),
}
# Bombs under the pixel limit (tests/dicom_bombs.py): case -> (writer, reason's pattern)
BOMB_CASES: dict[str, tuple[Callable[[np.ndarray, Path], Path], str]] = {
    "deflate_bomb": (deflate_bomb, r"PixelData length 1500000000 bytes exceeds the 12288 the "
                                   r"header allows \(Rows x Columns = 96x64"),
    "native_length_bomb": (native_length_bomb, r"PixelData length 1500000000 bytes exceeds the "
                                               r"12288 the header allows"),
    "j2k_fragment_bomb": (j2k_fragment_bomb, r"encapsulated PixelData of at least 1500000016 "
                                             r"bytes exceeds the 1073152 the header allows"),
    "many_fragments_bomb": (many_fragments_bomb, r"encapsulated PixelData of at least \d+ bytes "
                                                 r"exceeds the 1073152 the header allows"),
}  # fmt: skip
# every hostile file of the shared runs: case -> (writer, None or the reason's pattern)
HOSTILE_FILES: dict[str, tuple[Callable[[Path], Path], str | None]] = {
    **{case: (lambda path, build=build: write(build(), path), pattern)
       for case, (build, pattern) in DICOM_CASES.items()},
    **{case: (lambda path, bomb=bomb: bomb(IMG, path), pattern)
       for case, (bomb, pattern) in BOMB_CASES.items()},
}  # fmt: skip
FIRST_HOSTILE_PATIENT = 900_000


@dataclass
class HostileRuns:
    data: Path
    files: dict[str, tuple[int, int, Path]]  # case -> (patient_id, image_id, path)
    reduced: Run
    full: Run
    infer: Run
    manifests: dict[str, pd.DataFrame]
    report: dict[str, Any]
    submission: Path


@pytest.fixture(scope="module")
def hostile(synth_data: Path, models: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> HostileRuns:  # fmt: skip
    root = tmp_path_factory.mktemp("hostile_dicom")
    data = copy_test_split(synth_data, root / "data")
    test = pd.read_csv(data / "test.csv")
    rows, made = [], {}
    for k, (case, (writer, _)) in enumerate(HOSTILE_FILES.items()):
        pid, iid = FIRST_HOSTILE_PATIENT + k, 10 * (FIRST_HOSTILE_PATIENT + k)
        path = data / "test_images" / str(pid) / f"{iid}.dcm"
        path.parent.mkdir()
        writer(path)
        made[case] = (pid, iid, path)
        rows.append({**test.iloc[0].to_dict(), "patient_id": pid, "image_id": iid,
                     "laterality": "L", "prediction_id": f"{pid}_L"})  # fmt: skip
    pd.concat([test, pd.DataFrame(rows)]).to_csv(data / "test.csv", index=False)
    sample = pd.read_csv(data / "sample_submission.csv", dtype={"prediction_id": str})
    extra = pd.DataFrame({"prediction_id": [r["prediction_id"] for r in rows], "cancer": 0.5})
    pd.concat([extra[::-1], sample]).to_csv(data / "sample_submission.csv", index=False)

    reduced = preprocess(data, root / "pre_reduced", "--workers", "2")
    full = preprocess(data, root / "pre_full", "--no-reduce")
    sub = root / "submission.csv"
    run = infer(data, [models["reduced"], models["full"]], sub, "--workers", "2")
    manifests = {
        name: pd.read_csv(root / f"pre_{name}" / MANIFEST_NAME, keep_default_na=False)
        for name in ("reduced", "full")
    }
    report = json.loads(sub.with_suffix(".json").read_text())
    return HostileRuns(data, made, reduced, full, run, manifests, report, sub)


def test_hostile_runs_finish_and_write_every_prediction(hostile: HostileRuns) -> None:
    for run in (hostile.reduced, hostile.full):
        assert run.rc == 1  # some files failed; the run finished
        assert_clean(run)
    assert hostile.infer.rc == 0
    assert_clean(hostile.infer)
    assert_full_submission(hostile.data, hostile.submission)
    expected_failures = {iid for case, (_, iid, _) in hostile.files.items()
                         if HOSTILE_FILES[case][1] is not None}  # fmt: skip
    assert {f["image_id"] for f in hostile.report["failures"]} == expected_failures
    # every line of the log that reports a failed image names the file and the reason
    failed_lines = [ln for ln in hostile.infer.err.splitlines() if ln.startswith("infer: failed")]
    assert len(failed_lines) == len(expected_failures)


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_dicom(case: str, hostile: HostileRuns) -> None:
    _, iid, path = hostile.files[case]
    pattern = HOSTILE_FILES[case][1]
    failures = {f["image_id"]: f for f in hostile.report["failures"]}
    for name, run in (("reduced", hostile.reduced), ("full", hostile.full)):
        row = hostile.manifests[name].set_index("image_id").loc[iid]
        if pattern is None:
            assert row["status"] == "ok", (name, row["reason"])
            with Image.open(hostile.data.parent / f"pre_{name}" / row["png"]) as im:
                arr = np.asarray(im)
            # exactly the pixels of the same preprocessing on the values the test wrote
            out = hostile.data.parent / f"pre_{name}"
            cfg = PreprocessConfig.from_dict(
                json.loads((out / "preprocess_config.json").read_text())
            )
            make_truth, tolerance = DECODED_TRUTH[case]
            truth, stored = make_truth(), decode(path)
            assert stored.dtype == truth.dtype, (name, stored.dtype)
            np.testing.assert_allclose(stored, truth, rtol=0, atol=tolerance, err_msg=name)
            # the PNG: exactly the same preprocessing of those values (the lossy JPEG's as
            # decoded, since its window stretches a difference of 1 to 2 grey levels)
            values = truth if tolerance == 0 else stored
            expected, _, _ = preprocess_stored(values, read_header(path), cfg, {})
            np.testing.assert_array_equal(arr, expected, err_msg=name)
            if case != "sigmoid_huge_width":  # flat by design, see the test below
                assert arr[:, :12].mean() > arr[:, 20:].mean() + 20, name  # breast on the left
        else:
            assert row["status"] == "error", name
            assert pd.Series([row["reason"]]).str.contains(pattern).all(), (name, row["reason"])
            lines = run.lines_naming(str(path), str(row["reason"]))
            assert len(lines) == 1, (name, run.out)  # "  error: <file>: <reason>"
    if pattern is None:
        assert iid not in failures
    else:
        failure = failures[iid]
        assert failure["path"] == str(path)
        assert pd.Series([failure["reason"]]).str.contains(pattern).all(), failure["reason"]
        assert "\n" not in failure["reason"]
        line = f"infer: failed {path}: {failure['reason']}"
        assert line in hostile.infer.err.splitlines()


def test_sigmoid_with_a_huge_width_is_flat_gray_not_nan(hostile: HostileRuns) -> None:
    """Already right: y = 1 / (1 + exp(-4 (x - c) / 1e30)) = 0.5 for every pixel."""
    _, iid, _ = hostile.files["sigmoid_huge_width"]
    row = hostile.manifests["full"].set_index("image_id").loc[iid]
    with Image.open(hostile.data.parent / "pre_full" / row["png"]) as im:
        arr = np.asarray(im)
    assert set(np.unique(arr).tolist()) <= {0, 128}  # rint(0.5 x 255), plus the padding
    # the image itself, not an all-black file: the breast's box (81x40 px) fills the 64x32
    # output, so (nearly) every pixel is the mid-gray
    assert (arr == 128).mean() > 0.9, np.unique(arr, return_counts=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(window_widths=(float("nan"),)), "not finite"),
        (dict(window_centers=(float("inf"),)), "not finite"),
        (dict(rescale_slope=float("nan")), "RescaleSlope/Intercept not finite"),
    ],
)
def test_non_finite_window_values_are_refused(change: dict, reason: str) -> None:
    header = replace(header_from_dataset(native(WindowCenter=2048, WindowWidth=400), "w.dcm"),
                     **change)  # fmt: skip
    with pytest.raises(DicomError, match=reason):
        voi_plan(header)


def test_lut_data_longer_than_declared_is_cut_and_empty_is_ignored(tmp_path: Path) -> None:
    longer = read_header(write(lut_sequence(16, 20), tmp_path / "long.dcm"))
    assert len(longer.voi_luts[0].data) == 16 and voi_plan(longer).kind == "lut"
    empty = read_header(write(lut_sequence(16, 0), tmp_path / "empty.dcm"))
    assert empty.voi_luts == () and voi_plan(empty).kind == "minmax"  # ignored, as pydicom
    assert lut_problem(VoiLut(first_mapped=0, bits=12, data=(), entries=0)) == "LUT Data is empty"
    assert "bits 20" in lut_problem(VoiLut(first_mapped=0, bits=20, data=(1, 2), entries=2))


def test_codestream_header_checks_cover_every_dicomsdl_route(tmp_path: Path) -> None:
    """Before the fix, dicomsdl aborted the whole process (heap corruption, exit 134) on
    a header smaller than its codestream and returned a padded image for a larger one;
    now each backend that trusts the header gets a file only after the check."""
    from rsna_pkg.dicom import decode

    small = DICOM_CASES["header_smaller_than_jpeg_lossless"][0]()
    path = write(small, tmp_path / "s.dcm")
    for backend in ("auto", "dicomsdl", "pydicom"):
        with pytest.raises(DicomError, match="codestream is 96x64"):
            decode(path, backend=backend)
    large = write(DICOM_CASES["header_larger_than_j2k"][0](), tmp_path / "l.dcm")
    for backend in ("auto", "dicomsdl", "openjpeg", "pydicom"):
        with pytest.raises(DicomError, match="codestream is 96x64"):
            decode(large, backend=backend)
    # RLE has no geometry to check before decoding, and dicomsdl aborted on this file too:
    # RLE goes to imagecodecs, which refuses it, and dicomsdl no longer declares RLE
    rle_small = write(DICOM_CASES["header_smaller_than_rle"][0](), tmp_path / "r.dcm")
    for backend in ("auto", "imagecodecs-rle"):
        with pytest.raises(DicomError, match="RLE frame holds more than the 4000 bytes"):
            decode(rle_small, backend=backend)
    with pytest.raises(DicomError, match="1.2.840.10008.1.2.5 not supported by decoder 'dicomsdl'"):
        decode(rle_small, backend="dicomsdl")


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_header_rules_each_refuse_alone(case: str, tmp_path: Path) -> None:
    """Each is refused with its own reason by every decode route and by the preprocessing,
    however the PixelData after the header would have read."""
    from rsna_pkg.preprocess import preprocess_file

    build, pattern = HEADER_CASES[case]
    path = write(build(), tmp_path / f"{case}.dcm")
    for backend in ("auto", "pydicom"):
        with pytest.raises(DicomError, match=pattern):
            decode(path, backend=backend)
    with pytest.raises(DicomError, match=pattern):
        preprocess_file(path, PreprocessConfig(height=64, width=32))


PLUGIN_CASES = {"rle_lossless": rle, "jpeg_baseline": jpeg_baseline, "jpeg_ls": jpeg_ls}
PLUGIN_SYNTAXES = {"rle_lossless": RLELossless, "jpeg_baseline": "1.2.840.10008.1.2.4.50",
                   "jpeg_ls": "1.2.840.10008.1.2.4.80"}  # fmt: skip


@pytest.fixture()
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A machine without pydicom's RLE, JPEG baseline and JPEG-LS plugins and without
    dicomsdl or imagecodecs' RLE codec: pydicom's decoders for those syntaxes report no
    available plugin."""
    from pydicom.pixels.decoders.base import Decoder

    from rsna_pkg.dicom import dicomsdl_backend, pydicom_backend, rle_backend

    blocked = set(PLUGIN_SYNTAXES.values())
    real = Decoder.is_available

    def is_available(self: Decoder) -> bool:
        return self.UID not in blocked and real.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(Decoder, "is_available", property(is_available))
    monkeypatch.setattr(dicomsdl_backend.DicomsdlDecoder, "available", lambda self: False)
    monkeypatch.setattr(rle_backend.RleDecoder, "available", lambda self: False)
    pydicom_backend._decodable.cache_clear()
    yield blocked
    monkeypatch.undo()
    pydicom_backend._decodable.cache_clear()


@pytest.mark.parametrize("case", list(PLUGIN_CASES))
def test_rle_jpeg_and_jpeg_ls_are_unsupported_without_a_plugin(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same files decode in the shared runs above, where the plugins are installed."""
    from rsna_pkg.preprocess import preprocess_file

    ds = PLUGIN_CASES[case]()  # encoded while the plugins are there
    assert ds.file_meta.TransferSyntaxUID == PLUGIN_SYNTAXES[case]
    path = write(ds, tmp_path / f"{case}.dcm")
    request.getfixturevalue("no_plugins")
    reason = f"unsupported transfer syntax {PLUGIN_SYNTAXES[case]}"
    with pytest.raises(DicomError, match=reason):
        decode(path)
    with pytest.raises(DicomError, match=reason):
        preprocess_file(path, PreprocessConfig(height=64, width=32))


# -- CSV lies ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(synth_data: Path, models: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> pd.Series:  # fmt: skip
    out = tmp_path_factory.mktemp("baseline") / "sub.csv"
    run = infer(synth_data, [models["reduced"]], out, "--workers", "0")
    assert run.rc == 0, run.err
    return assert_full_submission(synth_data, out)


@pytest.fixture()
def csv_data(synth_data: Path, tmp_path: Path) -> Path:
    return copy_test_split(synth_data, tmp_path / "data")


def run_both(data: Path, models: dict[str, Path], tmp: Path) -> tuple[Run, Run, Path]:
    pre = preprocess(data, tmp / "pre")
    sub = tmp / "sub.csv"
    run = infer(data, [models["reduced"]], sub, "--workers", "0")
    for r in (pre, run):
        assert_clean(r)
    return pre, run, sub


def test_ids_with_dot_dot_or_slash_never_leave_the_data_folder(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, baseline: pd.Series
) -> None:
    """Fixed: a bad id used to refuse the whole file (no submission); now its row is
    skipped with one line, the others are used. A valid DICOM planted where the
    traversal would lead is never opened, and nothing is written outside OUT."""
    test = pd.read_csv(csv_data / "test.csv")
    planted = tmp_path / "outside.dcm"
    write(native(), planted)
    bad = [  # test_images/../../outside.dcm is the planted file
        {**test.iloc[0].to_dict(), "patient_id": "..", "image_id": "../outside"},
        {**test.iloc[1].to_dict(), "image_id": "../../../outside"},
        {**test.iloc[2].to_dict(), "patient_id": "a/b", "image_id": 5},
    ]
    pd.concat([test, pd.DataFrame(bad)]).to_csv(csv_data / "test.csv", index=False)
    opened: list[str] = []
    hook_active = [True]

    def audit(event: str, args: tuple) -> None:
        if hook_active[0] and event == "open" and "outside" in str(args[0]):
            opened.append(str(args[0]))

    sys.addaudithook(audit)
    try:
        before = set(tmp_path.rglob("*"))
        pre, run, sub = run_both(csv_data, models, tmp_path)
    finally:
        hook_active[0] = False
    assert opened == []
    new = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    outside = [p for p in new if tmp_path / "pre" not in p.parents
               and p not in (tmp_path / "sub.csv", tmp_path / "sub.json")]  # fmt: skip
    assert outside == []
    assert pre.rc == 0 and run.rc == 0
    csv = str(csv_data / "test.csv")
    n = len(test)
    for r in (pre, run):
        assert r.lines_naming(csv, f"line {n + 2}: patient_id '..' is not an integer id")
        assert r.lines_naming(csv, f"line {n + 3}: image_id '../../../outside' is not an")
        assert r.lines_naming(csv, f"line {n + 4}: patient_id 'a/b' is not an integer id")
    assert_full_submission(csv_data, sub).equals(baseline)


def test_missing_metadata_column_is_read_as_unknown(
    csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed: a missing test-time column (age) used to stop both commands."""
    pd.read_csv(csv_data / "test.csv").drop(columns=["age"]).to_csv(
        csv_data / "test.csv", index=False
    )
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    assert run.lines_naming(str(csv_data / "test.csv"), "column age missing")
    assert_full_submission(csv_data, sub)
    report = json.loads(sub.with_suffix(".json").read_text())
    assert report["images_failed"] == 0 and report["breasts_without_image"] == []


@pytest.mark.parametrize("kind", ["missing_key_column", "header_only"])
def test_unusable_test_csv_still_gives_the_sample_submission(
    kind: str, csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed for inference: it used to exit 2 without a submission; with a
    sample_submission.csv it now writes every sample breast from the fallback (the
    checkpoint's prevalence) after one line saying why, and (second round) exits 3 with a
    last line saying no image was scored, so a prior-only file is not taken for a real
    one. Preprocess, with nothing to do, still exits 2 with that line."""
    test = pd.read_csv(csv_data / "test.csv")
    (test.drop(columns=["image_id"]) if kind == "missing_key_column" else test.iloc[:0]).to_csv(
        csv_data / "test.csv", index=False
    )
    reason = "missing required column(s) image_id" if kind == "missing_key_column" else "no rows"
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 2 and run.rc == EXIT_ALL_FALLBACK  # written, but from fallbacks only
    assert run.err.strip().splitlines()[-1] == (
        f"infer: every breast of {sub} got its fallback value: no image was scored by a model "
        f"(exit {EXIT_ALL_FALLBACK})"
    )
    csv = str(csv_data / "test.csv")
    assert len(pre.err.strip().splitlines()) == 1 and pre.lines_naming(csv, reason)
    assert run.lines_naming(csv, reason, "fallback")
    values = assert_full_submission(csv_data, sub)
    prevalence = load_checkpoint(models["reduced"]).config.prevalence
    assert np.allclose(values, prevalence)


@pytest.mark.parametrize(
    ("kind", "content"),
    [("zero_byte", b""), ("not_utf8", b"\xff\xfe\x00bad,\x80\x81\n\x9c\n"),
     ("unparsable", b'site_id,patient_id\n1,"2\n')],
    ids=["zero_byte", "not_utf8", "unparsable"],
)  # fmt: skip
def test_unreadable_test_csv_still_gives_the_sample_submission(
    kind: str, content: bytes, csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """An unreadable test.csv beside a sample_submission.csv: preprocess exits 2 with the
    reason; inference writes every sample breast from its fallback and exits 3."""
    (csv_data / "test.csv").write_bytes(content)
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 2 and run.rc == EXIT_ALL_FALLBACK
    csv = str(csv_data / "test.csv")
    assert len(pre.err.strip().splitlines()) == 1
    assert pre.lines_naming("rsna preprocess: error:", csv, "not a readable CSV")
    assert run.lines_naming(csv, "not a readable CSV", "fallback")
    values = assert_full_submission(csv_data, sub)
    assert np.allclose(values, load_checkpoint(models["reduced"]).config.prevalence)


def test_preprocess_prints_the_first_20_errors_and_a_count(csv_data: Path, tmp_path: Path) -> None:
    """25 missing images: 20 error lines naming file and reason, then the count of the rest."""
    test = pd.read_csv(csv_data / "test.csv")
    missing = pd.DataFrame([{**test.iloc[0].to_dict(), "patient_id": 800_000 + k,
                             "image_id": 8_000_000 + k, "prediction_id": f"{800_000 + k}_L"}
                            for k in range(25)])  # fmt: skip
    pd.concat([test, missing]).to_csv(csv_data / "test.csv", index=False)
    run = preprocess(csv_data, tmp_path / "pre")
    assert run.rc == 1
    assert_clean(run)
    errors = [ln for ln in run.out.splitlines() if ln.startswith("  error: ")]
    assert len(errors) == 20
    assert all(ln.endswith(": file not found") and "/test_images/8000" in ln for ln in errors)
    assert run.lines_naming("... 5 more errors in", "most common:")
    assert run.lines_naming("error x25: file not found")


def test_extra_columns_are_ignored(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, baseline: pd.Series
) -> None:
    """Already right: columns beyond the schema are never read."""
    test = pd.read_csv(csv_data / "test.csv")
    test.insert(0, "Unnamed: 0", range(len(test)))
    test["notes"] = "../../etc/passwd"
    test.to_csv(csv_data / "test.csv", index=False)
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    assert assert_full_submission(csv_data, sub).equals(baseline)


def test_nan_age_is_imputed(csv_data: Path, models: dict[str, Path], tmp_path: Path) -> None:
    """Already right: NaN age is imputed and flagged by the metadata encoder."""
    test = pd.read_csv(csv_data / "test.csv")
    test["age"] = np.nan
    test.to_csv(csv_data / "test.csv", index=False)
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    assert_full_submission(csv_data, sub)
    report = json.loads(sub.with_suffix(".json").read_text())
    assert report["images_failed"] == 0 and report["images_predicted"] == len(test)


def test_laterality_x_row_is_skipped(
    csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed: one row with laterality X used to refuse the whole file."""
    test = pd.read_csv(csv_data / "test.csv")
    test.loc[0, "laterality"] = "X"
    test.to_csv(csv_data / "test.csv", index=False)
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    for r in (pre, run):
        assert r.lines_naming(str(csv_data / "test.csv"), "line 2: laterality 'X' is not L or R")
    manifest = pd.read_csv(tmp_path / "pre" / MANIFEST_NAME)
    assert test.loc[0, "image_id"] not in set(manifest["image_id"])
    assert len(manifest) == len(test) - 1
    assert_full_submission(csv_data, sub)


def test_duplicate_rows_count_once(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, baseline: pd.Series
) -> None:
    """Fixed: a repeated row used to be decoded, written and averaged twice."""
    test = pd.read_csv(csv_data / "test.csv")
    pd.concat([test, test.iloc[[0, 3]]]).to_csv(csv_data / "test.csv", index=False)
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    iid = test.loc[0, "image_id"]
    assert run.lines_naming(str(csv_data / "test.csv"),
                            f"line {len(test) + 2}: image_id {iid} repeats line 2")  # fmt: skip
    manifest = pd.read_csv(tmp_path / "pre" / MANIFEST_NAME)
    assert manifest["image_id"].is_unique and len(manifest) == len(test)
    assert assert_full_submission(csv_data, sub).equals(baseline)


def test_float_ids_are_read_as_integers(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, baseline: pd.Series
) -> None:
    """Fixed: ids written as floats (``10006.0``) used to refuse the whole file."""
    test = pd.read_csv(csv_data / "test.csv")
    floated = test.astype({"patient_id": float, "image_id": float})
    floated.loc[0, "age"] = np.nan  # a NaN in the row, as a pandas merge leaves
    floated.to_csv(csv_data / "test.csv", index=False)
    assert f"{float(test.patient_id[0])}" in (csv_data / "test.csv").read_text()
    pre, run, sub = run_both(csv_data, models, tmp_path)
    assert pre.rc == 0 and run.rc == 0
    manifest = pd.read_csv(tmp_path / "pre" / MANIFEST_NAME)
    assert set(manifest["png"]) == {f"{p}/{i}.png" for p, i in zip(test.patient_id,
                                                                    test.image_id, strict=True)}  # fmt: skip
    assert assert_full_submission(csv_data, sub).index.equals(baseline.index)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10006, 10006), (np.int64(7), 7), (10006.0, 10006), ("10006.0", 10006), (" 42 ", 42),
     ("0", 0), ("..", None), ("../x", None), ("12/3", None), ("a/b", None), (-5, None),
     (1.5, None), (float("nan"), None), ("", None), (True, None), ("1" * 19, None)],
)  # fmt: skip
def test_parse_id_table(value: object, expected: int | None) -> None:
    from rsna_pkg.data.schema import parse_id

    assert parse_id(value) == expected


# -- model files ------------------------------------------------------------------------


class RunsCode:
    """Unpickling this creates ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file a code-running checkpoint creates when it is unpickled."""
    return tmp_path_factory.mktemp("marker") / "code_ran"


@pytest.fixture(scope="module")
def bad_models(models: dict[str, Path], marker: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:  # fmt: skip
    """name -> (checkpoint file, pattern of the reason given for it)."""
    tmp_path = tmp_path_factory.mktemp("bad_models")
    good = torch.load(models["reduced"], weights_only=True)
    out: dict[str, tuple[Path, str]] = {}
    evil = tmp_path / "evil.pt"
    torch.save({**good, "payload": RunsCode(marker)}, evil)
    out["runs_code"] = (evil, r"not a loadable checkpoint \(UnpicklingError: Weights only load")
    cut = tmp_path / "truncated.pt"
    cut.write_bytes(models["reduced"].read_bytes()[: models["reduced"].stat().st_size // 2])
    out["truncated"] = (cut, r"not a loadable checkpoint")
    other = tmp_path / "backbone.pt"
    torch.save({**good, "model": {**good["model"], "backbone": "squeezenet1_1"}}, other)
    out["other_backbone"] = (other, r"weights do not match the stored config \(squeezenet1_1\)")
    newer = tmp_path / "newer.pt"
    torch.save({**good, "format": "rsna_pkg.checkpoint/3",
                "model": {**good["model"], "new_setting": 1}}, newer)  # fmt: skip
    out["newer_format"] = (newer, r"format version 3 is newer than this rsna_pkg reads \(2\)")
    unknown = tmp_path / "unknown_key.pt"
    torch.save({**good, "model": {**good["model"], "new_setting": 1}}, unknown)
    out["unknown_config_key"] = (unknown, r"unknown key\(s\) \['new_setting'\]")
    # stored fields checked on load, each named in the reason
    pre = good["model"]["preprocess"]
    for name, change, pattern in (
        ("nan_threshold", {"threshold": float("nan")}, r"threshold nan is not a number in \[0, 1\]"),
        ("unknown_backend", {"preprocess": {**pre, "backend": "nosuch"}},
         r"preprocess backend: must be one of \('auto', .*\), got 'nosuch'"),
        ("huge_input", {"preprocess": {**pre, "height": 100000}},
         r"preprocess height: must be in \[8, 4096\], got 100000"),
    ):  # fmt: skip
        torch.save({**good, "model": {**good["model"], **change}}, tmp_path / f"{name}.pt")
        out[name] = (tmp_path / f"{name}.pt", pattern)
    return out


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    calls = []
    for path in (REPO / "rsna_pkg").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and ast.unparse(node.func.value) == "torch"):  # fmt: skip
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((path.name, kw.get("weights_only")))
    assert calls and all(flag == "True" for _, flag in calls), calls


@pytest.mark.parametrize(
    "name", ["runs_code", "truncated", "other_backbone", "newer_format", "unknown_config_key",
             "nan_threshold", "unknown_backend", "huge_input"],
)  # fmt: skip
def test_bad_checkpoint_alone_is_one_line_error(
    name: str, bad_models: dict[str, tuple[Path, str]], csv_data: Path, tmp_path: Path,
    marker: Path,
) -> None:  # fmt: skip
    """Already refused (weights_only=True, strict loading); fixed: the message is now one
    line naming the file (torch's was several lines, a newer format read as 'not an
    rsna_pkg checkpoint', a config error did not name the file), and the run still writes
    every prediction_id (the training prior) before it exits 2 (it used to write nothing).
    Second round: stored fields are checked on load, the field named (a NaN threshold
    turned every breast to 0, an unknown backend failed each image, a 100000 px input
    side took 2.5 GB)."""
    path, pattern = bad_models[name]
    with pytest.raises(InputError, match=pattern) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    run = infer(csv_data, [path], tmp_path / "sub.csv")
    assert run.rc == 2
    assert_clean(run)
    last = run.err.strip().splitlines()[-1]
    assert last.startswith(f"rsna infer: error: {path}") and len(last) < 1100
    assert "no usable checkpoint" in last
    assert not marker.exists()
    # nothing is lost: every prediction_id still written, with the training prior
    values = assert_full_submission(csv_data, tmp_path / "sub.csv")
    assert np.allclose(values, 492 / 23826)


def test_ensemble_skips_bad_checkpoints_and_writes_everything(
    bad_models: dict[str, tuple[Path, str]], models: dict[str, Path], csv_data: Path,
    tmp_path: Path, marker: Path,
) -> None:  # fmt: skip
    """Fixed: one bad member used to stop the run; now it is skipped with one line and the
    good ones (two image sizes: a checkpoint for another size is fine) predict."""
    paths = [models["reduced"], *(p for p, _ in bad_models.values()), models["other_size"]]
    run = infer(csv_data, paths, tmp_path / "sub.csv", "--workers", "0")
    assert run.rc == 0
    assert_clean(run)
    for path, pattern in bad_models.values():
        lines = run.lines_naming("skipping checkpoint", str(path))
        assert len(lines) == 1 and pd.Series(lines).str.contains(pattern).all(), lines
    report = json.loads((tmp_path / "sub.json").read_text())
    assert len(report["skipped_models"]) == len(bad_models)
    assert report["images_failed"] == 0
    assert_full_submission(csv_data, tmp_path / "sub.csv")
    assert not marker.exists()
    # the refusal is what kept the marker away: an unsafe load does run the payload
    torch.load(bad_models["runs_code"][0], weights_only=False)
    assert marker.exists()
    marker.unlink()


def test_resume_and_pretrained_refuse_code_running_files(
    bad_models: dict[str, tuple[Path, str]], marker: Path
) -> None:
    from rsna_pkg.models.zoo import build_backbone

    evil, _ = bad_models["runs_code"]
    with pytest.raises(InputError, match="not a loadable state_dict"):
        build_backbone("resnet18", evil)
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        read_checkpoint(evil)
    assert not marker.exists()


# -- interruption -----------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """``python -m rsna_pkg ARGV`` in its own process group (as a shell job is); ``train``
    goes through its own entry point ``python -m rsna_pkg.train`` (same code, same error
    handling, without importing every other command's parser)."""
    module = ["rsna_pkg.train", *argv[1:]] if argv[0] == "train" else ["rsna_pkg", *argv]
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", *module], env=subprocess_env(),
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_ctrl_c_as_in_a_terminal)  # fmt: skip


def _ctrl_c_as_in_a_terminal() -> None:
    """The command must see Ctrl-C as a terminal delivers it, even when these tests run
    in a background job (``nohup``, ``&``), which starts with SIGINT ignored: Python then
    keeps it ignored, rightly, and the command would not stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def png_ok(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
            return im.size == (32, 64)
    except OSError:
        return False


def check_outputs(out: Path, temporaries: bool = False) -> list[Path]:
    """Every PNG there decodes whole; no temporary file is left (unless ``temporaries``:
    a kill can land between a temporary's creation and its rename)."""
    pngs = sorted(out.rglob("*.png"))
    assert all(png_ok(p) for p in pngs), [p for p in pngs if not png_ok(p)]
    assert temporaries or not list(out.rglob("*.tmp"))
    return pngs


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_preprocess_interrupted_then_rerun_resumes(
    sig: signal.Signals, synth_data: Path, tmp_path: Path
) -> None:
    """Ctrl-C (to the whole process group, workers included) or a kill mid-run: no PNG
    is half-written and the rerun completes the manifest (already right). Fixed: the
    finished images' rows (box, syntax, timings) used to be lost, as the manifest was
    written only at the end; the rerun now takes them back from the journal. Ctrl-C
    exits 130 without a traceback (already right), now saying how to resume."""
    out = tmp_path / "out"
    argv = ["preprocess", "--data", str(synth_data), "--out", str(out), "--size", *SIZE,
            "--workers", "2", "--quiet", "--preview", "0", "--limit", "80"]  # fmt: skip
    journal = journal_path(out / MANIFEST_NAME)

    def journaled_rows() -> int:
        return journal.read_text().count("\n") if journal.is_file() else 0

    proc = start(argv, tmp_path / "log.txt")
    wait_for(lambda: journaled_rows() >= 10, proc)
    os.killpg(proc.pid, sig)
    rc = proc.wait(timeout=60)
    log = (tmp_path / "log.txt").read_text()
    if sig == signal.SIGINT:
        assert rc == 130 and "Traceback" not in log, log
        assert log.strip().splitlines()[-1] == "interrupted"
        assert "rerun the same command to resume" in log
    else:
        assert rc == -signal.SIGKILL
    done = {int(p.stem) for p in check_outputs(out, temporaries=sig == signal.SIGKILL)}
    assert not (out / MANIFEST_NAME).exists()
    journaled = {int(json.loads(line)["image_id"]) for line in journal.read_text().splitlines()
                 if line.endswith("}")}  # fmt: skip
    assert len(journaled) >= 10 and journaled <= done  # a journaled row has its whole PNG
    rerun = rsna(*argv)
    assert rerun.rc == 0, rerun.text
    manifest = pd.read_csv(out / MANIFEST_NAME, keep_default_na=False)
    table = pd.read_csv(synth_data / "train.csv")
    assert len(manifest) == 80 and manifest["image_id"].is_unique
    assert set(manifest["image_id"]) <= set(table["image_id"])
    assert (manifest["status"] == "ok").all()
    resumed = manifest[manifest["image_id"].isin(journaled)]
    assert len(resumed) == len(journaled) and (resumed["box_y1"].astype(str) != "").all()
    assert len(check_outputs(out)) == 80
    assert not journal_path(out / MANIFEST_NAME).exists()


@pytest.mark.slow
def test_train_interrupted_then_resumed(tmp_path: Path) -> None:
    """``rsna train``: Ctrl-C after epoch 1 (exit 130, no traceback), ``--resume`` killed
    after epoch 2, ``--resume`` again: it completes all three epochs from last.pt.
    Resuming was already right (atomic checkpoints); fixed: Ctrl-C through
    ``python -m rsna_pkg.train`` (the torchrun entry) ended in a KeyboardInterrupt
    traceback, and history.csv, split.csv and curves.png are now replaced atomically."""
    from train_data import make_dataset

    data, images = make_dataset(tmp_path / "d", patients=8, size=(32, 32), seed=0)
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--images", str(images), "--out", str(out), "--size",
            "32", "32", "--epochs", "3", "--batch-size", "8", "--workers", "0", "--threads", "1",
            "--no-amp", "--no-augment"]  # fmt: skip

    def epochs_done() -> int:  # history.csv is rewritten (atomically) after last.pt
        path = out / "history.csv"
        return len(pd.read_csv(path)) if path.is_file() else 0

    proc = start(argv, tmp_path / "log1.txt")
    wait_for(lambda: epochs_done() >= 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    log = (tmp_path / "log1.txt").read_text()
    assert "Traceback" not in log and log.strip().splitlines()[-1] == "interrupted", log
    first = epochs_done()
    assert first >= 1
    proc = start([*argv, "--resume"], tmp_path / "log2.txt")
    wait_for(lambda: epochs_done() > first or proc.poll() is not None, proc)
    with contextlib.suppress(ProcessLookupError):  # it may have finished epoch 3 already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert int(read_checkpoint(out / "last.pt")["epoch"]) >= epochs_done() > first
    final = rsna(*argv, "--resume")
    assert final.rc == 0, final.text
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 3
    assert load_checkpoint(out / "model.pt").config.backbone == "resnet18"
    # a last.pt of another image size or backbone is refused, in one line
    for change, why in ((["--size", "64", "64"], "height=32, this run asks for 64"),
                        (["--backbone", "vgg11"], "backbone='resnet18', this run asks for 'vgg11'")):  # fmt: skip
        refused = rsna(*argv, *change, "--resume")
        assert refused.rc == 2
        assert refused.err.strip().splitlines() == [
            f"rsna train: error: --resume: {out / 'last.pt'} was trained with {why}"
        ]


# -- resources --------------------------------------------------------------------------


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> list[Path]:
    """Every file write after the first ``writes`` stores half its bytes and then fails as
    on a full disk (ENOSPC). Returns the files whose write failed."""
    real = files.write_bytes
    done: list[Path] = []
    failed: list[Path] = []

    def write(file: Path, data: bytes) -> None:
        if len(done) < writes:
            real(file, data)
            done.append(file)
            return
        real(file, data[: len(data) // 2])
        failed.append(file)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))

    monkeypatch.setattr(files, "write_bytes", write)
    return failed


def test_preprocess_on_a_full_disk_stops_with_one_line_and_resumes(
    csv_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed: a full disk used to become an error row per image, then a traceback when
    the manifest could not be written; now the run stops at the first failed write
    with one line naming it, leaves no partial file, and the rerun completes."""
    out = tmp_path / "out"
    failed = fill_disk_after(monkeypatch, writes=4)  # the config, then three PNGs
    run = preprocess(csv_data, out)
    assert run.rc == 2
    assert_clean(run)
    assert len(failed) == 1
    target = failed[0].parent / failed[0].name[1:].rsplit(".", 2)[0]  # .<name>.<pid>.tmp
    assert target.suffix == ".png" and not target.exists()
    assert run.err.strip().splitlines() == [
        f"rsna preprocess: error: {target}: cannot write (No space left on device)"
    ]
    assert len(check_outputs(out)) == 3
    monkeypatch.undo()
    rerun = preprocess(csv_data, out)
    assert rerun.rc == 0, rerun.text
    assert len(check_outputs(out)) == len(pd.read_csv(csv_data / "test.csv"))


def test_submission_on_a_full_disk_keeps_the_previous_file(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed: the submission's temporary file was left half-written beside it, with a
    traceback."""
    sub = tmp_path / "sub.csv"
    sub.write_text("prediction_id,cancer\nold,0.5\n")
    failed = fill_disk_after(monkeypatch, writes=0)
    run = infer(csv_data, [models["reduced"]], sub, "--workers", "0")
    assert run.rc == 2
    assert_clean(run)
    assert run.err.strip().splitlines()[-1] == (
        f"rsna infer: error: {sub}: cannot write (No space left on device)"
    )
    assert failed == [files.temp_sibling(sub)]
    assert sub.read_text() == "prediction_id,cancer\nold,0.5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sub.csv"]


CHECK_TMPFS = """
import json, sys
from pathlib import Path
from PIL import Image
out = Path(sys.argv[1])
bad = []
for p in out.rglob("*.png"):
    try:
        with Image.open(p) as im:
            im.load()
    except OSError:
        bad.append(str(p))
print(json.dumps({"pngs": len(list(out.rglob("*.png"))), "bad": bad,
                  "tmp": [str(p) for p in out.rglob("*.tmp")]}))
"""


def test_preprocess_on_a_real_full_tmpfs(csv_data: Path, tmp_path: Path) -> None:
    """The same on a real 24 KiB tmpfs (a user+mount namespace, no root needed): the
    kernel's ENOSPC, one line, no partial PNG. Skipped where namespaces are off."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    out = tmp_path / "mnt"
    out.mkdir()
    (tmp_path / "check.py").write_text(CHECK_TMPFS)
    py = sys.executable
    script = (
        f"mount -t tmpfs -o size=24k tmpfs {out} || exit 77; "
        f"{py} -m rsna_pkg preprocess --data {csv_data} --split test --out {out} "
        f"--size {' '.join(SIZE)} --quiet --preview 0; echo rc=$?; {py} {tmp_path / 'check.py'} {out}"
    )
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    if done.returncode == 77 or "unshare:" in done.stderr:
        pytest.skip(f"no tmpfs in a user namespace here: {done.stderr.strip()[:200]}")
    assert "rc=2" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("rsna preprocess: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr
    check = json.loads(done.stdout.strip().splitlines()[-1])
    assert check["bad"] == [] and check["tmp"] == [] and check["pngs"] >= 1


def limit_file_size(limit: int) -> Callable[[], None]:
    """A child's pre-exec hook: the kernel refuses any write that would make a file larger
    than ``limit`` bytes (EFBIG, with SIGXFSZ ignored), for any user, without namespaces."""

    def hook() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return hook


def test_preprocess_on_a_real_write_error_stops_with_one_line(
    csv_data: Path, tmp_path: Path
) -> None:
    """The real-ENOSPC test above needs user namespaces; this one runs anywhere: the same
    kernel refusal of a write (here EFBIG from a file size limit between the config's size
    and the smallest PNG's) in the middle of a real run: the config is written, no PNG is."""
    ref = tmp_path / "ref"
    assert preprocess(csv_data, ref, "--workers", "1").rc == 0
    config = (ref / "preprocess_config.json").stat().st_size
    smallest_png = min(p.stat().st_size for p in ref.rglob("*.png"))
    assert config < smallest_png, (config, smallest_png)
    out = tmp_path / "out"
    (tmp_path / "check.py").write_text(CHECK_TMPFS)
    done = subprocess.run(
        [sys.executable, "-m", "rsna_pkg", "preprocess", "--data", str(csv_data), "--split",
         "test", "--out", str(out), "--size", *SIZE, "--quiet", "--preview", "0",
         "--workers", "1"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
        preexec_fn=limit_file_size((config + smallest_png) // 2),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("rsna preprocess: error:")]
    assert len(errors) == 1 and errors[0].endswith(": cannot write (File too large)"), done.stderr
    assert ".png" in errors[0] and (out / "preprocess_config.json").is_file()
    check = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(out)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    left = json.loads(check.stdout)
    assert left["pngs"] == 0 and left["tmp"] == []  # no partial PNG, no temporary file
    rerun = preprocess(csv_data, out, "--workers", "1")
    assert rerun.rc == 0, rerun.text[-2000:]
    assert len(check_outputs(out)) == len(pd.read_csv(csv_data / "test.csv"))


def test_ten_thousand_ids_mostly_failing_are_all_written_with_20_lines(
    synth_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """10,000 breasts, one image each, of which 9,900 are missing, 95 garbage or zero-byte
    and 5 real; every breast is written. New: failed images are logged, 20 lines and a
    count. (How fast a missing file fails is a figure of `rsna bench decode`.)"""
    data = tmp_path / "data"
    (data / "test_images").mkdir(parents=True)
    src = pd.read_csv(synth_data / "test.csv")
    n = 10_000
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({
        "site_id": 1, "patient_id": np.arange(n) // 2 + 1, "image_id": np.arange(n) + 10**6,
        "laterality": np.where(np.arange(n) % 2, "R", "L"), "view": "CC", "age": 60.0,
        "implant": 0, "machine_id": 49,
    })  # fmt: skip
    rows["prediction_id"] = rows["patient_id"].astype(str) + "_" + rows["laterality"]
    for k in range(100):
        pid, iid = int(rows.patient_id[k]), int(rows.image_id[k])
        path = data / "test_images" / str(pid) / f"{iid}.dcm"
        path.parent.mkdir(exist_ok=True)
        if k < 5:
            r = src.iloc[k]
            shutil.copy(synth_data / "test_images" / str(r.patient_id) / f"{r.image_id}.dcm", path)
        else:
            garbage = b"DICM" + rng.integers(0, 255, 200).astype(np.uint8).tobytes()
            path.write_bytes(b"" if k % 2 else garbage)
    rows.to_csv(data / "test.csv", index=False)
    order = rows["prediction_id"].to_numpy()[rng.permutation(n)]
    pd.DataFrame({"prediction_id": order, "cancer": 0.0}).to_csv(
        data / "sample_submission.csv", index=False
    )
    run = infer(data, [models["reduced"]], tmp_path / "sub.csv", "--workers", "2",
                "--batch-size", "32")  # fmt: skip
    assert run.rc == 0, run.err[-2000:]
    assert_clean(run)
    assert len(assert_full_submission(data, tmp_path / "sub.csv")) == n
    report = json.loads((tmp_path / "sub.json").read_text())
    assert report["images_failed"] == n - 5 and report["images_predicted"] == 5
    assert len(run.lines_naming("infer: failed")) == 20
    assert run.lines_naming(f"{n - 5 - 20} more failed images")


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    """A temporary of a finished process, and of a killed one not yet reaped (a zombie, as a
    killed worker is for a moment after its process group is killed) are removed; this
    process's own and a file not named by us are kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / "1" / f".2.png.{int(dead.stdout)}.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half a png")
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie.kill()
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)  # killed; not reaped until wait() below
    killed = tmp_path / f".4.png.{zombie.pid}.tmp"
    killed.write_bytes(b"half a png")
    live = files.temp_sibling(tmp_path / "3.png")  # this process's: kept
    live.write_bytes(b"being written")
    other = tmp_path / ".notes.tmp"  # not one of ours: kept
    other.write_bytes(b"")
    assert files.remove_stale_temporaries(tmp_path) == 2
    assert not stale.exists() and not killed.exists() and live.exists() and other.exists()
    zombie.wait()


def test_reasons_are_one_line() -> None:
    err = DicomError("x.dcm", "first line\nsecond\tline   " + "y" * 1000)
    assert "\n" not in err.reason and err.reason.startswith("first line second line y")
    assert len(err.reason) <= 300 and err.reason.endswith("...")


# -- second round: resource limits, bombs, outputs over inputs, option values ------------


@pytest.mark.parametrize("bomb", list(BOMB_CASES))
@pytest.mark.parametrize("backend", ["auto", "pydicom"])
def test_bombs_are_refused_from_the_header_fast_and_small(
    bomb: str, backend: str, tmp_path: Path
) -> None:
    """Fixed: a Deflated file inflating to 1.5 GB took 4.5 GB before it was refused, a
    native length of 1.5e9 over a sparse file 3.3 GB, a J2K fragment padded to 1.5 GB
    minutes. Now reading stops at what the header declares: each is refused in well
    under 2 s, Python allocating under 64 MB (tracemalloc sees numpy and bytes alike)."""
    import tracemalloc

    from rsna_pkg.dicom import decode

    writer, pattern = BOMB_CASES[bomb]
    path = writer(IMG, tmp_path / f"{bomb}.dcm")
    assert path.stat().st_size >= 1_400_000  # 1.5 MB deflated or a 1.5 GB sparse file
    for reduce in (0, 2):
        tracemalloc.start()
        start_t = time.perf_counter()
        try:
            with pytest.raises(DicomError, match=pattern):
                decode(path, backend=backend, reduce=reduce)
            seconds = time.perf_counter() - start_t
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        print(f"{bomb} {backend} reduce={reduce}: {seconds:.3f} s, peak {peak / 2**20:.1f} MiB")
        assert seconds < 2 and peak < 64 * 2**20


def test_a_huge_element_nothing_needs_is_not_read(tmp_path: Path) -> None:
    """Fixed: a 1.5e9-byte private element before PixelData (sparse) was read whole
    (5 s, 1.4 GB) before a good image decoded; now it is left unread (defer_size)."""
    import tracemalloc

    from rsna_pkg.dicom import decode

    path = private_element_bomb(IMG, tmp_path / "private.dcm")
    tracemalloc.start()
    start_t = time.perf_counter()
    try:
        arr = decode(path)
        seconds, peak = time.perf_counter() - start_t, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(arr, IMG)
    assert seconds < 2 and peak < 64 * 2**20, (seconds, peak)


def test_deflated_file_still_decodes(tmp_path: Path) -> None:
    """Already right, kept so: a real Deflated file reads through the bounded inflate."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from rsna_pkg.dicom import decode

    ds = native()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = write(ds, tmp_path / "deflated.dcm")
    assert read_header(path).rows == 96
    assert np.array_equal(decode(path), IMG)


MAX_RSS_GROWTH = 2**30  # the bound: 1 GB above the same run on a good file


# Started from a small Python process, not from pytest's: a child's ru_maxrss counts the
# pages it had before exec, and a fork of this torch-laden process starts at over 1 GB.
MEASURE = """
import json, os, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1], "wb") as log:
    proc = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), time.perf_counter() - start,
                  usage.ru_maxrss * 1024]))
"""


def run_measured(argv: list[str], log: Path) -> tuple[int, float, int]:
    """``python -m rsna_pkg ARGV``: (exit code, seconds, its peak RSS in bytes)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(log), sys.executable, "-m",
                           "rsna_pkg", *argv], env=subprocess_env(), capture_output=True,
                          text=True, check=True, timeout=300)  # fmt: skip
    rc, seconds, rss = json.loads(done.stdout)
    return int(rc), float(seconds), int(rss)


def test_commands_on_bombs_stay_within_a_gigabyte_and_two_seconds_each(
    synth_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """preprocess and infer (decoding in the process measured) on the three bombs: peak
    memory within 1 GB of the same command on one good image, each bomb refused within
    2 s (preprocess times each image; infer's extra time over the good run is shared
    by the three). Measured by the child's own ru_maxrss (os.wait4): no GPU, no cgroup."""
    test = pd.read_csv(synth_data / "test.csv")
    good = test.iloc[[0]]
    runs = {}
    for name, bombs in (("good", {}), ("bombs", BOMB_CASES)):
        data = tmp_path / name
        (data / "test_images").mkdir(parents=True)
        src = synth_data / "test_images" / str(good.patient_id.iloc[0])
        shutil.copytree(src, data / "test_images" / src.name)
        rows = [good]
        for k, (writer, _) in enumerate(bombs.values()):
            pid = FIRST_HOSTILE_PATIENT + k
            (data / "test_images" / str(pid)).mkdir()
            writer(IMG, data / "test_images" / str(pid) / f"{10 * pid}.dcm")
            rows.append(good.assign(patient_id=pid, image_id=10 * pid,
                                    prediction_id=f"{pid}_{good.laterality.iloc[0]}"))  # fmt: skip
        pd.concat(rows).to_csv(data / "test.csv", index=False)
        pre = run_measured(["preprocess", "--data", str(data), "--split", "test", "--out",
                            str(tmp_path / f"pre_{name}"), "--size", *SIZE, "--quiet",
                            "--preview", "0"], tmp_path / f"pre_{name}.log")  # fmt: skip
        inf = run_measured(["infer", "--data", str(data), "--model", str(models["reduced"]),
                            "--out", str(tmp_path / f"{name}.csv"), "--device", "cpu",
                            "--workers", "0", "--threads", "1"], tmp_path / f"inf_{name}.log")  # fmt: skip
        runs[name] = (pre, inf)
    for k, what in enumerate(("preprocess", "infer")):
        (rc_good, s_good, rss_good), (rc_bad, s_bad, rss_bad) = runs["good"][k], runs["bombs"][k]
        print(f"{what}: good {rss_good / 2**20:.0f} MiB {s_good:.1f} s; bombs "
              f"{rss_bad / 2**20:.0f} MiB {s_bad:.1f} s")  # fmt: skip
        assert rc_good == 0 and rc_bad == (1 if what == "preprocess" else 0)
        assert rss_bad - rss_good < MAX_RSS_GROWTH
    manifest = pd.read_csv(tmp_path / "pre_bombs" / MANIFEST_NAME).set_index("image_id")
    bombs = manifest.loc[[10 * (FIRST_HOSTILE_PATIENT + k) for k in range(len(BOMB_CASES))]]
    assert (bombs["status"] == "error").all() and (bombs["seconds"] < 2).all()
    assert runs["bombs"][1][1] - runs["good"][1][1] < 2 * len(BOMB_CASES)
    assert len(pd.read_csv(tmp_path / "bombs.csv")) == len(BOMB_CASES) + 1


@pytest.mark.parametrize(
    ("requested", "cores", "items", "expected"),
    [(10_000, 2, 5, 2), (10_000, 16, 5, 5), (4, 16, 100, 4), (0, 2, 5, 0), (3, 2, None, 2),
     (8, 4, 0, 1), (1, 1, 1, 1)],
)  # fmt: skip
def test_cap_workers_table(requested: int, cores: int, items: int | None, expected: int) -> None:
    from rsna_pkg.options import cap_workers

    assert cap_workers(requested, cores, items) == expected


def test_preprocess_caps_workers_with_one_line(
    csv_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed: ``--workers 10000`` used to start 10,000 processes for 5 images. The pool is
    replaced by one that refuses more workers than cores (so the unfixed code fails here
    instead of starting them)."""
    from concurrent.futures import ProcessPoolExecutor

    from rsna_pkg.options import usable_cores
    from rsna_pkg.preprocess import runner

    asked: list[int] = []

    def pool(max_workers: int, **kw: Any) -> ProcessPoolExecutor:
        asked.append(max_workers)
        assert max_workers <= usable_cores(), f"{max_workers} workers started"
        return ProcessPoolExecutor(max_workers=max_workers, **kw)

    monkeypatch.setattr(runner, "ProcessPoolExecutor", pool)
    run = preprocess(csv_data, tmp_path / "out", "--workers", "10000")
    assert run.rc == 0, run.text[-2000:]
    n = len(pd.read_csv(csv_data / "test.csv"))
    cores = usable_cores()
    expected = min(cores, n)
    assert run.lines_naming(f"--workers 10000 capped to {expected} ({cores} usable cores, "
                            f"{n} images to do)")  # fmt: skip
    assert asked in ([], [expected])  # one core: inline, no pool


def test_infer_caps_workers_with_one_line(
    csv_data: Path, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixed: ``rsna infer --workers 10000`` started over a thousand DataLoader workers
    and ran the machine out of memory. The loader is wrapped to refuse more than cores."""
    from rsna_pkg.infer import devices
    from rsna_pkg.options import usable_cores

    real = devices.iterate_batches
    asked: list[int] = []

    def batches(paths: Any, config: Any, batch_size: int, workers: int, prefetch: int) -> Any:
        asked.append(workers)
        assert workers <= usable_cores(), f"{workers} workers started"
        return real(paths, config, batch_size, workers, prefetch)

    monkeypatch.setattr(devices, "iterate_batches", batches)
    run = infer(csv_data, [models["reduced"]], tmp_path / "sub.csv", "--workers", "10000")
    assert run.rc == 0, run.text[-2000:]
    cores = usable_cores()
    assert run.lines_naming(f"infer: --workers 10000 capped to {cores} ({cores} usable cores)")
    assert asked == [min(cores, len(pd.read_csv(csv_data / "test.csv")))]
    assert_full_submission(csv_data, tmp_path / "sub.csv")


def test_train_caps_workers(tmp_path: Path) -> None:
    from rsna_pkg.options import usable_cores
    from rsna_pkg.train.command import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--images", "i", "--out", "o", "--size", "64", "32",
                              "--workers", "10000"])  # fmt: skip
    err = io.StringIO()
    with redirect_stderr(err):
        cfg = config_from_args(args, "resnet18")
    assert cfg.workers == usable_cores()
    assert err.getvalue().strip() == (
        f"train: --workers 10000 capped to {usable_cores()} ({usable_cores()} usable cores)"
    )


def test_blank_and_na_ids_in_sample_submission_are_skipped(
    csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed: an Excel blank line ``,``, an empty id or ``NA`` in sample_submission.csv
    stopped inference with a traceback and no submission. Now they are skipped with one
    line and every real id is written, in order."""
    sample_path = csv_data / "sample_submission.csv"
    lines = sample_path.read_text().splitlines()
    ids = [line.split(",")[0] for line in lines[1:]]
    # header, id, ",", id..., "NA,0.5", id..., ",0.5" (blank id)
    edited = [lines[0], lines[1], ",", *lines[2:4], "NA,0.5", *lines[4:], ",0.5"]
    sample_path.write_text("\r\n".join(edited) + "\r\n")
    run = infer(csv_data, [models["reduced"]], tmp_path / "sub.csv", "--workers", "0")
    assert run.rc == 0
    assert_clean(run)
    n = len(edited)
    skipped = run.lines_naming(str(sample_path), "blank or NA prediction_id skipped")
    assert skipped == [f"infer: WARNING: {sample_path}: 3 row(s) with a blank or NA "
                       f"prediction_id skipped (line 3, 6, {n})"]  # fmt: skip
    written = pd.read_csv(tmp_path / "sub.csv", dtype=str, keep_default_na=False)
    assert written["prediction_id"].tolist()[: len(ids)] == ids
    assert written["prediction_id"].is_unique and "" not in set(written["prediction_id"])


@pytest.mark.parametrize(
    ("case", "input_name"),
    [("report_is_out", None), ("out_is_test_csv", "test.csv"),
     ("out_is_sample", "sample_submission.csv"), ("out_is_checkpoint", "model.pt"),
     ("report_is_checkpoint", "model.pt")],
)  # fmt: skip
def test_infer_refuses_outputs_that_overwrite_inputs(
    case: str, input_name: str | None, csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed: ``--report`` equal to ``--out`` left the JSON report as submission.csv,
    ``--out DATA/test.csv`` overwrote test.csv, ``--out run/model.pt`` the checkpoint;
    all silently, exit 0. Now refused before any work, in one line, the file untouched."""
    model = tmp_path / "run" / "model.pt"
    model.parent.mkdir()
    shutil.copy(models["reduced"], model)
    target = {"test.csv": csv_data / "test.csv", "model.pt": model, None: tmp_path / "s.csv",
              "sample_submission.csv": csv_data / "sample_submission.csv"}[input_name]  # fmt: skip
    before = target.read_bytes() if target.exists() else None
    out, report = (tmp_path / "s.csv", target) if case.startswith("report") else (target, target)
    if case == "report_is_out":
        out = report = tmp_path / "s.csv"
    elif case.startswith("out"):
        report = tmp_path / "r.json"
    run = rsna("infer", "--data", csv_data, "--model", model.parent, "--out", out, "--device",
               "cpu", "--report", report)  # fmt: skip
    assert run.rc == 2
    assert_clean(run)
    what = {"report_is_out": "the same file as --report",
            "report_is_checkpoint": f"--report {target} is the input --model {model}"}.get(
        case, f"--out {target} is the input ")  # fmt: skip
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsna infer: error: ") and what in lines[0]
    assert (target.read_bytes() if target.exists() else None) == before


def test_preprocess_and_train_refuse_an_output_folder_over_their_inputs(
    csv_data: Path, tmp_path: Path
) -> None:
    """Fixed: an output folder equal to DATA or the image folder was written into,
    mixing model.pt, split.csv or PNGs among the inputs."""
    run = preprocess(csv_data, csv_data / "test_images")
    assert run.rc == 2 and run.err.strip().splitlines() == [
        f"rsna preprocess: error: --out {csv_data / 'test_images'} is the input the images: "
        "it would be overwritten; choose another path"
    ]
    for command in ("train", "compare"):
        extra = ["--backbones", "resnet18"] if command == "compare" else []
        run = rsna(command, "--data", csv_data, "--images", tmp_path, "--out", csv_data, *extra)
        assert run.rc == 2 and run.err.strip().splitlines() == [
            f"rsna {command}: error: --out {csv_data} is the input --data: it would be "
            "overwritten; choose another path"
        ]


def usage_error(*argv: object) -> str:
    """The last stderr line of an argparse usage error (exit 2); fails on anything else."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err), pytest.raises(SystemExit) as info:
        cli.main([str(a) for a in argv])
    assert info.value.code == 2
    return err.getvalue().strip().splitlines()[-1]


NOWHERE = ("--data", "/nonexistent", "--out", "/nonexistent/out")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["train", "--images", "/x", "--lr", "inf"],
         "rsna train: error: argument --lr: must be a number in (0, 1], got inf"),
        (["train", "--images", "/x", "--lr", "1e6"],
         "rsna train: error: argument --lr: must be a number in (0, 1], got 1e6"),
        (["train", "--images", "/x", "--lr", "0"],
         "rsna train: error: argument --lr: must be a number in (0, 1], got 0"),
        (["train", "--images", "/x", "--weight-decay", "nan"],
         "rsna train: error: argument --weight-decay: must be a number in [0, 1], got nan"),
        (["train", "--images", "/x", "--threads", "-1"],
         "rsna train: error: argument --threads: must be an integer in [0, 4096], got -1"),
        (["train", "--images", "/x", "--epochs", "1.5"],
         "rsna train: error: argument --epochs: must be an integer in [1, 10000], got '1.5'"),
        (["infer", "--model", "/x.pt", "--threads", "-1"],
         "rsna infer: error: argument --threads: must be an integer in [1, 4096], got -1"),
        (["infer", "--model", "/x.pt", "--batch-size", "0"],
         "rsna infer: error: argument --batch-size: must be an integer in [1, 4096], got 0"),
        (["infer", "--model", "/x.pt", "--workers", "-3"],
         "rsna infer: error: argument --workers: must be an integer in [0, 1000000], got -3"),
        (["preprocess", "--size", "100000", "100000"],
         "rsna preprocess: error: argument --size: must be an integer in [8, 4096], got 100000"),
        (["preprocess", "--workers", "0"],
         "rsna preprocess: error: argument --workers: must be an integer in [1, 1000000], got 0"),
        (["preprocess", "--neg-ratio", "nan"],
         "rsna preprocess: error: argument --neg-ratio: must be a number in (0, 1000000], got nan"),
    ],
)  # fmt: skip
def test_numeric_options_are_usage_errors(argv: list[str], line: str) -> None:
    """Fixed: ``--lr inf`` or ``1e6`` ended in a traceback from evaluate, ``--weight-decay
    nan`` and ``--threads -1`` crashed, ``preprocess --size 100000 100000`` failed every
    image with MemoryError. Each is now refused once, where it is typed."""
    assert usage_error(argv[0], *NOWHERE, *argv[1:]) == line


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["eda", "--data", "/nonexistent", "--out", "/o", "--sample", "0"],
         "rsna eda: error: argument --sample: must be an integer in [1, 1000], got 0"),
        (["eda", "--data", "/nonexistent", "--out", "/o", "--workers", "-1"],
         "rsna eda: error: argument --workers: must be an integer in [1, 1000000], got -1"),
        (["eda", "--data", "/nonexistent", "--out", "/o", "--max-headers", "-5"],
         "rsna eda: error: argument --max-headers: must be an integer in [0, 100000000], got -5"),
        (["replicate", "--patients", "1"],
         "rsna replicate: error: argument --patients: must be an integer in [2, 100000], got 1"),
        (["replicate", "--timeout", "inf"],
         "rsna replicate: error: argument --timeout: must be a number in [1, 604800], got inf"),
        (["kaggle", "push", "--dataset-timeout", "nan"],
         "rsna kaggle push: error: argument --dataset-timeout: must be a number in [0, 604800], "
         "got nan"),
    ],
)  # fmt: skip
def test_eda_replicate_and_kaggle_numbers_are_usage_errors(argv: list[str], line: str) -> None:
    """The commands the first round left out: the same bounded types, refused as typed."""
    assert usage_error(*argv) == line


def test_eda_caps_workers_and_refuses_a_report_over_its_data(tmp_path: Path) -> None:
    from rsna_pkg.options import usable_cores

    def eda(out: Path) -> tuple[int, str, str]:
        o, e = io.StringIO(), io.StringIO()
        with redirect_stdout(o), redirect_stderr(e):
            code = cli.main(["eda", "--data", str(tmp_path), "--out", str(out),
                             "--workers", "10000", "--no-progress"])  # fmt: skip
        return code, o.getvalue(), e.getvalue()

    code, _, err = eda(tmp_path)
    assert code == 2 and "is the input --data" in err and len(err.strip().splitlines()) == 1
    code, said, err = eda(tmp_path / "report")  # no train.csv: refused after the cap line
    cores = usable_cores()
    assert f"--workers 10000 capped to {cores} ({cores} usable cores)" in said
    assert code == 2 and "train.csv" in err


def test_stored_backend_names_match_the_decoders() -> None:
    from rsna_pkg.dicom.backend import CHOICES
    from rsna_pkg.preprocess.config import BACKENDS

    assert CHOICES == BACKENDS


def test_infer_exits_3_when_no_image_was_scored(
    csv_data: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    """Fixed: a run whose every breast got the fallback exited 0, like a real one. With
    every image missing it still writes every id, then says so last and exits 3."""
    shutil.rmtree(csv_data / "test_images")
    (csv_data / "test_images").mkdir()
    run = infer(csv_data, [models["reduced"]], tmp_path / "sub.csv", "--workers", "0")
    assert run.rc == EXIT_ALL_FALLBACK == 3
    assert_clean(run)
    assert run.err.strip().splitlines()[-1].startswith("infer: every breast of ")
    assert_full_submission(csv_data, tmp_path / "sub.csv")


def test_synth_caps_workers_and_checks_its_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rsna synth`` is the one other command with --workers (it renders in a pool)."""
    import rsna_pkg.data.synth as synth
    from rsna_pkg.options import usable_cores

    assert usage_error("synth", tmp_path, "--patients", "4", "--test-frac", "nan") == (
        "rsna synth: error: argument --test-frac: must be a number in [0, 1), got nan"
    )
    seen: list[int] = []

    class Stop(Exception):
        """Raised in place of generating: the cap is all this test needs."""

    def generate(out: Path, cfg: Any) -> None:
        seen.append(cfg.workers)
        raise Stop

    monkeypatch.setattr(synth, "generate", generate)
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(Stop):
        cli.main(["synth", str(tmp_path / "s"), "--patients", "2", "--workers", "10000"])
    assert seen == [usable_cores()]
    assert err.getvalue().strip() == (
        f"--workers 10000 capped to {usable_cores()} ({usable_cores()} usable cores)"
    )


def test_diverged_training_is_one_line_not_a_traceback() -> None:
    """Fixed: NaN validation predictions (weights blown up by a high --lr) raised a
    RuntimeError ("validation predictions cover 0/12") and a traceback; now an InputError
    the command prints in one line."""
    from rsna_pkg.train.evaluate import score

    val = pd.DataFrame({"patient_id": [1, 1, 2, 2], "laterality": ["L", "R", "L", "R"],
                        "cancer": [0, 1, 0, 0]})  # fmt: skip
    with pytest.raises(InputError, match=r"not finite for 4/4 images: training diverged"):
        score(val, np.full(4, np.nan), "mean")
