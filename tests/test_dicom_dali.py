"""DALI batch decoder: on the CPU here (bit-exact against pydicom), on the GPU where CUDA is."""

from __future__ import annotations

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

from rsna_pkg.dicom import apply_voi, read_header
from rsna_pkg.dicom.dali_backend import DaliDecoder, dali_importable, probe_frame
from rsna_pkg.dicom.frames import first_frame, j2k_info, jpeg_precision
from rsna_pkg.errors import DicomError

pytestmark = pytest.mark.skipif(not dali_importable(), reason="nvidia-dali not installed")


@pytest.fixture(scope="module")
def cpu_decoder() -> DaliDecoder:
    return DaliDecoder(batch_size=3, device="cpu")


def test_cpu_batch_bit_exact_with_fallbacks(tmp_path: Path, cpu_decoder: DaliDecoder) -> None:
    files = [
        j2k_file(tmp_path, "a12", phantom(48, 40, bits=12), 12),
        j2k_file(tmp_path, "b16", phantom(40, 48, bits=16, seed=1), 16, fmt="J2K"),
        j2k_file(tmp_path, "c10m1", phantom(32, 32, bits=10, seed=2), 10, photometric="MONOCHROME1"),
        # 16-bit unsigned codestream, header says signed: DALI decodes, header wins.
        j2k_file(tmp_path, "d_sign", phantom(32, 24, bits=16, seed=3), 16, signed_header=True),
        real("693_J2KR"),  # signed codestream: DALI cannot, declared -> fallback
        real("JPEG-LL"),  # JPEG lossless on the CPU: no DALI decoder -> fallback
        real("MR2_J2KR"),
    ]  # fmt: skip
    arrays = cpu_decoder.decode_batch(files)
    sources = cpu_decoder.last_sources
    for path, arr in zip(files, arrays, strict=True):
        ref = pydicom.dcmread(path).pixel_array
        assert isinstance(arr, np.ndarray) and arr.dtype == ref.dtype, path
        np.testing.assert_array_equal(arr, ref, err_msg=str(path))
    assert sources[0] == sources[1] == sources[2] == sources[3] == sources[6] == "dali"
    assert sources[4].startswith("fallback:dicomsdl: signed")
    assert sources[5].startswith("fallback:dicomsdl: syntax")
    # the probe found the scale DALI applies for each (codec, precision) it saw
    assert set(cpu_decoder._scales) >= {("j2k", 12), ("j2k", 16), ("j2k", 10)}


def test_windowed_equals_apply_voi(tmp_path: Path, cpu_decoder: DaliDecoder) -> None:
    files = [
        j2k_file(tmp_path, "w12", phantom(40, 32, bits=12), 12, photometric="MONOCHROME1"),
        real("RG3_J2KR"),
    ]
    assert_windowed_equals_apply_voi(cpu_decoder, files)


def test_dali_failure_falls_back_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img, good, broken = good_and_cut_j2k(tmp_path)  # the cut one decodes nowhere
    dec = DaliDecoder(batch_size=2, device="cpu")
    with pytest.raises(DicomError, match="dicomsdl decode failed"):  # the fallback fails too
        dec.decode_batch([good, broken])
    arrays = dec.decode_batch([good, good])  # the pipeline was rebuilt after the failure
    assert dec.last_sources == ["dali", "dali"]
    np.testing.assert_array_equal(arrays[0], img)

    def fail(frames: object) -> None:
        raise RuntimeError("nvjpeg2k says no")

    monkeypatch.setattr(dec, "_run", fail)
    arrays = dec.decode_batch([good, real("MR2_J2KR")])
    assert all(s.startswith("fallback:dicomsdl: DALI failed") for s in dec.last_sources)
    np.testing.assert_array_equal(arrays[0], img)
    np.testing.assert_array_equal(arrays[1], pydicom.dcmread(real("MR2_J2KR")).pixel_array)


@pytest.mark.parametrize(("codec", "bits"), [("jpeg", 8), ("jpeg", 12), ("jpeg", 16), ("j2k", 10),
                                           ("j2k", 16)])  # fmt: skip
def test_probe_frames_hold_the_full_range(codec: str, bits: int) -> None:
    frame, truth = probe_frame(codec, bits)
    assert truth.min() == 0 and truth.max() == (1 << bits) - 1
    if codec == "jpeg":
        assert jpeg_precision(frame) == bits
        np.testing.assert_array_equal(imagecodecs.ljpeg_decode(frame), truth)
    else:
        assert j2k_info(frame).precision == bits
        np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(frame), truth)


def test_jpeg_precision_of_real_files() -> None:
    for name, bits in (("JPEG-LL", 16), ("JPGLosslessP14SV1_1s_1f_8b", 8)):
        ds = pydicom.dcmread(real(name))
        assert jpeg_precision(first_frame(ds, name)) == bits


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu(tmp_path: Path) -> None:
    files = [
        j2k_file(tmp_path, "g12", phantom(64, 48, bits=12), 12),
        j2k_file(tmp_path, "g14", phantom(64, 48, bits=14, seed=4), 14, photometric="MONOCHROME1"),
        real("RG1_J2KR"),
        real("JPEG-LL"),
        real("693_J2KR"),
    ]
    gpu = DaliDecoder(batch_size=4, device="mixed")
    arrays = gpu.decode_batch(files)
    for path, arr in zip(files, arrays, strict=True):
        assert arr.is_cuda
        ref = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(arr.cpu().numpy().astype(np.int64), ref.astype(np.int64))
    windowed = gpu.decode_windowed(files[:3])
    for path, t in zip(files[:3], windowed, strict=True):
        ref = apply_voi(pydicom.dcmread(path).pixel_array, read_header(path))
        np.testing.assert_allclose(t.cpu().numpy(), ref, atol=1e-5)
