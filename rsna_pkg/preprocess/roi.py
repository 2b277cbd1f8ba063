"""Where the breast is: a segmentation mask, its box, its side.

Pure functions on small (probe-sized, ~256 px) images, float, bright = tissue.

``breast_mask`` (the default, ``roi="segment"``) is a classical pipeline built for what real
mammograms carry besides the breast (issue 20): burned-in labels and markers, bright film or
collimator bands along the edges, a faint strip along the chest wall, and a skin line and
nipple fainter than any tissue window. It works on unwindowed intensities
(``rsna_pkg.dicom.oriented_values``), because a tissue window clips the skin line and the
nipple to black:

1. a 3x3 mean (quantum noise), intensities scaled to the 0.5-99.5 percentiles;
2. a *strong* mask above the foreground threshold, opened by a square of half-side ``r``
   (2.5 % of the long side): bands and strips thinner than ``2r`` vanish, labels stay
   separate components; its largest component is the breast's core;
3. a *weak* mask just above the background noise follows the skin line out to the nipple;
   its thin parts (what the same opening removes) that lie near an image edge are bands
   and strips, not breast, and are taken out;
4. the breast is every weak component that meets the core; then the rows at the two tips
   along the chest wall are followed outward while the weak run from the chest-wall edge
   keeps narrowing (a strip there keeps its width).

``threshold_mask`` is the earlier method (threshold, largest component), kept because
checkpoints and preprocessing folders made before the segmentation record ``roi="threshold"``
and must be reproduced exactly.
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
    spread = median_and_sd(near)[1] if near.size else 0.0
    return level + max(floor, 4 * spread)


def median_and_sd(values: np.ndarray) -> tuple[float, float]:
    """Median and robust SD (1.4826 x the median absolute deviation) of a non-empty array."""
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


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


def threshold_mask(img: np.ndarray) -> np.ndarray:
    """The earlier crop's mask: the largest component above :func:`foreground_threshold`
    (windowed image in [0, 1])."""
    return largest_component(img > foreground_threshold(img))


def mask_box(mask: np.ndarray, margin: float) -> Box:
    """Bounding box of ``mask`` grown by ``margin`` x the longer side, clipped to the image;
    the whole image when the mask is empty (nothing stands out: crop nothing)."""
    rows, cols = mask.shape
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


CORE_RADIUS = 0.025  # of the long side: edge bands and strips up to 2x this wide are removed
WEAK_FLOOR = 0.02  # the weak mask's least step above the background (scaled intensities)


def scale_to_unit(img: np.ndarray) -> np.ndarray:
    """Linear map of the 0.5th-99.5th percentiles to [0, 1], clipped (saturated labels and
    single hot pixels do not set the scale)."""
    lo, hi = (float(v) for v in np.percentile(img, [0.5, 99.5]))
    if hi <= lo:
        return np.zeros(img.shape, np.float32)
    return np.clip((img.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def open_square(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening by a (2 radius + 1)-pixel square, outside the image counting as
    background: separable running min then max, linear time (a disk footprint costs its
    area per pixel, and a Euclidean disk through distance transforms was 7x slower).
    Running counts compiled by numba where it imports (``square_filter``, the same mask in a
    quarter of the time), scipy's filters where not."""
    from rsna_pkg.preprocess.square_filter import open_square_counts

    fast = open_square_counts(mask, radius)
    if fast is not None:
        return fast
    from scipy import ndimage

    size = 2 * radius + 1
    eroded = ndimage.minimum_filter(mask.astype(np.uint8), size=size, mode="constant", cval=0)
    return ndimage.maximum_filter(eroded, size=size, mode="constant", cval=0).astype(bool)


def near_edge(shape: tuple[int, int], width: int) -> np.ndarray:
    """True within ``width`` pixels of any image edge."""
    zone = np.ones(shape, dtype=bool)
    zone[width:-width, width:-width] = False
    return zone


def edge_runs(mask: np.ndarray) -> np.ndarray:
    """Per row, the length of the run of True that starts at column 0."""
    runs = np.argmin(mask, axis=1)
    return np.where(mask.all(axis=1), mask.shape[1], runs)


def follow_tips(mask: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Extend the mask (chest wall at column 0) up and down along the chest wall while the
    weak run from the edge keeps narrowing, as a breast's tip does; a strip or band along
    that edge keeps its width and stops it within two rows."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask
    runs = edge_runs(weak)
    out = mask.copy()
    for start, step in ((int(rows[0]) - 1, -1), (int(rows[-1]) + 1, 1)):
        previous = int(edge_runs(mask[start - step : start - step + 1])[0])
        y, same = start, 0
        while 0 <= y < len(runs) and 0 < runs[y] <= previous:
            same = same + 1 if runs[y] == previous else 0
            if same == 2:
                break
            out[y, : runs[y]] = True
            previous = int(runs[y])
            y += step
    return out


def weak_threshold(img: np.ndarray, strong: float) -> float:
    """Just above the background: the median of what lies below ``strong`` plus
    max(WEAK_FLOOR, 5 robust SDs), so slow background ripples stay below it."""
    below = img[img < strong]
    if below.size == 0:
        return strong
    level, spread = median_and_sd(below)
    return min(strong, level + max(WEAK_FLOOR, 5 * spread))


def breast_mask(img: np.ndarray) -> np.ndarray:
    """The breast as a boolean mask of ``img`` (unwindowed intensities, bright = dense, any
    scale): the pipeline of the module docstring."""
    from scipy import ndimage

    raw = scale_to_unit(img)
    s = ndimage.uniform_filter(raw, size=3)
    radius = max(2, round(CORE_RADIUS * max(s.shape)))
    strong_t = foreground_threshold(s)
    weak_t = weak_threshold(s, strong_t)
    core = largest_component(open_square(s > strong_t, radius))
    if not core.any():  # nothing as wide as the square: a sliver, or a blank image
        return largest_component(s > strong_t)
    weak = (s > weak_t) & (raw > weak_t)  # the mean alone would grow every edge by a pixel
    thin = weak & ~open_square(weak, radius)
    allowed = weak & ~(thin & near_edge(s.shape, 2 * radius))
    labels, n = ndimage.label(allowed, structure=np.ones((3, 3), dtype=bool))
    keep = np.zeros(n + 1, dtype=bool)  # label -> meets the core (a lookup, not a search)
    keep[labels[core]] = True
    keep[0] = False
    mask = keep[labels]
    if breast_on_right(s):  # follow_tips works with the chest wall on the left
        return follow_tips(mask[:, ::-1], weak[:, ::-1])[:, ::-1]
    return follow_tips(mask, weak)


def breast_box(img: np.ndarray, margin: float = 0.005) -> Box:
    """Box of :func:`breast_mask` grown by ``margin`` x the longer side."""
    return mask_box(breast_mask(img), margin)


def breast_on_right(img: np.ndarray) -> bool:
    """True when the right half holds more signal (the chest wall side is the heavier one)."""
    half = img.shape[1] // 2
    return float(img[:, img.shape[1] - half :].sum()) > float(img[:, :half].sum())


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary pixels (for drawing it)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def crop(img: np.ndarray, box: Box) -> np.ndarray:
    return img[box.y0 : box.y1, box.x0 : box.x1]
