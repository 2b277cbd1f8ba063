"""The decode entry points: the header wins on signedness, both J2K wrappings, the reduce shape
rule across decoders, bad input. Exactness per decoder: tests/test_decoders.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from dicom_cases import J2K, LJPEG, encapsulated, ll_band, make_dataset, phantom, real, write

from rsna_pkg.dicom import available_backends, decode, decode_file, read_header, reduced_shape
from rsna_pkg.dicom.backend import get_decoder
from rsna_pkg.dicom.frames import j2k_info, sniff_codec
from rsna_pkg.dicom.pixels import area_downsample, to_stored
from rsna_pkg.errors import DicomError

BACKENDS = available_backends()
NVIMGCODEC = ("nvimgcodec",) if "nvimgcodec" in BACKENDS else ()


def supported(name: str, path: Path) -> bool:
    """Declared by the backend, never found out by trying."""
    return read_header(path).transfer_syntax_uid in get_decoder(name).capabilities().syntaxes


def test_pixelrep_mismatch_trusts_header() -> None:
    path = real("J2K_pixelrep_mismatch")
    frame = pydicom.encaps.generate_frames(pydicom.dcmread(path).PixelData, number_of_frames=1)
    assert not j2k_info(next(frame)).signed  # the codestream says unsigned
    for backend in (b for b in BACKENDS if supported(b, path)):
        arr = decode(path, backend=backend)
        assert arr.dtype == np.int16 and arr.min() == -2000, backend


def test_jp2_wrapped_and_bare_codestreams(tmp_path: Path) -> None:
    img = phantom(40, 30, bits=12)
    for fmt, magic in (("JP2", "jp2"), ("J2K", "j2k")):
        frame = imagecodecs.jpeg2k_encode(img, level=0, codecformat=fmt, reversible=True,
                                          bitspersample=12)  # fmt: skip
        assert sniff_codec(frame) == magic
        info = j2k_info(frame)
        assert (info.height, info.width, info.precision, info.signed) == (40, 30, 12, False)
        path = write(encapsulated(img, frame, J2K, 12), tmp_path / f"{fmt}.dcm")
        for backend in (b for b in BACKENDS if supported(b, path)):
            np.testing.assert_array_equal(decode(path, backend=backend), img)
            for r in (1, 2):
                assert decode(path, backend, r).shape == reduced_shape(40, 30, r)


@pytest.mark.parametrize("name", ["RG3_J2KR", "MR2_J2KR", "693_J2KR", "J2K_pixelrep_mismatch"])
def test_reduce_same_shape_every_backend(name: str) -> None:
    path = real(name)
    h = read_header(path)
    for r in (1, 3):
        shapes = {b: decode(path, b, r).shape for b in BACKENDS if supported(b, path)}
        assert set(shapes.values()) == {reduced_shape(h.rows, h.columns, r)}, shapes


def test_native_reduce_close_to_area_mean() -> None:
    path = real("MR2_J2KR")
    for r in (1, 2):
        native = decode_file(path, "openjpeg", r)
        area = decode_file(path, "dicomsdl", r)
        assert native.native_reduce and not area.native_reduce
        diff = np.abs(native.array.astype(float) - area.array.astype(float))
        span = float(area.array.max() - area.array.min())
        assert diff.mean() < 0.03 * span and np.median(diff) <= 0.01 * span


@pytest.mark.parametrize("name", ["RG1_J2KR", "693_J2KR"])
def test_levels_are_the_wavelet_ll_band(name: str) -> None:
    """Real lossless codestreams (RG1: a 15-bit CR of 1955 x 1841; 693: a signed 16-bit CT of
    512 x 512): each level decoded from the codestream is, to the bit, the LL band of the
    reversible 5/3 wavelet of the full decode, with no fallback. RG1 at levels 2 and 3 is
    where Pillow's own rounding of the level size is off by one from OpenJPEG's (its load
    failed there with "broken data stream" before load_level sized the level itself)."""
    path = real(name)
    h = read_header(path)
    full = decode_file(path, "openjpeg").array
    bits = h.bits_stored
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if h.signed else (0, (1 << bits) - 1)
    for r in (1, 2, 3):
        native = decode_file(path, "openjpeg", r)
        assert native.native_reduce and not native.note, native.note
        assert native.array.shape == reduced_shape(h.rows, h.columns, r)
        np.testing.assert_array_equal(native.array, np.clip(ll_band(full, r), lo, hi))
    if name == "RG1_J2KR":
        f = 8
        pillow_shape = (int((h.rows + f // 2) / f), int((h.columns + f // 2) / f))
        assert pillow_shape != reduced_shape(h.rows, h.columns, 3)  # the case named above


def test_pillow_failure_steps_down_a_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should Pillow still refuse a level, the next shallower one that decodes is taken and
    area-downsampled the rest of the way, and the note says where it failed."""
    from rsna_pkg.dicom import openjpeg_backend

    real_level = openjpeg_backend.decode_reduced

    def refuse_deep(frame: bytes, reduce: int) -> np.ndarray:
        if reduce >= 2:
            raise OSError("broken data stream when reading image file")
        return real_level(frame, reduce)

    monkeypatch.setattr(openjpeg_backend, "decode_reduced", refuse_deep)
    path = real("RG1_J2KR")
    out = decode_file(path, "openjpeg", 3)
    assert out.native_reduce and "Pillow reduce failed at 3" in out.note and "2:" in out.note
    level1 = decode_file(path, "openjpeg", 1)
    assert level1.native_reduce and not level1.note
    np.testing.assert_array_equal(out.array, area_downsample(level1.array, 2))


@pytest.mark.parametrize(
    ("arr", "r", "expected"),
    [
        (np.arange(16).reshape(4, 4), 1, [[2, 4], [10, 12]]),  # means 2.5 -> 2 (half to even)
        (np.array([[1, 3, 5], [1, 3, 5], [7, 7, 9]]), 1, [[2, 5], [7, 9]]),  # partial blocks
        (np.ones((5, 3)), 2, [[1], [1]]),
        (np.array([[-4, -2], [0, 2]], dtype=np.int16), 1, [[-1]]),
    ],
)
def test_area_downsample(arr: np.ndarray, r: int, expected: list) -> None:
    out = area_downsample(arr, r)
    assert out.dtype == arr.dtype
    np.testing.assert_array_equal(out, np.array(expected))


def test_area_downsample_matches_block_means() -> None:
    rng = np.random.default_rng(3)
    for rows, cols, r in [(37, 23, 1), (37, 23, 2), (64, 9, 3), (5, 70, 4)]:
        arr = rng.integers(-3000, 60000, (rows, cols)).astype(np.int32)
        f = 2**r
        naive = [[np.rint(arr[y : y + f, x : x + f].mean()) for x in range(0, cols, f)]
                 for y in range(0, rows, f)]  # fmt: skip
        np.testing.assert_array_equal(area_downsample(arr, r), np.array(naive))


def test_to_stored_sign_extends_bits_stored() -> None:
    h = read_header(real("J2K_pixelrep_mismatch"))  # 13 bits stored, signed
    raw = np.array([[0, 4095, 4096, 8191]], dtype=np.uint16)
    np.testing.assert_array_equal(to_stored(raw, h), [[0, 4095, -4096, -1]])


# -- bad input ------------------------------------------------------------------------------


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    img = phantom(32, 24)
    good_j2k = imagecodecs.jpeg2k_encode(img, level=0, codecformat="J2K", reversible=True,
                                         bitspersample=12)  # fmt: skip
    src = real("MR2_J2KR")
    data = src.read_bytes()
    out: dict[str, tuple[Path, str]] = {}
    (tmp_path / "zero.dcm").write_bytes(b"")
    out["zero"] = (tmp_path / "zero.dcm", "zero-byte")
    (tmp_path / "trunc.dcm").write_bytes(data[: len(data) // 2])
    out["truncated"] = (tmp_path / "trunc.dcm", "")
    native = real("RG3_UNCR").read_bytes()
    (tmp_path / "trunc_native.dcm").write_bytes(native[: len(native) - 5000])
    out["truncated native"] = (tmp_path / "trunc_native.dcm", "")
    (tmp_path / "text.dcm").write_bytes(b"patient_id,image_id\n1,2\n" * 20)
    out["not dicom"] = (tmp_path / "text.dcm", "not a DICOM")
    ds = make_dataset(img)
    del ds.PixelData
    out["no pixels"] = (write(ds, tmp_path / "nopix.dcm"), "PixelData")
    ds.file_meta.TransferSyntaxUID = J2K
    out["no pixels j2k"] = (write(ds, tmp_path / "nopix_j2k.dcm"), "PixelData")
    ds = encapsulated(img, good_j2k, "1.2.840.10008.1.2.4.100", 12)  # MPEG2: not ours
    out["syntax"] = (write(ds, tmp_path / "mpeg.dcm"), "transfer syntax")
    corrupt = good_j2k[:60] + bytes(len(good_j2k) - 60)
    out["corrupt j2k"] = (write(encapsulated(img, corrupt, J2K, 12), tmp_path / "bad.dcm"), "")
    junk = b"\xff\xd8" + bytes(range(256)) * 4
    out["corrupt ljpeg"] = (write(encapsulated(img, junk, LJPEG, 12), tmp_path / "badl.dcm"), "")
    out["colour"] = (real("US1_J2KR"), "SamplesPerPixel=3")
    out["missing"] = (tmp_path / "nope.dcm", "not found")
    return out


def test_bad_input_raises_dicom_error(tmp_path: Path) -> None:
    for label, (path, reason) in bad_files(tmp_path).items():
        if label == "colour":
            path = Path(shutil.copy(path, tmp_path / "us1.dcm"))
        for backend in ("auto", "pydicom", "dicomsdl", *NVIMGCODEC):
            if label in ("no pixels", "truncated native") and backend != "auto":
                backend = "pydicom"  # dicomsdl and nvimgcodec declare no uncompressed syntax
            with pytest.raises(DicomError) as info:
                decode(path, backend=backend)
            assert info.value.path == str(path), label
            assert reason in info.value.reason, (label, backend, info.value.reason)
