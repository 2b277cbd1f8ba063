"""The one suite every registered decoder passes: bit-exact against pydicom on every case of
a syntax it declares, a clear refusal of the syntaxes it does not, its declared capabilities
(resolution levels, batches) honoured; and how ``auto`` routes. GPU cases skip without CUDA.

A new decoder in ``rsna_pkg.dicom.backend.DECODERS`` is tested here with no new test."""

from __future__ import annotations

import logging
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import torch
from dicom_cases import (
    LJPEG,
    LJPEG_ANY,
    assert_windowed_equals_apply_voi,
    encapsulated,
    good_and_cut_j2k,
    j2k_file,
    ljpeg_file,
    ljpeg_restart_frame,
    ll_band,
    make_dataset,
    phantom,
    real,
    write,
)

from rsna_pkg.dicom import apply_voi, decode_file, open_image, read_header, reduced_shape
from rsna_pkg.dicom.backend import (
    CHOICES,
    DECODERS,
    available_decoders,
    candidates,
    choose_decoder,
    get_decoder,
)
from rsna_pkg.dicom.batch import BatchDecoder, probe_frame, probe_scale, to_header_values
from rsna_pkg.dicom.frames import J2K_SYNTAXES, first_frame, j2k_info, jpeg_info, jpeg_precision
from rsna_pkg.dicom.pixels import area_downsample
from rsna_pkg.errors import DicomError

HERE = available_decoders()
DECODER_PARAMS = [pytest.param(n, marks=pytest.mark.skipif(n not in HERE, reason=f"{n} not "
                  "installed")) for n in DECODERS]  # fmt: skip
BATCH = [n for n in DECODERS if get_decoder(n).capabilities().batch]
BATCH_PARAMS = [p for p in DECODER_PARAMS if p.values[0] in BATCH]
J2K_PARAMS = [p for p in DECODER_PARAMS  # the decoders that declare JPEG 2000
              if J2K_SYNTAXES & set(get_decoder(p.values[0]).capabilities().syntaxes)]  # fmt: skip
CUDA = torch.cuda.is_available()
MPEG2 = "1.2.840.10008.1.2.4.100"


def _rle(tmp: Path, name: str, bits: int, signed: bool, shape: tuple[int, int]) -> Path:
    from pydicom.uid import RLELossless

    rng = np.random.default_rng(bits)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    stored = rng.integers(lo, hi + 1, shape)
    stored[: shape[0] // 2] = stored[0, 0]  # runs, as RLE meets them in a background
    ds = make_dataset(stored, signed=signed, bits_stored=bits,
                      bits_allocated=8 if bits <= 8 else 16)  # fmt: skip
    ds.compress(RLELossless)
    return write(ds, tmp / f"{name}.dcm")


def _noise(shape: tuple[int, int], bits: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, shape).astype(np.uint16)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of file a decoder may be handed, by name."""
    tmp = tmp_path_factory.mktemp("cases")
    out = {name: real(name) for name in ("RG1_J2KR", "RG3_J2KR", "MR2_J2KR", "693_J2KR",
           "J2K_pixelrep_mismatch", "JPEG-LL", "JPGLosslessP14SV1_1s_1f_8b", "RG1_UNCR")}  # fmt: skip
    out["j2k jp2 12"] = j2k_file(tmp, "a12", phantom(48, 40, bits=12), 12)
    out["j2k bare 16"] = j2k_file(tmp, "b16", phantom(40, 48, bits=16, seed=1), 16, fmt="J2K")
    out["j2k odd 10 mono1"] = j2k_file(tmp, "c10", phantom(133, 97, bits=10, seed=2), 10,
                                       photometric="MONOCHROME1")  # fmt: skip
    out["j2k signed header"] = j2k_file(tmp, "d16", phantom(32, 24, bits=16, seed=3), 16,
                                        signed_header=True)  # fmt: skip
    # JPEG Lossless .70 (selection value 1 only, PS3.5 A.4.3): 8 to 16 bits, odd sizes;
    # .57 takes every selection value 1-7.
    for bits in (8, 9, 10, 12, 14, 15, 16):
        shape = (37 + bits, 53 - bits)
        img = _noise(shape, bits, bits) if bits % 2 else phantom(*shape, bits=bits, seed=bits)
        out[f"ljpeg .70 {bits}"] = ljpeg_file(tmp, f"l70_{bits}", img, bits)
    out["ljpeg .70 signed header"] = ljpeg_file(tmp, "l70s", phantom(20, 21, bits=16), 16,
                                                signed_header=True)  # fmt: skip
    out["ljpeg .70 mono1"] = ljpeg_file(tmp, "l70m", phantom(21, 20, bits=12), 12,
                                        photometric="MONOCHROME1")  # fmt: skip
    for sv in range(1, 8):
        for bits in (8, 12, 16):
            img = _noise((19 + sv, 23), bits, 10 * sv + bits)
            out[f"ljpeg .57 sv{sv} {bits}"] = ljpeg_file(tmp, f"l57_{sv}_{bits}", img, bits,
                                                         sv, LJPEG_ANY)  # fmt: skip
    # a syntax no decoder here declares (MPEG2 Main Profile): refused by name and by auto
    out["mpeg2"] = write(encapsulated(phantom(8, 8), b"\x00\x00\x01\xb3" + bytes(60),
                                      MPEG2, 12), tmp / "mpeg2.dcm")  # fmt: skip
    # restart markers (DRI + RSTm), every row or every 3 rows
    for bits, sv, tsuid, every in ((12, 1, LJPEG, 1), (16, 1, LJPEG, 3), (9, 1, LJPEG, 2),
                                   (16, 7, LJPEG_ANY, 1), (12, 4, LJPEG_ANY, 3)):  # fmt: skip
        img = _noise((29, 17), bits, 100 + bits + sv)
        img[10:20] = img[10, 0]  # flat rows: zero differences, category 0
        frame = ljpeg_restart_frame(img, bits, sv, every)
        assert b"\xff\xdd" in frame and b"\xff\xd0" in frame and b"\xff\xd7" in frame
        ds = encapsulated(img, frame, tsuid, bits)
        out[f"ljpeg {tsuid[-3:]} sv{sv} {bits} restart/{every}"] = write(
            ds, tmp / f"rst_{bits}_{sv}_{every}.dcm"
        )
    for bits, signed, shape in ((12, False, (101, 67)), (16, False, (64, 63)), (8, False, (9, 7)),
                                (14, True, (50, 51)), (16, True, (20, 21))):  # fmt: skip
        out[f"rle {bits}{'s' if signed else ''}"] = _rle(tmp, f"rle{bits}{signed}", bits, signed,
                                                         shape)  # fmt: skip
    return out


def _truth(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def _declares(name: str, path: Path) -> bool:
    return read_header(path).transfer_syntax_uid in get_decoder(name).capabilities().syntaxes


@pytest.mark.parametrize("name", DECODER_PARAMS)
def test_exact_on_every_declared_case(name: str, cases: dict[str, Path]) -> None:
    """Stored values equal pydicom's (dtype, sign, shape), case by case."""
    mine = [label for label, path in cases.items() if _declares(name, path)]
    assert "mpeg2" not in mine
    assert mine, f"{name} declares no syntax of the cases"
    for label in mine:
        path = cases[label]
        result = decode_file(path, name)
        ref = _truth(path)
        header = read_header(path)
        want = np.dtype(f"{'i' if header.signed else 'u'}{max(1, header.bits_allocated // 8)}")
        assert result.array.dtype == want, (label, result.array.dtype)
        np.testing.assert_array_equal(result.array, ref, err_msg=f"{name} on {label}")


def one_per_kind(data: Path) -> list[Path]:
    """One synthetic file per (syntax, bits, photometric, VOI function, JP2 or bare)."""
    from rsna_pkg.dicom.frames import sniff_codec

    seen: dict[tuple, Path] = {}
    for path in sorted(data.glob("*_images/*/*.dcm")):
        h = read_header(path)
        magic = sniff_codec(first_frame(pydicom.dcmread(path), path))
        key = (h.transfer_syntax_uid, h.bits_stored, h.photometric, h.voi_lut_function, magic)
        seen.setdefault(key, path)
    return list(seen.values())


@pytest.fixture(scope="module")
def machine_files(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """:func:`one_per_kind`, and RLE copies (pixels unchanged) of its first two files: no
    machine of the synthetic set writes RLE, and ``rsna bench decode`` measures such copies."""
    from pydicom.uid import RLELossless

    files = one_per_kind(synth_data)
    tmp = tmp_path_factory.mktemp("machine_rle")
    for path in files[:2]:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless, ds.pixel_array)
        files.append(write(ds, tmp / f"{path.stem}_rle.dcm"))
    return files


@pytest.mark.parametrize("name", DECODER_PARAMS)
def test_exact_on_synthetic_machine_files(name: str, machine_files: list[Path]) -> None:
    files = [p for p in machine_files if _declares(name, p)]
    assert len(files) >= 2, name
    for path in files:
        ref = _truth(path)
        arr = decode_file(path, name).array
        assert arr.dtype == ref.dtype, (path, name)
        np.testing.assert_array_equal(arr, ref, err_msg=f"{path} {name}")


def test_read_frame_equals_pydicoms_first_frame(cases: dict[str, Path],
                                                machine_files: list[Path]) -> None:  # fmt: skip
    """The one-join frame read gives pydicom's frame 0 byte for byte, whether the frame is
    one fragment or many (the synthetic J2K files split theirs)."""
    from pydicom.encaps import parse_fragments

    from rsna_pkg.dicom.frames import NATIVE_SYNTAXES
    from rsna_pkg.dicom.pixeldata import read_frame, read_pixel_dataset

    fragment_counts = set()
    for path in [*cases.values(), *machine_files]:
        header = read_header(path)
        if header.transfer_syntax_uid in NATIVE_SYNTAXES:
            continue
        ds = read_pixel_dataset(path, header)
        assert read_frame(path, header) == first_frame(ds, path), path
        fragment_counts.add(min(parse_fragments(ds.PixelData)[0], 3))  # BOT + fragments
    assert {2, 3} <= fragment_counts  # one fragment and several were both met


@pytest.mark.parametrize("name", DECODER_PARAMS)
def test_refuses_undeclared_syntax_clearly(name: str, cases: dict[str, Path]) -> None:
    others = [label for label, path in cases.items() if not _declares(name, path)]
    assert "mpeg2" in others
    for label in others:
        with pytest.raises(DicomError, match=f"not supported by decoder '{name}'"):
            decode_file(cases[label], name)


@pytest.mark.parametrize("name", J2K_PARAMS)
def test_levels_capability_honoured(name: str, cases: dict[str, Path]) -> None:
    """A decoder declaring resolution levels decodes J2K levels straight from the codestream
    (the ceil shape rule, the 5/3 wavelet's LL band to the bit); any other returns the area
    mean of its full decode, and DicomImage takes levels from it only when it declares them."""
    caps = get_decoder(name).capabilities()
    path = cases["j2k odd 10 mono1"]
    assert read_header(path).transfer_syntax_uid in caps.syntaxes
    full = decode_file(path, name).array
    half = decode_file(path, name, 2)
    assert half.array.shape == reduced_shape(*full.shape, 2)
    assert half.native_reduce == caps.levels
    image = open_image(path)
    assert (image.levels(name) > 0) == caps.levels
    level = image.decode(2, name)
    assert level.native == caps.levels and level.backend == name
    if caps.levels:
        # exactly the level's LL band of the lossless codestream (133 x 97: odd sides, where
        # Pillow's own rounding of the level size is off by one)
        np.testing.assert_array_equal(half.array, np.clip(ll_band(full, 2), 0, 1023))
        np.testing.assert_array_equal(level.array, half.array)
    else:
        np.testing.assert_array_equal(half.array, area_downsample(full, 2))
        np.testing.assert_array_equal(level.array, area_downsample(full, 2))


def _windows(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Corners, edges, one pixel, an interior block, odd starts, and the whole level."""
    return [(0, 0, 1, 1), (rows - 1, cols - 1, rows, cols), (0, 0, rows, cols),
            (rows // 3, cols // 4, 2 * rows // 3 + 1, cols - 1), (1, 0, rows, cols // 2 + 1),
            (0, cols // 2, rows // 2, cols)]  # fmt: skip


DECLINES_WINDOWS = {"J2K_pixelrep_mismatch", "j2k signed header"}  # levels can't stand in


@pytest.mark.parametrize("name", J2K_PARAMS)
def test_windows_capability_honoured(name: str, cases: dict[str, Path],
                                     machine_files: list[Path]) -> None:  # fmt: skip
    """``DicomImage.decode_window`` gives exactly the window's pixels of the whole level, with
    every J2K decoder, at full resolution and at levels; a decoder declaring windows decodes
    the window alone (``Level.window``) on every file it does not decline by design: real
    lossless files (15-bit, signed), odd sizes, fragmented frames of the synthetic machines."""
    caps = get_decoder(name).capabilities()
    labelled = {k: p for k, p in cases.items() if _declares(name, p)} | {
        p.stem: p for p in machine_files if _declares(name, p)}  # fmt: skip
    assert {"RG1_J2KR", "693_J2KR", "j2k odd 10 mono1"} <= set(labelled)
    if not caps.windows:  # the window is a crop of the whole level: one small file will do
        labelled = {"j2k odd 10 mono1": labelled["j2k odd 10 mono1"]}
    windowed = 0
    for label, path in labelled.items():
        deepest = open_image(path).levels(name)
        for reduce in sorted({0, min(1, deepest), min(3, deepest)}):
            whole = open_image(path).decode(reduce, name).array
            windows = _windows(*whole.shape)
            for window in windows if reduce else [windows[i] for i in (0, 2, 3)]:
                image = open_image(path)
                got = image.decode_window(reduce, window, name)
                y0, x0, y1, x1 = window
                np.testing.assert_array_equal(got.array, whole[y0:y1, x0:x1],
                                              err_msg=f"{label} r{reduce} {window}")  # fmt: skip
                assert got.array.dtype == whole.dtype
                expected = caps.windows and label not in DECLINES_WINDOWS
                assert got.window == expected, (label, reduce, window, image.window_note)
                straight = caps.levels and label not in DECLINES_WINDOWS  # (levels alike)
                assert got.native == (reduce > 0 and straight), (label, reduce)
                if caps.windows and not expected:
                    assert image.window_note.startswith("declined: "), image.window_note
                windowed += got.window
    assert windowed > 0 or not caps.windows


def test_registry_and_vocabulary() -> None:
    assert {"pydicom", "dicomsdl", "libjpeg-turbo", "openjpeg", "imagecodecs-rle", "dali",
            "nvimgcodec"} <= set(DECODERS)  # fmt: skip
    assert CHOICES[:2] == ("auto", "cpu") and set(CHOICES[2:]) == set(DECODERS)
    for name in DECODERS:
        caps = get_decoder(name).capabilities()
        assert get_decoder(name).name == name
        assert caps.device in ("cpu", "gpu") and caps.syntaxes
        assert caps.batch == (caps.device == "gpu"), name
    with pytest.raises(ValueError, match="unknown decoder"):
        get_decoder("nope")


def test_auto_refuses_a_syntax_nobody_declares(cases: dict[str, Path]) -> None:
    assert choose_decoder(read_header(cases["mpeg2"]), 0) is None
    with pytest.raises(DicomError, match=f"unsupported transfer syntax {MPEG2}"):
        decode_file(cases["mpeg2"])


def test_auto_picks_the_cheapest_declared_decoder(cases: dict[str, Path]) -> None:
    """Per syntax, from the declared costs: the numba lossless JPEG decoder (libjpeg-turbo
    where numba is missing) for JPEG lossless, dicomsdl for a full J2K decode, a decoder
    with resolution levels for a reduced J2K decode, imagecodecs' RLE codec for RLE, pydicom
    for native files; never a batch decoder."""
    ljpeg = "numba-ljpeg" if "numba-ljpeg" in HERE else "libjpeg-turbo"
    expected = {"ljpeg .70 12": (ljpeg, ljpeg), "ljpeg .57 sv3 12": (ljpeg, ljpeg),
                "j2k jp2 12": ("dicomsdl", "openjpeg"),
                "rle 12": ("imagecodecs-rle", "imagecodecs-rle"), "RG1_UNCR": ("pydicom", "pydicom")}  # fmt: skip
    for label, (full, reduced) in expected.items():
        header = read_header(cases[label])
        got = (choose_decoder(header, 0), choose_decoder(header, 2))
        assert [d.name if d else None for d in got] == [full, reduced], label
        assert not any(d.capabilities().batch for d in candidates(header, 0))
        assert decode_file(cases[label]).backend == full


def test_declined_frame_goes_to_the_next_decoder(tmp_path: Path) -> None:
    """A .70 frame whose height comes in a DNL marker: libjpeg-turbo (and dicomsdl, which
    decodes JPEG through it) cannot read it, nor does the numba decoder, so each declines it
    by design, and ``auto`` hands it to pydicom, exactly; chosen by name, the decline is a
    clear DicomError."""
    img = phantom(37, 29, bits=12)
    path = ljpeg_file(tmp_path, "dnl", img, 12, dnl=True)
    assert jpeg_info(first_frame(pydicom.dcmread(path), path)).height == 0
    result = decode_file(path)
    assert result.backend == "pydicom", result
    assert "libjpeg-turbo: height defined by a DNL marker" in result.note
    np.testing.assert_array_equal(result.array, img)
    for name in ("libjpeg-turbo", "dicomsdl", *(["numba-ljpeg"] if "numba-ljpeg" in HERE else [])):
        with pytest.raises(DicomError, match="declined by .*DNL"):
            decode_file(path, name)


# -- batch decoders: the per-file fallback, windowing, probes -------------------------------


def _batch(name: str, **options: object) -> BatchDecoder:
    return get_decoder(name).batch_decoder(device="cpu", **options)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", BATCH_PARAMS)
def test_batch_exact_with_fallbacks(name: str, cases: dict[str, Path],
                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    dec = _batch(name, batch_size=3)
    files = [cases[k] for k in ("j2k jp2 12", "j2k bare 16", "j2k odd 10 mono1",
             "j2k signed header", "693_J2KR", "JPEG-LL", "JPGLosslessP14SV1_1s_1f_8b",
             "MR2_J2KR", "RG1_J2KR", "rle 16s")]  # fmt: skip
    with caplog.at_level(logging.INFO):
        arrays = dec.decode_batch(files)
    for path, arr in zip(files, arrays, strict=True):
        ref = _truth(path)
        assert isinstance(arr, np.ndarray) and arr.dtype == ref.dtype, path
        np.testing.assert_array_equal(arr, ref, err_msg=str(path))
    sources = dec.last_sources
    assert [sources[i] for i in (0, 1, 2, 3, 7, 8)] == [dec.source] * 6, sources
    # a signed codestream: refused by design (DALI) or by its failed probe (nvImageCodec)
    assert sources[4].startswith("fallback:dicomsdl: signed 14-bit j2k")
    # a syntax the batch decoder does not take: the per-file route's own choice, named
    assert sources[9].startswith("fallback:imagecodecs-rle: "), sources[9]
    assert dec.probes[("j2k", 12, False)] == "exact" or "scale" in dec.probes[("j2k", 12, False)]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("693_J2KR" in m and "signed 14-bit" in m for m in logged), logged


@pytest.mark.parametrize("name", BATCH_PARAMS)
def test_batch_windowed_equals_apply_voi(name: str, tmp_path: Path) -> None:
    files = [
        j2k_file(tmp_path, "w12", phantom(40, 32, bits=12), 12, photometric="MONOCHROME1"),
        real("RG3_J2KR"),
        real("693_J2KR"),  # through the fallback
    ]
    assert_windowed_equals_apply_voi(_batch(name, batch_size=2), files)


@pytest.mark.parametrize("name", BATCH_PARAMS)
def test_batch_falls_back_per_file_and_per_batch(name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    img, good, broken = good_and_cut_j2k(tmp_path)  # the cut one decodes nowhere
    dec = _batch(name, batch_size=2)
    with pytest.raises(DicomError, match="dicomsdl decode failed"):  # the fallback fails too
        dec.decode_batch([good, broken])
    arrays = dec.decode_batch([good, good])  # usable again after the failure
    assert dec.last_sources == [dec.source] * 2
    np.testing.assert_array_equal(arrays[0], img)
    mr2 = real("MR2_J2KR")
    real_run = dec._run

    def one_lost(frames: list[bytes]) -> list[object]:
        out = real_run(frames)
        out[-1] = "the library returned no image"
        return out

    monkeypatch.setattr(dec, "_run", one_lost)
    arrays = dec.decode_batch([good, mr2])
    assert dec.last_sources == [dec.source, "fallback:dicomsdl: the library returned no image"]
    np.testing.assert_array_equal(arrays[1], _truth(mr2))

    def fail(frames: object) -> None:
        raise RuntimeError("nvjpeg2k says no")

    monkeypatch.setattr(dec, "_run", fail)
    arrays = dec.decode_batch([good, mr2])
    assert all(s.startswith(f"fallback:dicomsdl: {dec.label} failed") for s in dec.last_sources)
    np.testing.assert_array_equal(arrays[0], img)
    np.testing.assert_array_equal(arrays[1], _truth(mr2))


@pytest.mark.parametrize("name", BATCH_PARAMS)
def test_batch_decoder_through_the_per_file_interface(name: str, tmp_path: Path) -> None:
    img = phantom(45, 37, bits=12, seed=5)
    path = j2k_file(tmp_path, "r", img, 12)
    full = decode_file(path, name)
    assert full.backend == name and not full.note and not full.native_reduce
    np.testing.assert_array_equal(full.array, img)
    assert decode_file(real("693_J2KR"), name).note.startswith("fallback:dicomsdl: signed")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("name", BATCH_PARAMS)
def test_batch_gpu_matches_pydicom(name: str, tmp_path: Path) -> None:
    files = [
        j2k_file(tmp_path, "g12", phantom(64, 48, bits=12), 12),
        j2k_file(tmp_path, "g14", phantom(64, 48, bits=14, seed=4), 14, photometric="MONOCHROME1",
                 fmt="J2K"),
        real("RG1_J2KR"),
        real("JPEG-LL"),
        real("693_J2KR"),
    ]  # fmt: skip
    gpu = get_decoder(name).batch_decoder(device="auto", batch_size=4)  # type: ignore[attr-defined]
    assert gpu.device != "cpu"
    arrays = gpu.decode_batch(files)
    assert gpu.last_sources[:3] == [gpu.source] * 3, gpu.last_sources
    for path, arr in zip(files, arrays, strict=True):
        assert arr.is_cuda
        np.testing.assert_array_equal(arr.cpu().numpy().astype(np.int64),
                                      _truth(path).astype(np.int64))  # fmt: skip
    for path, t in zip(files[:3], gpu.decode_windowed(files[:3]), strict=True):
        ref = apply_voi(_truth(path), read_header(path))
        np.testing.assert_allclose(t.cpu().numpy(), ref, atol=1e-5)


@pytest.mark.parametrize(("codec", "bits", "signed"), [("jpeg", 8, False), ("jpeg", 12, False),
                         ("jpeg", 16, False), ("j2k", 10, False), ("j2k", 12, True),
                         ("j2k", 16, False)])  # fmt: skip
def test_probe_frames_hold_the_full_range(codec: str, bits: int, signed: bool) -> None:
    frame, truth = probe_frame(codec, bits, signed)
    lo = -(1 << (bits - 1)) if signed else 0
    assert truth.min() == lo and truth.max() == lo + (1 << bits) - 1
    if codec == "jpeg":
        assert jpeg_precision(frame) == bits
        np.testing.assert_array_equal(imagecodecs.ljpeg_decode(frame), truth)
    else:
        info = j2k_info(frame)
        assert (info.precision, info.signed) == (bits, signed)
        np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(frame), truth)
    assert probe_scale(truth, truth) == 1.0
    if not signed:
        assert probe_scale(truth.astype(np.float64) * 16, truth) == 16.0
    if bits > 8:  # an 8-bit ramp of 128 steps survives halving
        assert probe_scale(truth // 2, truth) is None


def test_header_values_on_torch_match_numpy() -> None:
    """The GPU finishing step (torch) and the CPU one agree, dtypes included."""
    h16 = read_header(real("J2K_pixelrep_mismatch"))  # 13 bits stored, signed header
    raw = np.array([[0, 4095, 4096, 8191]], dtype=np.int32)
    np.testing.assert_array_equal(to_header_values(raw, h16), [[0, 4095, -4096, -1]])
    t = to_header_values(torch.from_numpy(raw), h16)
    assert t.dtype == torch.int16
    np.testing.assert_array_equal(t.numpy(), [[0, 4095, -4096, -1]])
    h8 = read_header(real("JPGLosslessP14SV1_1s_1f_8b"))
    assert to_header_values(torch.tensor([[0, 255]]), h8).dtype == torch.uint8


def test_jpeg_precision_of_real_files() -> None:
    for name, bits in (("JPEG-LL", 16), ("JPGLosslessP14SV1_1s_1f_8b", 8)):
        ds = pydicom.dcmread(real(name))
        assert jpeg_precision(first_frame(ds, name)) == bits
    assert LJPEG == "1.2.840.10008.1.2.4.70"


@pytest.mark.parametrize(("shape", "dtype"), [((97, 61), np.uint16), ((64, 33), np.int16),
                                              ((5, 3), np.uint8), ((130, 257), np.int32)])  # fmt: skip
def test_area_pyramid_equals_a_plain_block_mean(shape: tuple[int, int], dtype: type) -> None:
    """The full-decode route serves every level from one pyramid of block sums: each level,
    asked in any order, is the mean of each 2**r x 2**r block (an edge block over the pixels
    it has) rounded half to even, computed here in float64 block by block; a window of a
    level, with its sums kept or summed from the pixels under it alone, is that level's
    window."""
    from rsna_pkg.dicom.pixels import AreaPyramid

    info = np.iinfo(dtype)
    arr = np.random.default_rng(shape[0]).integers(max(info.min, -(2**20)),
                                                   min(info.max, 2**20), shape).astype(dtype)  # fmt: skip
    pyramid = AreaPyramid(arr)
    for r in (3, 1, 5, 2, 0, 4, 1):
        f = 2**r
        expected = np.array([[np.rint(arr[y : y + f, x : x + f].astype(np.float64).mean())
                              for x in range(0, shape[1], f)]
                             for y in range(0, shape[0], f)]).astype(dtype)  # fmt: skip
        got = pyramid.level(r)
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, expected, err_msg=f"level {r}")
        np.testing.assert_array_equal(area_downsample(arr, r), expected, err_msg=f"level {r}")
        h, w = expected.shape
        for y0, x0, y1, x1 in (
            (0, 0, h, w),
            (h // 3, w // 4, h, w),
            (1, 0, max(1, h - 1), w // 2 + 1),
        ):
            for source in (pyramid, AreaPyramid(arr)):  # kept sums, or the pixels alone
                got = source.window(r, (y0, x0, y1, x1))
                np.testing.assert_array_equal(got, expected[y0:y1, x0:x1], err_msg=f"window {r}")
