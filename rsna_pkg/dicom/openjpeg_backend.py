"""OpenJPEG on the frame bytes: imagecodecs for full resolution, Pillow for reduced.

A reduced decode reads only wavelet resolution level r (ISO 15444-1 B.5), the low-pass band,
close to a 2**r box mean and many times cheaper than a full decode. Pillow exposes it
(``im.reduce = r`` before ``load()``) but widens samples to 16 bits (``v << (16 - p)``) and
offsets signed samples by ``2**(p-1)``: both are undone here. When Pillow cannot (it fails on
some codestreams at some levels: the next shallower level that works is area-downsampled
the rest of the way. Measured on the synthetic profiles: Pillow 13 sizes level r as
``int((n + 2**(r-1)) / 2**r)`` where OpenJPEG gives ``ceil(n / 2**r)``, and fails with
"broken data stream" exactly where the two differ, e.g. 1914 px at level 3; sizing it
ourselves would decode those probes natively, 26 % less CPU on such files, but changes the
probe, hence some crops, so it is left as is; a codestream whose signedness differs from
the header has no meaningful low-pass band), the full decode is area-downsampled instead.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rsna_pkg.dicom.backend import Capabilities, Decoded, per_syntax
from rsna_pkg.dicom.frames import J2K_SYNTAXES, first_frame, j2k_info, sniff_codec
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixeldata import read_pixel_dataset
from rsna_pkg.dicom.pixels import area_downsample, reduced_shape, stored_dtype, to_stored
from rsna_pkg.errors import DicomError


def decode_full(frame: bytes, numthreads: int = 1) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpeg2k_decode(frame, numthreads=numthreads)


def decode_reduced(frame: bytes, reduce: int) -> np.ndarray:
    """Resolution level ``reduce`` as codestream sample values (Pillow's scaling undone)."""
    from PIL import Image

    info = j2k_info(frame)
    with Image.open(io.BytesIO(frame)) as im:
        im.reduce = reduce  # type: ignore[method-assign,assignment]  # Jpeg2K: int level
        im.load()
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"expected one component, Pillow gave shape {arr.shape}")
    p = info.precision
    values = arr.astype(np.int32)
    if arr.dtype == np.uint16 and p < 16:
        values >>= 16 - p
    elif arr.dtype != np.uint16 and arr.dtype != np.uint8:
        raise ValueError(f"unexpected Pillow dtype {arr.dtype}")
    if info.signed:
        values -= 1 << (p - 1)
    return values


# ms/Mpx of a full decode measured (shared/reference/dicom.md): 628 ms / 7.2 Mpx.
MS_PER_MPX = per_syntax([(J2K_SYNTAXES, 87.0)])


class OpenjpegDecoder:
    name = "openjpeg"

    def __init__(self, numthreads: int = 1) -> None:
        self.numthreads = numthreads

    def available(self) -> bool:
        try:
            import imagecodecs
            from PIL import Jpeg2KImagePlugin  # noqa: F401
        except ImportError:
            return False
        return bool(imagecodecs.JPEG2K.available)

    def capabilities(self) -> Capabilities:
        return Capabilities(J2K_SYNTAXES, levels=True, ms_per_mpx=MS_PER_MPX)

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        ds = read_pixel_dataset(path, header)
        return self.decode_frame(first_frame(ds, path), header, reduce)

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int) -> Decoded:
        """Frame bytes already in memory (lets a caller decode one file at two levels)."""
        if sniff_codec(frame) not in ("jp2", "j2k"):
            raise DicomError(header.path, f"frame is not JPEG 2000 (starts {frame[:8].hex()})")
        if reduce > 0:
            note = self._native_reduce_blocker(frame, header, reduce)
            if not note:
                # Pillow fails ("broken data stream") at some levels of some codestreams
                # and not at others: step down a level at a time, area-downsample the rest.
                failures = []
                for level in range(reduce, 0, -1):
                    try:
                        arr = decode_reduced(frame, level)
                    except (OSError, ValueError) as exc:
                        failures.append(f"{level}: {exc}")
                        continue
                    if arr.shape != reduced_shape(header.rows, header.columns, level):
                        failures.append(f"{level}: shape {arr.shape}")
                        continue
                    out = area_downsample(self._clip(arr, header), reduce - level)
                    note = f"Pillow reduce failed at {'; '.join(failures)}" if failures else ""
                    return Decoded(out, reduced=True, note=note)
                note = f"Pillow reduce failed at {'; '.join(failures)}"
            return Decoded(to_stored(decode_full(frame, self.numthreads), header), False, note)
        return Decoded(to_stored(decode_full(frame, self.numthreads), header), reduced=False)

    @staticmethod
    def _native_reduce_blocker(frame: bytes, header: DicomHeader, reduce: int) -> str:
        """Why resolution levels cannot stand for the header's values ('' when they can)."""
        info = j2k_info(frame)
        if info.components != 1:
            return f"{info.components} components"
        if info.signed != header.signed:
            return "codestream signedness differs from PixelRepresentation"
        if reduce > info.levels:
            return f"reduce {reduce} > {info.levels} decomposition levels"
        if info.precision > 16 or info.precision > header.bits_allocated:
            return f"precision {info.precision} bits"
        return ""

    @staticmethod
    def _clip(values: np.ndarray, header: DicomHeader) -> np.ndarray:
        """The low-pass band can overshoot the sample range by a little: clip, then cast."""
        dtype = stored_dtype(header)
        bits = min(header.bits_stored, 8 * dtype.itemsize)
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if header.signed else (0, (1 << bits) - 1)
        )
        return np.clip(values, lo, hi).astype(dtype)


DECODER = OpenjpegDecoder()
