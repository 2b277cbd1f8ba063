"""``preprocess_file(path, cfg)``: DICOM -> windowed, oriented, cropped, resized image.

The decode is the cost, so for JPEG 2000 the breast box is found on a cheap low-resolution
decode (about ``probe_size`` px, straight from the wavelet levels), and the image is then
decoded once more at the deepest level that still leaves the crop at least as large as its
resized output (or at most ``max_upscale`` smaller: a level deeper is a quarter of the
pixels), and only the crop's window of that level where the decoder can (OpenJPEG's decode
area: the same pixels for about three quarters of the level's cost). Other syntaxes
(JPEG lossless, RLE, native) are decoded once at full resolution; the box is found on an
area-downsampled copy, and the crop is taken by the same level rule from area means of that
decode (2**r x 2**r block means of the crop's pixels alone), so window and resize work on
as few pixels as for J2K, and every syntax reaches the model through the same chain: a
level at most ``max_upscale`` short of the output, then the bilinear resize. With
``reduce`` off, every syntax is cropped at full resolution; with ``area_levels`` off (configs
saved before it), every syntax but J2K. The window is applied to the
crop only (so the min-max fallback, for files without VOI data, is computed over the
breast).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsna_pkg.dicom import (
    MAX_REDUCE,
    AreaPyramid,
    DicomHeader,
    apply_voi,
    open_image,
    oriented_values,
    reduced_shape,
)
from rsna_pkg.preprocess.config import PreprocessConfig
from rsna_pkg.preprocess.resize import deepest_reduce, halvings, quantize, resize_pad
from rsna_pkg.preprocess.roi import (
    Box,
    breast_mask,
    breast_on_right,
    crop,
    mask_box,
    threshold_mask,
)


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
    window: bool = False  # only the crop's window of the level was decoded

    @property
    def decode_seconds(self) -> float:
        return sum(v for k, v in self.timings.items() if k.startswith("decode"))


def probe_level(rows: int, cols: int, probe_size: int) -> int:
    """Level whose long side is closest above ``probe_size``."""
    return halvings(max(rows, cols) / probe_size, MAX_REDUCE)


def segment(stored: np.ndarray, header: DicomHeader, cfg: PreprocessConfig,
            windowed: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The breast mask of a (low-resolution) decode, by ``cfg.roi``: the segmentation on
    unwindowed values, or the earlier threshold on the windowed image (``windowed``, when
    the caller has it already)."""
    if cfg.roi == "threshold":
        if windowed is None:
            windowed = apply_voi(stored, header, cfg.voi_index)
        return threshold_mask(windowed)
    return breast_mask(oriented_values(stored, header))


def locate(stored: np.ndarray, header: DicomHeader, cfg: PreprocessConfig) -> tuple[Box, bool]:
    """Breast box (in ``stored``'s pixels) and whether the breast is on the right."""
    windowed = apply_voi(stored, header, cfg.voi_index)
    flip = breast_on_right(windowed)
    if not cfg.crop:
        return Box(0, 0, *stored.shape), flip
    return mask_box(segment(stored, header, cfg, windowed), cfg.margin), flip


def finish_image(region: np.ndarray, header: DicomHeader, flip: bool, cfg: PreprocessConfig,
                 timings: dict[str, float]) -> np.ndarray:  # fmt: skip
    """The crop's stored values -> windowed, breast on the left, resized and quantised."""
    t = time.perf_counter()
    region = apply_voi(region, header, cfg.voi_index, mirror=flip)  # breast left
    timings["window"] = timings.get("window", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    image = quantize(resize_pad(region, cfg.height, cfg.width), cfg.bits)
    timings["resize"] = time.perf_counter() - t
    return image


def crop_level(full_box: Box, header: DicomHeader, cfg: PreprocessConfig,
               levels: int) -> tuple[int, Box]:  # fmt: skip
    """The level the crop is taken from and the box in that level's pixels: the deepest
    ``deepest_reduce`` allows, up to ``levels`` (those the decoder takes straight from the
    codestream; with none, the area levels of a full decode, up to MAX_REDUCE, where
    ``cfg.area_levels``); level 0 with ``cfg.reduce`` off."""
    area = MAX_REDUCE if cfg.area_levels else 0
    limit = (levels or area) if cfg.reduce else 0
    r = deepest_reduce(full_box.height, full_box.width, cfg.height, cfg.width, limit,
                       cfg.max_upscale)  # fmt: skip
    rows, cols = reduced_shape(header.rows, header.columns, r)
    return r, full_box.scaled(2.0**-r, rows, cols)


def preprocess_stored(
    stored: np.ndarray, header: DicomHeader, cfg: PreprocessConfig, timings: dict[str, float]
) -> tuple[np.ndarray, Box, bool]:
    """The full-decode route on stored values however they were decoded (CPU backend or a
    GPU batch decoder): box from an area-downsampled copy, the crop from area means at the
    level ``crop_level`` picks, then window, orient, resize. For every syntax but J2K this is
    ``preprocess_file``'s route to the bit."""
    t = time.perf_counter()
    pyramid = AreaPyramid(stored)
    rp = probe_level(header.rows, header.columns, cfg.probe_size)
    pbox, flip = locate(pyramid.level(rp), header, cfg)
    box = pbox.scaled(2**rp, header.rows, header.columns)
    r, level_box = crop_level(box, header, cfg, 0)
    region = pyramid.window(r, level_box.as_tuple())
    timings["locate"] = time.perf_counter() - t
    return finish_image(region, header, flip, cfg, timings), box, flip


def preprocess_file(path: str | Path, cfg: PreprocessConfig) -> PreprocessResult:
    """Decode, window (MONOCHROME1 inverted), put the breast on the left, crop to it,
    resize keeping the aspect ratio and pad to cfg.height x cfg.width. Raises DicomError.

    One route: find the box on a probe level, then decode the deepest level the crop allows
    (wherever the file or backend has no resolution levels to decode straight from,
    ``DicomImage`` serves every level, and the crop's window of one, from one full decode)."""
    path = Path(path)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    image = open_image(path)
    header = image.header
    timings["header"] = time.perf_counter() - start
    t = time.perf_counter()
    levels = image.levels(cfg.backend) if cfg.reduce else 0
    timings["read"] = time.perf_counter() - t
    probe_r = probe_level(header.rows, header.columns, cfg.probe_size)
    if levels:
        probe_r = min(levels, probe_r)
    probe = image.decode(probe_r, cfg.backend, native=cfg.reduce)
    timings["decode_probe" if levels else "decode"] = probe.seconds
    t = time.perf_counter()
    pbox, flip = locate(probe.array, header, cfg)
    full_box = pbox.scaled(2**probe_r, header.rows, header.columns)
    r, box = crop_level(full_box, header, cfg, levels)
    timings["locate"] = time.perf_counter() - t
    if r == probe_r:
        final, region = probe, crop(probe.array, box)
    else:  # only the crop's window is decoded where the decoder can (same pixels)
        final = image.decode_window(r, box.as_tuple(), cfg.backend, native=cfg.reduce)
        region = final.array
    # without codestream levels the crop's level is block means of the probe's full decode:
    # arithmetic on decoded pixels, not decoding
    timings["decode" if levels else "area_means"] = final.seconds if final is not probe else 0.0
    out = finish_image(region, header, flip, cfg, timings)
    timings["total"] = time.perf_counter() - start
    return PreprocessResult(out, full_box.as_tuple(), r, flip, header, final.backend,
                            final.native, timings, final.window)  # fmt: skip
