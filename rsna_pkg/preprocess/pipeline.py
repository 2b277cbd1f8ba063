"""``preprocess_file(path, cfg)``: DICOM -> windowed, oriented, cropped, resized image.

The decode is the cost, so for JPEG 2000 the breast box is found on a cheap low-resolution
decode (about ``probe_size`` px, straight from the wavelet levels), and the image is then
decoded once more at the deepest level that still leaves the crop at least as large as its
resized output. Other syntaxes (JPEG lossless) are decoded once at full resolution and the
box is found on an area-downsampled copy. The window is applied to the crop only (so the
min-max fallback, for files without VOI data, is computed over the breast).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsna_pkg.dicom.backend import Decoded
from rsna_pkg.dicom.decode import check_decodable, decode_file, finish, resolve_backend
from rsna_pkg.dicom.frames import J2K_SYNTAXES, first_frame, j2k_info
from rsna_pkg.dicom.header import DicomHeader, header_from_dataset, read_dataset
from rsna_pkg.dicom.pixels import area_downsample, reduced_shape
from rsna_pkg.dicom.voi import apply_voi
from rsna_pkg.errors import DicomError
from rsna_pkg.preprocess.config import PreprocessConfig
from rsna_pkg.preprocess.resize import deepest_reduce, quantize, resize_pad
from rsna_pkg.preprocess.roi import Box, breast_box, breast_on_right, crop

MAX_REDUCE = 5  # OpenJPEG's default number of decomposition levels


@dataclass
class PreprocessResult:
    image: np.ndarray  # (H, W) uint8 | uint16, breast on the left
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1) in full-resolution pixels, before flip
    reduce: int  # resolution level the crop was taken from
    flipped: bool  # mirrored so the breast is on the left
    header: DicomHeader
    backend: str
    native_reduce: bool  # True when decoded from J2K resolution levels
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step

    @property
    def decode_seconds(self) -> float:
        return sum(v for k, v in self.timings.items() if k.startswith("decode"))


def probe_level(rows: int, cols: int, probe_size: int) -> int:
    """Level whose long side is closest above ``probe_size``."""
    longest = max(rows, cols)
    return max(0, min(MAX_REDUCE, math.floor(math.log2(max(1.0, longest / probe_size)))))


def locate(windowed: np.ndarray, cfg: PreprocessConfig) -> tuple[Box, bool]:
    """Breast box (in ``windowed``'s pixels) and whether the breast is on the right."""
    box = breast_box(windowed, cfg.margin) if cfg.crop else Box(0, 0, *windowed.shape)
    return box, breast_on_right(windowed)


def finish_image(stored: np.ndarray, header: DicomHeader, box: Box, flip: bool,
                 cfg: PreprocessConfig, timings: dict[str, float]) -> np.ndarray:  # fmt: skip
    t = time.perf_counter()
    region = apply_voi(crop(stored, box), header, cfg.voi_index)
    timings["window"] = timings.get("window", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    if flip:
        region = region[:, ::-1]
    image = quantize(resize_pad(region, cfg.height, cfg.width), cfg.bits)
    timings["resize"] = time.perf_counter() - t
    return image


def _j2k_native(path: Path, cfg: PreprocessConfig, timings: dict[str, float]) -> PreprocessResult:
    """Two reduced decodes of the frame bytes: a probe for the box, then the crop level."""
    from rsna_pkg.dicom.openjpeg_backend import BACKEND as OPENJPEG

    t = time.perf_counter()
    ds = read_dataset(path, pixels=True)
    header = header_from_dataset(ds, path)
    check_decodable(header)
    frame = first_frame(ds, path)
    try:
        levels = min(MAX_REDUCE, j2k_info(frame).levels)
    except Exception as exc:  # struct.error, IndexError, ValueError on a mangled header
        raise DicomError(path, f"bad JPEG 2000 main header ({exc})") from exc
    timings["read"] = time.perf_counter() - t

    full: list[Decoded] = []  # a full decode, once Pillow has had to fall back to one

    def level(r: int) -> tuple[np.ndarray, Decoded]:
        if full:
            return finish(full[0], header, r), full[0]
        try:
            out = OPENJPEG.decode_frame(frame, header, r)
        except DicomError:
            raise
        except Exception as exc:
            raise DicomError(path, f"openjpeg decode failed ({type(exc).__name__}: {exc})") from exc
        if not out.reduced:
            full.append(out)
        return finish(out, header, r), out

    t = time.perf_counter()
    rp = min(levels, probe_level(header.rows, header.columns, cfg.probe_size))
    probe, _ = level(rp)
    timings["decode_probe"] = time.perf_counter() - t
    t = time.perf_counter()
    pbox, flip = locate(apply_voi(probe, header, cfg.voi_index), cfg)
    full_box = pbox.scaled(2**rp, header.rows, header.columns)
    r = deepest_reduce(full_box.height, full_box.width, cfg.height, cfg.width, levels)
    timings["locate"] = time.perf_counter() - t
    t = time.perf_counter()
    stored = probe if r == rp else level(r)[0]
    timings["decode"] = time.perf_counter() - t
    rows, cols = reduced_shape(header.rows, header.columns, r)
    box = full_box.scaled(2.0**-r, rows, cols)
    image = finish_image(stored, header, box, flip, cfg, timings)
    native = not full and r > 0
    return PreprocessResult(
        image, full_box.as_tuple(), r, flip, header, "openjpeg", native, timings
    )


def _full_decode(path: Path, cfg: PreprocessConfig, timings: dict[str, float]) -> PreprocessResult:
    """One full-resolution decode; the box comes from an area-downsampled copy."""
    decoded = decode_file(path, cfg.backend, 0)
    header, stored = decoded.header, decoded.array
    timings["decode"] = decoded.seconds
    image, box, flip = preprocess_stored(stored, header, cfg, timings)
    return PreprocessResult(image, box.as_tuple(), 0, flip, header, decoded.backend, False, timings)


def preprocess_stored(
    stored: np.ndarray, header: DicomHeader, cfg: PreprocessConfig, timings: dict[str, float]
) -> tuple[np.ndarray, Box, bool]:
    """The full-resolution route on stored values however they were decoded (CPU backend or
    DALI): box from an area-downsampled copy, then window, orient, crop, resize."""
    t = time.perf_counter()
    rp = probe_level(header.rows, header.columns, cfg.probe_size)
    small = area_downsample(stored, rp)
    pbox, flip = locate(apply_voi(small, header, cfg.voi_index), cfg)
    box = pbox.scaled(2**rp, header.rows, header.columns)
    timings["locate"] = time.perf_counter() - t
    return finish_image(stored, header, box, flip, cfg, timings), box, flip


def uses_native_reduce(header: DicomHeader, cfg: PreprocessConfig) -> bool:
    """J2K, reduce on, and the configured backend is (or auto-resolves to) openjpeg."""
    if not cfg.reduce or header.transfer_syntax_uid not in J2K_SYNTAXES:
        return False
    return resolve_backend(header, cfg.backend, 1).name == "openjpeg"


def preprocess_file(path: str | Path, cfg: PreprocessConfig) -> PreprocessResult:
    """Decode, window (MONOCHROME1 inverted), put the breast on the left, crop to it,
    resize keeping the aspect ratio and pad to cfg.height x cfg.width. Raises DicomError."""
    from rsna_pkg.dicom.header import read_header

    path = Path(path)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    header = read_header(path)
    timings["header"] = time.perf_counter() - start
    if uses_native_reduce(header, cfg):
        result = _j2k_native(path, cfg, timings)
    else:
        result = _full_decode(path, cfg, timings)
    timings["total"] = time.perf_counter() - start
    return result
