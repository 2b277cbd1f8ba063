"""nvImageCodec batch decoder: its CPU codecs here (bit-exact against pydicom, with the
per-file fallback for what they cannot decode), the GPU where CUDA is."""

from __future__ import annotations

import logging
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import torch
from dicom_cases import (
    assert_windowed_equals_apply_voi,
    good_and_cut_j2k,
    j2k_file,
    phantom,
    real,
)

from rsna_pkg.dicom import apply_voi, decode_file, read_header
from rsna_pkg.dicom.batch import probe_frame, probe_scale, to_header_values
from rsna_pkg.dicom.frames import j2k_info
from rsna_pkg.dicom.nvimgcodec_backend import NvImageCodecDecoder, nvimgcodec_importable
from rsna_pkg.errors import DicomError

pytestmark = pytest.mark.skipif(not nvimgcodec_importable(), reason="nvimgcodec not installed")


@pytest.fixture(scope="module")
def cpu_decoder() -> NvImageCodecDecoder:
    return NvImageCodecDecoder(device="cpu", batch_size=3, threads=2)


def test_cpu_batch_bit_exact_with_fallbacks(tmp_path: Path, cpu_decoder: NvImageCodecDecoder,
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    files = [
        j2k_file(tmp_path, "a12", phantom(48, 40, bits=12), 12),  # JP2-wrapped
        j2k_file(tmp_path, "b16", phantom(40, 48, bits=16, seed=1), 16, fmt="J2K"),  # bare
        j2k_file(tmp_path, "c10m1", phantom(32, 32, bits=10, seed=2), 10, photometric="MONOCHROME1"),
        # 16-bit unsigned codestream, header says signed: nvImageCodec decodes, header wins.
        j2k_file(tmp_path, "d_sign", phantom(32, 24, bits=16, seed=3), 16, signed_header=True),
        real("693_J2KR"),  # signed codestream: the CPU codec gives no image -> fallback
        real("JPEG-LL"),  # 16-bit lossless JPEG: libjpeg-turbo here cannot -> fallback
        real("JPGLosslessP14SV1_1s_1f_8b"),  # 8-bit lossless JPEG: decoded
        real("MR2_J2KR"),
        real("RG1_J2KR"),  # 15 bits, MONOCHROME1
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rsna_pkg.dicom.nvimgcodec_backend"):
        arrays = cpu_decoder.decode_batch(files)
    sources = cpu_decoder.last_sources
    for path, arr in zip(files, arrays, strict=True):
        ref = pydicom.dcmread(path).pixel_array
        assert isinstance(arr, np.ndarray) and arr.dtype == ref.dtype, path
        np.testing.assert_array_equal(arr, ref, err_msg=str(path))
    decoded = [i for i, s in enumerate(sources) if s == "nvimgcodec"]
    assert decoded == [0, 1, 2, 3, 6, 7, 8], sources
    assert sources[4].startswith("fallback:dicomsdl: signed 14-bit j2k not decoded exactly on cpu")
    assert sources[5].startswith("fallback:dicomsdl: 16-bit jpeg not decoded exactly on cpu")
    assert cpu_decoder.probes[("j2k", 12, False)] == "exact"
    assert cpu_decoder.probes[("j2k", 14, True)].startswith("probe: nvImageCodec returned no")
    # every fallback is logged with its file and reason
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("693_J2KR" in m and "signed 14-bit" in m for m in logged), logged
    assert any("JPEG-LL" in m and "16-bit jpeg" in m for m in logged), logged


def test_backend_interface_and_reduce(tmp_path: Path) -> None:
    img = phantom(45, 37, bits=12, seed=5)
    path = j2k_file(tmp_path, "r", img, 12)
    full = decode_file(path, "nvimgcodec")
    assert full.backend == "nvimgcodec" and not full.note and not full.native_reduce
    np.testing.assert_array_equal(full.array, img)
    # no wavelet-level decode in nvImageCodec: reduce is the area mean of the full decode
    half = decode_file(path, "nvimgcodec", 2)
    assert not half.native_reduce
    np.testing.assert_array_equal(half.array, decode_file(path, "dicomsdl", 2).array)
    fallback = decode_file(real("693_J2KR"), "nvimgcodec")
    assert fallback.note.startswith("fallback:dicomsdl: signed")


def test_windowed_equals_apply_voi(tmp_path: Path, cpu_decoder: NvImageCodecDecoder) -> None:
    files = [
        j2k_file(tmp_path, "w12", phantom(40, 32, bits=12), 12, photometric="MONOCHROME1"),
        real("RG3_J2KR"),
        real("693_J2KR"),  # through the fallback
    ]
    assert_windowed_equals_apply_voi(cpu_decoder, files)


def test_per_file_and_per_batch_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img, good, broken = good_and_cut_j2k(tmp_path)  # the cut one decodes nowhere
    dec = NvImageCodecDecoder(device="cpu", batch_size=2)
    with pytest.raises(DicomError, match="dicomsdl decode failed"):
        dec.decode_batch([good, broken])
    mr2 = real("MR2_J2KR")
    real_run = dec._run

    def one_lost(frames: list[bytes]) -> list[object]:
        out = real_run(frames)
        out[-1] = "nvImageCodec returned no image"  # as the library does for a file it fails
        return out

    monkeypatch.setattr(dec, "_run", one_lost)
    arrays = dec.decode_batch([good, mr2])
    assert dec.last_sources == ["nvimgcodec", "fallback:dicomsdl: nvImageCodec returned no image"]
    np.testing.assert_array_equal(arrays[0], img)
    np.testing.assert_array_equal(arrays[1], pydicom.dcmread(mr2).pixel_array)

    def fail(frames: list[bytes]) -> list[object]:
        raise RuntimeError("nvjpeg2k says no")

    monkeypatch.setattr(dec, "_run", fail)
    arrays = dec.decode_batch([good, mr2])
    assert all(s.startswith("fallback:dicomsdl: nvImageCodec failed") for s in dec.last_sources)
    np.testing.assert_array_equal(arrays[0], img)


@pytest.mark.parametrize(("codec", "bits", "signed"),
                         [("jpeg", 12, False), ("j2k", 12, True), ("j2k", 16, False)])  # fmt: skip
def test_probe_frames_and_scale(codec: str, bits: int, signed: bool) -> None:
    frame, truth = probe_frame(codec, bits, signed)
    lo = -(1 << (bits - 1)) if signed else 0
    assert truth.min() == lo and truth.max() == lo + (1 << bits) - 1
    if codec == "j2k":
        info = j2k_info(frame)
        assert (info.precision, info.signed) == (bits, signed)
        np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(frame), truth)
    assert probe_scale(truth, truth) == 1.0
    if not signed:
        assert probe_scale(truth.astype(np.float64) * 16, truth) == 16.0
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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_pydicom(tmp_path: Path) -> None:
    files = [
        j2k_file(tmp_path, "g12", phantom(64, 48, bits=12), 12),
        j2k_file(tmp_path, "g14", phantom(64, 48, bits=14, seed=4), 14, photometric="MONOCHROME1",
                 fmt="J2K"),
        real("RG1_J2KR"),
        real("JPEG-LL"),
        real("693_J2KR"),
    ]  # fmt: skip
    gpu = NvImageCodecDecoder(device="cuda", batch_size=4)
    arrays = gpu.decode_batch(files)
    assert gpu.last_sources[:3] == ["nvimgcodec"] * 3, gpu.last_sources
    for path, arr in zip(files, arrays, strict=True):
        assert arr.is_cuda
        ref = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(arr.cpu().numpy().astype(np.int64), ref.astype(np.int64))
    for path, t in zip(files[:3], gpu.decode_windowed(files[:3]), strict=True):
        ref = apply_voi(pydicom.dcmread(path).pixel_array, read_header(path))
        np.testing.assert_allclose(t.cpu().numpy(), ref, atol=1e-5)
