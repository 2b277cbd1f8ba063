"""Pixels of ``--difficulty realistic`` findings, sized in millimetres.

Masses and distortions are drawn on the canvas (``phantom.MAX_CANVAS_ROWS`` at most);
calcification specks after the canvas is upsampled, at the image's own resolution, as the
area each speck covers in each pixel (supersampled; a speck far below a pixel deposits its
area), so a 0.1-0.5 mm speck is a few pixels at --scale full, a faint sub-pixel dot at
--scale small, and a smudge or nothing once preprocessing shrinks the image further.

Dense tissue masks: a finding adds density where the tissue around it is fat and much less
where it is glandular (a mass attenuates about as much as the gland it sits in), so in
density C/D breasts part of the findings fade into the tissue.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from rsna_pkg.data.synth.findings import Finding
from rsna_pkg.data.synth.phantom import FAT, GLAND

MASKING = 0.5  # share of a mass's or distortion's added density that gland hides
SPECK_MASKING = 0.3  # calcium shows through gland far better
SUPERSAMPLE = 8  # sub-samples per pixel side for speck coverage


def gland_fraction(t: np.ndarray, size: int) -> np.ndarray:
    """Local fibroglandular share in [0, 1] (0 fat, 1 gland), averaged over ``size`` px."""
    g = np.clip((t - FAT) / (GLAND - FAT), 0.0, 1.0)
    return ndimage.uniform_filter(g, max(1, size))


def _window(
    shape: tuple[int, int], cy: float, cx: float, half: int
) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    y0, y1 = max(0, int(cy) - half), min(shape[0], int(cy) + half + 1)
    x0, x1 = max(0, int(cx) - half), min(shape[1], int(cx) + half + 1)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    return slice(y0, y1), slice(x0, x1), (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)


def _lines(
    d: np.ndarray, theta: np.ndarray, start: float, lengths: np.ndarray, widths: np.ndarray,
    angles: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Thin radiating lines, anti-aliased: a line narrower than a pixel keeps its area
    (its peak drops with its width), fading towards its tip."""
    out = np.zeros_like(d)
    for ang, length, width in zip(angles, lengths, widths, strict=True):
        along = d * np.cos(theta - ang)
        perp = np.abs(d * np.sin(theta - ang))
        line = np.clip(0.5 * width + 0.5 - perp, 0.0, min(1.0, width))
        taper = np.clip(1.0 - along / length, 0.0, 1.0) * (along > start)
        out = np.maximum(out, line * taper)
    return out


def draw_mass(
    t: np.ndarray, mask: np.ndarray, f: Finding, center: tuple[float, float], mm_px: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Ill-defined, spiculated or (benign) circumscribed mass of ``f.diameter_mm``."""
    r = 0.5 * f.diameter_mm / mm_px
    sy, sx, dy, dx = _window(t.shape, *center, int(3.5 * r) + 3)
    d, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    if f.kind == "benign_mass":  # smooth oval, sharp margin
        ry, rx = r * rng.uniform(0.85, 1.15, 2)
        body = np.clip((1.0 - np.hypot(dy / ry, dx / rx)) * r / 1.5 + 0.5, 0.0, 1.0)
    else:  # lobulated, with a blurred margin
        k = np.arange(2, 6)[:, None, None]
        amp, phase = rng.uniform(0.03, 0.08, (4, 1, 1)), rng.uniform(0, 2 * math.pi, (4, 1, 1))
        rim = r * (1.0 + np.sum(amp * np.cos(k * theta + phase), 0))
        body = np.clip((rim - d) / (0.35 * r) + 0.5, 0.0, 1.0)
    add = body * (0.75 + 0.25 * np.clip(1.0 - d / r, 0.0, 1.0))
    if f.spicules:
        n = f.spicules
        spikes = _lines(d, theta, 0.6 * r, r * rng.uniform(1.6, 3.0, n),
                        rng.uniform(0.3, 0.8, n) / mm_px, rng.uniform(-math.pi, math.pi, n))  # fmt: skip
        add = np.maximum(add, 0.7 * spikes)
    return _add_masked(t, mask, sy, sx, f.contrast * add, MASKING, max(3, round(r)))


def draw_distortion(
    t: np.ndarray, mask: np.ndarray, f: Finding, center: tuple[float, float], mm_px: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Architectural distortion: tissue pulled towards a point and thin lines radiating from
    it, without a central mass."""
    big_r = 0.5 * f.diameter_mm / mm_px
    sy, sx, dy, dx = _window(t.shape, *center, int(1.2 * big_r) + 3)
    d, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    pull = 1.0 + rng.uniform(0.25, 0.45) * np.exp(-((d / (0.6 * big_r)) ** 2))
    cy, cx = center
    src = np.stack(np.broadcast_arrays(cy + dy * pull, cx + dx * pull))
    out = t.copy()
    window = ndimage.map_coordinates(t, src, order=1, mode="nearest").astype(np.float32)
    out[sy, sx] = np.where(mask[sy, sx], window, t[sy, sx])
    n = f.spicules
    lines = _lines(d, theta, 0.1 * big_r, big_r * rng.uniform(0.6, 1.0, n),
                   rng.uniform(0.3, 0.7, n) / mm_px, rng.uniform(-math.pi, math.pi, n))  # fmt: skip
    return _add_masked(out, mask, sy, sx, f.contrast * lines, MASKING, max(3, round(0.3 * big_r)))


def _add_masked(
    t: np.ndarray, mask: np.ndarray, sy: slice, sx: slice, add: np.ndarray, masking: float,
    size: int,
) -> np.ndarray:  # fmt: skip
    out = t.copy()
    hide = 1.0 - masking * gland_fraction(t[sy, sx], size)
    out[sy, sx] += (add * hide * mask[sy, sx]).astype(np.float32)
    return out


def speck_coverage(cy: float, cx: float, radius: float) -> tuple[int, int, np.ndarray]:
    """Share of each pixel a disc of ``radius`` px covers (pixel centres on integers):
    returns the window's top-left (row, col) and the coverage array. Sums to about the
    disc's area whatever the radius."""
    if radius < 0.25:  # far below a pixel: deposit the area bilinearly
        y0, x0 = math.floor(cy), math.floor(cx)
        fy, fx = cy - y0, cx - x0
        w = np.array([[(1 - fy) * (1 - fx), (1 - fy) * fx], [fy * (1 - fx), fy * fx]])
        return y0, x0, (math.pi * radius**2 * w).astype(np.float32)
    y0, x0 = math.floor(cy - radius - 0.5), math.floor(cx - radius - 0.5)
    n_y, n_x = math.ceil(cy + radius + 0.5) - y0 + 1, math.ceil(cx + radius + 0.5) - x0 + 1
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    ys = (y0 + np.arange(n_y)[:, None] + sub[None, :]).reshape(-1)  # sub-sample rows
    xs = (x0 + np.arange(n_x)[:, None] + sub[None, :]).reshape(-1)
    inside = ((ys[:, None] - cy) ** 2 + (xs[None, :] - cx) ** 2) <= radius**2
    cov = inside.reshape(n_y, SUPERSAMPLE, n_x, SUPERSAMPLE).mean((1, 3))
    return y0, x0, cov.astype(np.float32)


def add_specks(
    t: np.ndarray, f: Finding, center: tuple[float, float], mm_px: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Calcifications of ``f.specks_mm`` scattered over ``f.diameter_mm``, at this image's
    resolution; only where there is tissue."""
    out = t.copy()
    h, w = t.shape
    extent = 0.5 * f.diameter_mm / mm_px
    for diameter in f.specks_mm:
        rho, phi = extent * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        cy, cx = center[0] + rho * math.sin(phi), center[1] + rho * math.cos(phi)
        y0, x0, cov = speck_coverage(cy, cx, 0.5 * diameter / mm_px)
        ya, xa = max(0, y0), max(0, x0)
        yb, xb = min(h, y0 + cov.shape[0]), min(w, x0 + cov.shape[1])
        if ya >= yb or xa >= xb:
            continue
        part = cov[ya - y0 : yb - y0, xa - x0 : xb - x0]
        under = t[ya:yb, xa:xb]
        hide = (1.0 - SPECK_MASKING * gland_fraction(under, 1)) * (under > 2 * FAT / 3)
        out[ya:yb, xa:xb] += f.contrast * part * hide
    return out
