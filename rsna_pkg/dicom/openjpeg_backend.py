"""OpenJPEG on the frame bytes: imagecodecs for full resolution, Pillow for reduced, and
OpenJPEG's decode window (rsna_pkg.dicom.openjp2) for the crop of a level.

A reduced decode reads only wavelet resolution level r (ISO 15444-1 B.5), the low-pass band,
close to a 2**r box mean and many times cheaper than a full decode. Pillow exposes it
(``im.reduce = r`` before ``load()``) but widens samples to 16 bits (``v << (16 - p)``) and
offsets signed samples by ``2**(p-1)``: both are undone here.

Pillow 13 sizes level r as ``int((n + 2**(r-1)) / 2**r)`` where OpenJPEG gives
``ceil(n / 2**r)``, and fails with "broken data stream" exactly where the two differ (1914 px
at levels 3 and 4, 2394 px at 3 and 4). :func:`load_level` therefore sizes the level itself,
by OpenJPEG's rule, and hands Pillow's decoder that tile: the same OpenJPEG call, now at every
level. Each level is, to the bit, the LL band of the reversible 5/3 wavelet of the full decode
(tests/test_dicom_decode.py, on real files and odd sizes), and equal to OpenJPEG's own output
through glymur at levels 1-5 of every synthetic machine's size. On the synthetic 2294x1914 and
3062x2394 machines this makes the probe decode 3-4x cheaper (native level 3 instead of level 2
plus an area mean): about 15 % of those files' preprocessing CPU. Where Pillow's internals differ from what it expects, ``im.reduce`` is used,
and a level Pillow still cannot decode is taken from the next shallower level that works,
area-downsampled the rest of the way; a codestream whose signedness differs from the header
has no meaningful low-pass band, so it is decoded in full and area-downsampled instead.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from rsna_pkg.dicom.backend import (
    Capabilities,
    Declined,
    Decoded,
    ReadsFrame,
    imagecodecs_has,
    per_syntax,
)
from rsna_pkg.dicom.frames import (
    J2K_SYNTAXES,
    J2kInfo,
    codestream_offset,
    j2k_info,
    sniff_codec,
)
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixels import area_downsample, reduced_shape, stored_dtype, to_stored
from rsna_pkg.errors import DicomError


def decode_full(frame: bytes, numthreads: int = 1) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpeg2k_decode(frame, numthreads=numthreads)


def load_level(im: Any, reduce: int) -> None:
    """Decode level ``reduce`` of an opened Pillow JPEG 2000 image, sized ``ceil(n / 2**r)``
    as OpenJPEG sizes it. Pillow's own ``load`` rounds the size to nearest and then refuses the
    larger tile OpenJPEG returns; this sets the size and the decoder tile (codec, reduce,
    layers, fd, length) itself and runs the generic loader. Falls back to ``im.reduce``
    when the tile is not the 4-field JPEG 2000 tile this expects."""
    from PIL import ImageFile

    tile = im.tile[0] if len(im.tile) == 1 else None
    args = tile[3] if tile is not None and len(tile) == 4 else None
    if (tile is None or not isinstance(args, tuple) or len(args) != 5
            or not hasattr(ImageFile, "_Tile")):  # fmt: skip
        im.reduce = reduce
        im.load()
        return
    f = 2**reduce
    size = (-(-im.size[0] // f), -(-im.size[1] // f))
    im._size = size
    im.tile = [ImageFile._Tile(tile[0], (0, 0, *size), tile[2], (args[0], reduce, *args[2:]))]
    ImageFile.ImageFile.load(im)


def decode_reduced(frame: bytes, reduce: int) -> np.ndarray:
    """Resolution level ``reduce`` as codestream sample values (Pillow's scaling undone)."""
    from PIL import Image

    info = j2k_info(frame)
    with Image.open(io.BytesIO(frame)) as im:
        load_level(im, reduce)
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


def check_j2k(frame: bytes, header: DicomHeader) -> None:
    if sniff_codec(frame) not in ("jp2", "j2k"):
        raise DicomError(header.path, f"frame is not JPEG 2000 (starts {frame[:8].hex()})")


# ms/Mpx of a full decode measured (shared/reference/dicom.md): 628 ms / 7.2 Mpx.
MS_PER_MPX = per_syntax([(J2K_SYNTAXES, 87.0)])


class OpenjpegDecoder(ReadsFrame):
    name = "openjpeg"

    def __init__(self, numthreads: int = 1) -> None:
        self.numthreads = numthreads

    def available(self) -> bool:
        try:
            from PIL import Jpeg2KImagePlugin  # noqa: F401
        except ImportError:
            return False
        return imagecodecs_has("JPEG2K")

    def capabilities(self) -> Capabilities:
        return Capabilities(J2K_SYNTAXES, levels=True, windows=True, ms_per_mpx=MS_PER_MPX)

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int = 0) -> Decoded:
        """Frame bytes already in memory (lets a caller decode one file at two levels)."""
        check_j2k(frame, header)
        if reduce > 0:
            note = self._native_reduce_blocker(j2k_info(frame), header, reduce)
            if not note:
                # Should Pillow still fail at a level ("broken data stream"): step down a
                # level at a time, area-downsample the rest.
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

    def decode_window(self, frame: bytes, header: DicomHeader, reduce: int,
                      window: tuple[int, int, int, int]) -> Decoded:  # fmt: skip
        """Pixels ``window`` = (y0, x0, y1, x1) of level ``reduce`` alone, through OpenJPEG's
        decode area: exactly ``decode_frame(frame, header, reduce)`` cropped to the window.
        Declined where the levels cannot stand for the header's values, the image sits off
        the reference grid's origin, or no libopenjp2 loads."""
        from rsna_pkg.dicom import openjp2

        check_j2k(frame, header)
        info = j2k_info(frame)
        blocker = self._native_reduce_blocker(info, header, reduce)
        if not blocker and info.origin != (0, 0):
            blocker = f"image offset {info.origin} on the reference grid"
        if not blocker:
            blocker = openjp2.load_library()[1]
        if blocker:
            raise Declined(blocker)
        rows, cols = reduced_shape(header.rows, header.columns, reduce)
        y0, x0, y1, x1 = window
        if not (0 <= y0 < y1 <= rows and 0 <= x0 < x1 <= cols):
            raise ValueError(f"window {window} outside the level's {rows}x{cols} pixels")
        f = 2**reduce  # level pixel i covers reference-grid rows [i*f, (i+1)*f)
        area = (y0 * f, x0 * f, min(y1 * f, header.rows), min(x1 * f, header.columns))
        values = openjp2.decode_window(bytes(frame), codestream_offset(frame), reduce, area)
        if values.shape != (y1 - y0, x1 - x0):
            raise DicomError(header.path, f"OpenJPEG window {values.shape} != {window}")
        # as the routes it stands in for: full resolution as decode_full's, a level as Pillow's
        stored = to_stored(values, header) if reduce == 0 else self._clip(values, header)
        return Decoded(stored, reduced=True)

    @staticmethod
    def _native_reduce_blocker(info: J2kInfo, header: DicomHeader, reduce: int) -> str:
        """Why resolution levels cannot stand for the header's values ('' when they can)."""
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
