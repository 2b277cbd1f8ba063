"""Where the breast is: a foreground threshold (Otsu, lowered to just above the background
when that is lower), largest connected component, its box, its side.

Pure functions on windowed images (float in [0, 1], bright = tissue). Burned-in labels and
markers are small separate components, so keeping the largest one leaves them outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Half-open pixel box [y0, y1) x [x0, x1)."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def scaled(self, factor: float, rows: int, cols: int) -> Box:
        """The same region in an image ``factor`` times larger (outward rounding, clipped)."""
        return Box(
            max(0, math.floor(self.y0 * factor)),
            max(0, math.floor(self.x0 * factor)),
            min(rows, math.ceil(self.y1 * factor)),
            min(cols, math.ceil(self.x1 * factor)),
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.y0, self.x0, self.y1, self.x1)


def otsu_threshold(img: np.ndarray, bins: int = 256) -> float:
    """Otsu (1979): the threshold maximising the between-class variance of the histogram."""
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(img, bins=bins, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def background_threshold(img: np.ndarray, floor: float = 0.05) -> float:
    """Just above the background: its level is taken as the 2nd percentile (air is the
    darkest thing in a windowed mammogram and rarely under 2 % of it), plus
    max(floor, 4 robust SDs of the pixels near that level)."""
    level = float(np.percentile(img, 2))
    near = img[np.abs(img - level) < 0.1]
    spread = 1.4826 * float(np.median(np.abs(near - np.median(near)))) if near.size else 0.0
    return level + max(floor, 4 * spread)


def foreground_threshold(img: np.ndarray) -> float:
    """Otsu, or lower when the background sits well below it. Otsu alone splits an implant
    (very bright) from tissue and background together, and the box would hug the implant."""
    return min(otsu_threshold(img), background_threshold(img))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (all False if empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def breast_box(img: np.ndarray, margin: float = 0.02) -> Box:
    """Box of the largest component above :func:`foreground_threshold` (windowed image in
    [0, 1]), grown by ``margin`` x the longer side. The whole image when nothing stands out."""
    rows, cols = img.shape
    mask = largest_component(img > foreground_threshold(img))
    if not mask.any():
        return Box(0, 0, rows, cols)
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    pad = int(round(margin * max(rows, cols)))
    return Box(
        max(0, int(ys[0]) - pad),
        max(0, int(xs[0]) - pad),
        min(rows, int(ys[-1]) + 1 + pad),
        min(cols, int(xs[-1]) + 1 + pad),
    )


def breast_on_right(img: np.ndarray) -> bool:
    """True when the right half holds more signal (the chest wall side is the heavier one)."""
    half = img.shape[1] // 2
    return float(img[:, img.shape[1] - half :].sum()) > float(img[:, :half].sum())


def crop(img: np.ndarray, box: Box) -> np.ndarray:
    return img[box.y0 : box.y1, box.x0 : box.x1]
