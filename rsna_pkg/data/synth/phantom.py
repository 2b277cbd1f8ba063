"""Mammogram-like pixels: a breast silhouette with texture, pectoral muscle, skin line,
markers, implants and lesions, as a float "density" image t in [0, 1] (0 = air,
1 = metal/marker). Conversion to a vendor's stored values happens in ``to_stored``.

Drawn in the canonical orientation (chest wall on the left edge) and mirrored for right
breasts, so a left breast sits on the left edge and a right breast on the right edge.
Every function takes its Generator explicitly; nothing here reads or writes files.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from rsna_pkg.data.synth import artefacts as artefact_draw
from rsna_pkg.data.synth.artefacts import NO_ARTEFACTS, ArtefactRates
from rsna_pkg.data.synth.findings import Finding
from rsna_pkg.data.synth.tables import Lesion

MAX_CANVAS_ROWS = 1024  # full-scale images are drawn at most this tall, then upsampled
FAT, GLAND, PECTORAL, IMPLANT, MARKER, AIR = 0.30, 0.60, 0.58, 0.93, 1.0, 0.03
MASS_CONTRAST = 0.17  # moderate: visible after windowing, not a saturated blob
MASS_RADIUS = 0.035  # of the image height; survives a 256-px downsample (~9 px radius)
GLAND_THRESHOLD = {"A": 1.6, "B": 1.0, "C": 0.45, "D": -0.1, None: 0.8}


@dataclass(frozen=True)
class Geometry:
    """Breast outline in canonical orientation (pixels of the canvas)."""

    yc: float  # vertical centre of the breast
    half_height: float
    depth: float  # chest wall to nipple
    pect_top: float  # pectoral width at the top row (0: no muscle, CC views)
    pect_height: float


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_in: int, smooth: bool) -> np.ndarray:
    """(n_out, n_in) weights that resample a 1-D signal: Gaussian (smooth) or linear."""
    pos = (np.arange(n_out, dtype=np.float32) + 0.5) * n_in / n_out - 0.5
    d = pos[:, None] - np.arange(n_in, dtype=np.float32)[None, :]
    w = np.exp(-0.5 * (d / 0.6) ** 2) if smooth else np.clip(1 - np.abs(d), 0, None)
    out = (w / w.sum(1, keepdims=True)).astype(np.float32)
    out.flags.writeable = False  # cached and shared
    return out


def resample(a: np.ndarray, shape: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """Separable resize by two matrix products: far faster than spline zoom for our sizes."""
    return (
        _interp_matrix(shape[0], a.shape[0], smooth)
        @ a
        @ _interp_matrix(shape[1], a.shape[1], smooth).T
    )


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell: tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-std noise smooth over ``cell`` pixels (rows, cols): low-resolution
    Gaussian noise upsampled with Gaussian weights."""
    low = (max(2, math.ceil(shape[0] / cell[0]) + 1), max(2, math.ceil(shape[1] / cell[1]) + 1))
    up = resample(rng.standard_normal(low, dtype=np.float32), shape, smooth=True)
    return (up - up.mean()) / (up.std() + 1e-6)


def draw_geometry(view: str, shape: tuple[int, int], rng: np.random.Generator) -> Geometry:
    h, w = shape
    if view in ("CC", "AT"):
        return Geometry(h * rng.uniform(0.46, 0.54), h * rng.uniform(0.36, 0.44),
                        w * rng.uniform(0.55, 0.75), 0.0, 0.0)  # fmt: skip
    return Geometry(h * rng.uniform(0.5, 0.58), h * rng.uniform(0.4, 0.46),
                    w * rng.uniform(0.6, 0.8), w * rng.uniform(0.25, 0.4), h * rng.uniform(0.4, 0.6))  # fmt: skip


def breast_mask(geo: Geometry, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Half-ellipse against the chest wall with a wobbly outline; MLO adds the axilla."""
    h, w = shape
    y = np.arange(h, dtype=np.float32)
    wobble = 1.0 + 0.04 * smooth_noise(rng, (h, 1), (h / 6, 1))[:, 0]
    rel = np.clip(1.0 - ((y - geo.yc) / geo.half_height) ** 2, 0.0, None)
    edge = geo.depth * rel**0.5 * wobble
    if geo.pect_top > 0:  # axillary tail runs up to the top edge along the muscle
        axilla = geo.pect_top * 1.25 * np.clip(1.0 - y / (geo.yc + geo.half_height), 0, None)
        edge = np.maximum(edge, axilla)
    x = np.arange(w, dtype=np.float32)
    return x[None, :] < edge[:, None]


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the outline along rows and columns (the mask is a prefix of every row and
    one run per column): a cheap stand-in for a Euclidean distance transform."""
    h, w = mask.shape
    yy, xx = np.ogrid[0:h, 0:w]
    dist_x = mask.sum(1, keepdims=True) - xx
    top = mask.argmax(0)[None, :]
    bottom = h - mask[::-1].argmax(0)[None, :]
    dist = np.minimum(dist_x, np.minimum(yy - top + 1, bottom - yy))
    return np.where(mask, dist, 0).astype(np.float32)


def tissue(
    mask: np.ndarray, geo: Geometry, density: str | None, rng: np.random.Generator
) -> np.ndarray:
    """Fat with fibroglandular clouds concentrated behind the nipple, Cooper-ligament-like
    streaks along the chest-wall-to-nipple axis, thinner (darker) towards the skin."""
    h, w = mask.shape
    lh, lw = (h + 1) // 2, (w + 1) // 2  # smooth parts are drawn at half resolution
    yy = ((np.arange(lh, dtype=np.float32) + 0.5) * h / lh - 0.5)[:, None]
    xx = ((np.arange(lw, dtype=np.float32) + 0.5) * w / lw - 0.5)[None, :]
    prior = np.exp(-(((xx - 0.4 * geo.depth) / (0.45 * geo.depth)) ** 2)
                   - ((yy - geo.yc) / (0.75 * geo.half_height)) ** 2)  # fmt: skip
    low = (lh, lw)
    field = (smooth_noise(rng, low, (lh / 8, lh / 8)) + 0.6 * smooth_noise(rng, low, (lh / 25, lh / 25))
             + 0.35 * smooth_noise(rng, low, (lh / 60, lh / 15)))  # fmt: skip
    gland = 1.0 / (
        1.0 + np.exp(-1.7 * (0.7 * field + 2.4 * prior - 1.2 - GLAND_THRESHOLD[density]))
    )
    # strands converging on the nipple: noise smooth along the radius, fine across angles
    phi = np.arctan2(yy - geo.yc, geo.depth - xx)  # (-pi/2, pi/2) inside the breast
    rho = np.hypot(yy - geo.yc, geo.depth - xx) / max(h, w)
    polar = rng.standard_normal((64, 6), dtype=np.float32)
    coords = np.stack(np.broadcast_arrays((phi / math.pi + 0.5) * 63, np.clip(rho, 0, 1) * 5))
    streaks = ndimage.map_coordinates(polar, coords, order=1, mode="nearest")
    smooth = resample((FAT + (GLAND - FAT) * gland + 0.015 * streaks).astype(np.float32), (h, w))
    fine = ndimage.uniform_filter(rng.standard_normal((h, w), dtype=np.float32), 3) * 3
    dist = inside_distance(mask)
    thick = np.clip(dist / (0.07 * w), 0, 1) ** 0.5
    t = (smooth + 0.012 * fine) * (0.7 + 0.3 * thick)
    skin = (dist > 0) & (dist <= max(1.5, h / 300))
    t = np.where(skin, t + 0.05, t)
    return np.where(mask, t, 0.0).astype(np.float32)


def pectoral(t: np.ndarray, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Bright muscle triangle in the upper chest-wall corner of MLO-like views."""
    if geo.pect_top <= 0:
        return t
    h, w = t.shape
    yy, xx = np.ogrid[0:h, 0:w]
    bound = geo.pect_top * np.clip(1.0 - yy / geo.pect_height, 0, None) ** 1.15
    inside = np.clip((bound - xx) / (0.012 * w) + 0.5, 0, 1)
    muscle = PECTORAL + 0.06 * (1 - yy / h) + 0.02 * smooth_noise(rng, (h, w), (h / 40, h / 10))
    return (t * (1 - inside) + muscle * inside).astype(np.float32)


def lesion_center(
    lesion: Lesion | Finding, geo: Geometry, mirror_safe_w: int
) -> tuple[float, float]:
    """Map breast coordinates to canvas pixels, away from the pectoral muscle."""
    cx = geo.depth * (0.15 + 0.6 * lesion.depth)
    cy = geo.yc + lesion.height * geo.half_height * 0.75 * math.sqrt(
        max(0.0, 1 - (cx / geo.depth) ** 2)
    )
    if geo.pect_top > 0:
        pect_x = geo.pect_top * max(0.0, 1 - cy / geo.pect_height) ** 1.15
        cx = max(cx, pect_x + 0.08 * mirror_safe_w)
    return cy, cx


def draw_lesion(
    t: np.ndarray, mask: np.ndarray, lesion: Lesion, geo: Geometry, rng: np.random.Generator
) -> np.ndarray:
    """Add one finding. Cancers: spiculated mass or a cluster of fine calcifications;
    benign look-alikes: a smooth round mass or one coarse calcification."""
    h, w = t.shape
    cy, cx = lesion_center(lesion, geo, w)
    r = MASS_RADIUS * h * lesion.size
    half = int(3.2 * r) + 2
    y0, y1 = max(0, int(cy) - half), min(h, int(cy) + half)
    x0, x1 = max(0, int(cx) - half), min(w, int(cx) + half)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    d, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    add = np.zeros_like(d)
    c = MASS_CONTRAST * rng.uniform(0.9, 1.1)
    if lesion.kind == "spiculated_mass":
        k = np.arange(2, 6)[:, None, None]
        rim = r * (
            1
            + np.sum(
                rng.uniform(0.04, 0.1, (4, 1, 1))
                * np.cos(k * theta + rng.uniform(0, 6.3, (4, 1, 1))),
                0,
            )
        )
        add += c * np.clip((rim - d) / (0.25 * r), 0, 1) * (0.85 + 0.15 * np.clip(1 - d / r, 0, 1))
        for ang in rng.uniform(-math.pi, math.pi, rng.integers(14, 22)):
            length = r * rng.uniform(2.0, 3.2)
            along = d * np.cos(theta - ang)
            perp = np.abs(d * np.sin(theta - ang))
            width = r * rng.uniform(0.09, 0.14) * np.clip(1 - along / length, 0, 1)
            ray = (along > 0.5 * r) & (along < length) & (perp < width + 0.5)
            add = np.maximum(add, np.where(ray, 0.8 * c * np.clip(1.1 - along / length, 0.2, 1), 0))
    elif lesion.kind == "round_mass":
        ry, rx = r * rng.uniform(0.9, 1.15), r * rng.uniform(0.9, 1.15)
        rr = np.hypot(dy / ry, dx / rx)
        add += 0.6 * c * np.clip((1 - rr) / 0.06, 0, 1)
    elif lesion.kind == "calc_cluster":
        add += 0.3 * c * np.exp(-((d / (1.3 * r)) ** 2))
        for _ in range(rng.integers(10, 19)):
            oy, ox = rng.normal(0, 0.55 * r, 2)
            sy, sx = h * rng.uniform(0.004, 0.007, 2)
            blob = ((dy - oy) / sy) ** 2 + ((dx - ox) / sx) ** 2
            add = np.maximum(add, 0.32 * np.clip(1.6 - blob, 0, 1))
    elif lesion.kind == "single_calc":
        rad = h * rng.uniform(0.011, 0.015)
        add += 0.35 * np.clip((1 - d / rad) / 0.15, 0, 1)
    else:
        raise ValueError(f"unknown lesion kind {lesion.kind!r}")
    out = t.copy()
    out[y0:y1, x0:x1] += add * mask[y0:y1, x0:x1]
    return out


def _draw_finding(
    t: np.ndarray, mask: np.ndarray, finding: Finding, geo: Geometry, mm_px: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """The canvas part of a realistic finding (calcifications come after upsampling)."""
    from rsna_pkg.data.synth import lesions_mm  # imports this module's tissue levels

    if mm_px <= 0:
        raise ValueError("a realistic finding needs the pixel size (mm_per_px)")
    center = lesion_center(finding, geo, t.shape[1])
    if finding.kind == "distortion":
        return lesions_mm.draw_distortion(t, mask, finding, center, mm_px, rng)
    if "mass" in finding.kind:
        return lesions_mm.draw_mass(t, mask, finding, center, mm_px, rng)
    return t


def draw_implant(t: np.ndarray, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """A silicone implant: bright, smooth, behind the tissue at the chest wall."""
    h, w = t.shape
    yy, xx = np.ogrid[0:h, 0:w]
    ry, rx = geo.half_height * rng.uniform(0.45, 0.6), geo.depth * rng.uniform(0.3, 0.45)
    rr = np.hypot((yy - geo.yc) / ry, (xx - 0.05 * w) / rx)
    inside = np.clip((1 - rr) / 0.04, 0, 1)
    return np.maximum(
        t, IMPLANT * inside + 0.01 * rng.standard_normal(t.shape).astype(np.float32) * inside
    )


def draw_markers(t: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burned-in labels: bright rectangles with text-like strokes in the corners opposite
    the chest wall, skipped where they would fall inside the breast's box."""
    h, w = t.shape
    gap = round(artefact_draw.CLEARANCE * max(h, w))
    out = t.copy()
    for top in (True, False):
        bh, bw = int(h * rng.uniform(0.025, 0.04)), int(w * rng.uniform(0.07, 0.12))
        y0 = int(h * 0.02) if top else h - int(h * 0.02) - bh
        x0 = w - int(w * 0.03) - bw
        if not artefact_draw.clear_of_box(mask, y0, x0, bh, bw, gap) or (
            not top and rng.random() < 0.5
        ):
            continue
        block = np.full((bh, bw), MARKER, np.float32)
        stroke = max(1, bh // 6)
        for sx in range(stroke, bw - 2 * stroke, 3 * stroke):  # glyph-like gaps
            if rng.random() < 0.7:
                gy = int(rng.integers(stroke, max(stroke + 1, bh - 2 * stroke)))
                block[gy : gy + stroke, sx : sx + 2 * stroke] = 0.55
        out[y0 : y0 + bh, x0 : x0 + bw] = block
    return out


@dataclass(frozen=True)
class Scene:
    """A rendered image and where things are: the breast (nipple included) and burned-in
    labels as masks of the drawing canvas, which ``render`` upsamples to ``image.shape``."""

    image: np.ndarray  # float32 t in [0, 1], shape (rows, cols), mirrored for right breasts
    breast: np.ndarray  # bool, canvas shape, same orientation as ``image``
    labels: np.ndarray  # bool, canvas shape

    def breast_box(self) -> tuple[int, int, int, int]:
        """The true breast box (y0, x0, y1, x1), half-open, in ``image`` pixels."""
        ys = np.flatnonzero(self.breast.any(axis=1))
        xs = np.flatnonzero(self.breast.any(axis=0))
        sy = self.image.shape[0] / self.breast.shape[0]
        sx = self.image.shape[1] / self.breast.shape[1]
        return (math.floor(ys[0] * sy), math.floor(xs[0] * sx),
                math.ceil((ys[-1] + 1) * sy), math.ceil((xs[-1] + 1) * sx))  # fmt: skip


def render(*args: Any, **kwargs: Any) -> np.ndarray:
    """The image alone (float32 t in [0, 1]) of :func:`render_scene`, same arguments."""
    return render_scene(*args, **kwargs).image


def render_scene(
    shape: tuple[int, int],
    laterality: str,
    view: str,
    density: str | None,
    implant: bool,
    lesion: Lesion | Finding | None,
    rng: np.random.Generator,
    mm_per_px: float = 0.0,
    artefacts: ArtefactRates = NO_ARTEFACTS,
) -> Scene:
    """The image with its truth masks.

    Each part draws from its own child Generator, so adding a lesion or an implant
    changes nothing else in the image (the tests compare with and without). A realistic
    ``Finding`` needs ``mm_per_px``, the pixel size of ``shape`` (``MachineProfile.mm_per_pixel``).
    ``artefacts`` gives the rate of each artefact (``artefacts.ARTEFACT_RATES`` per machine),
    drawn from a Generator of their own: with none, the image is as it was before them."""
    seeds = rng.integers(0, 2**63, 5)
    children = [np.random.default_rng(int(s)) for s in seeds]
    shape_rng, tissue_rng, implant_rng, lesion_rng, noise_rng = children
    art_rng = np.random.default_rng([int(seeds[0]), 20])
    scale = min(1.0, MAX_CANVAS_ROWS / shape[0])
    canvas = (round(shape[0] * scale), round(shape[1] * scale))
    geo = draw_geometry(view, canvas, shape_rng)
    mask = breast_mask(geo, canvas, shape_rng)
    t = pectoral(tissue(mask, geo, density, tissue_rng), geo, tissue_rng)
    t = np.where(mask, t, 0.0)
    if implant:
        t = np.where(mask, draw_implant(t, geo, implant_rng), t)
    if isinstance(lesion, Finding):
        t = _draw_finding(t, mask, lesion, geo, mm_per_px * shape[0] / canvas[0], lesion_rng)
    elif lesion is not None:
        t = draw_lesion(t, mask, lesion, geo, lesion_rng)
    air = AIR + 0.006 * smooth_noise(noise_rng, canvas, (canvas[0] / 20, canvas[0] / 20))
    draws = art_rng.random(5)  # one per artefact, always all five: rates stay independent
    bump, nipple_level = np.zeros_like(mask), 0.0
    if draws[4] < artefacts.nipple:
        bump, nipple_level = artefact_draw.nipple(mask, geo.yc, AIR, art_rng)
    breast = mask | bump  # the truth: labels and markers stay outside its box
    before = np.where(mask, t, air)
    t = draw_markers(before, breast, noise_rng)
    labels = t != before
    if bump.any():
        t = np.where(bump, nipple_level, t)
    t, labels = _draw_artefacts(t, mask, breast, labels, laterality + view, draws, artefacts,
                                art_rng)  # fmt: skip
    if canvas != shape:
        t = resample(t, shape)
    if isinstance(lesion, Finding) and lesion.specks_mm:  # at full resolution: specks are fine
        from rsna_pkg.data.synth.lesions_mm import add_specks

        cy, cx = lesion_center(lesion, geo, canvas[1])  # to image pixels as `resample` maps
        cy, cx = ((c + 0.5) * n / m - 0.5 for c, n, m in zip((cy, cx), shape, canvas, strict=True))
        t = add_specks(t, lesion, (cy, cx), mm_per_px, lesion_rng)
    t += 0.005 * noise_rng.standard_normal(shape, dtype=np.float32)  # quantum noise, full res
    if laterality == "R":
        t, breast, labels = t[:, ::-1], breast[:, ::-1], labels[:, ::-1]
    return Scene(np.clip(t, 0.0, 1.0).astype(np.float32), breast, labels)


def _draw_artefacts(t: np.ndarray, mask: np.ndarray, breast: np.ndarray, labels: np.ndarray,
                    text: str, draws: np.ndarray, rates: ArtefactRates, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The skin fade, strip, bands and view label where ``draws`` fall under their rates:
    (image, label pixels: ``labels`` and the view label's)."""
    if draws[3] < rates.faint_skin:
        t = artefact_draw.fade_skin(t, mask, inside_distance(mask), AIR, rng)
    if draws[2] < rates.chest_strip:
        t = artefact_draw.chest_strip(t, rng)
    if draws[1] < rates.edge_bands:
        t = artefact_draw.edge_bands(t, rng)
    if draws[0] < rates.view_label:
        # drawn mirrored for right breasts, so that it reads the right way once flipped
        t, more = artefact_draw.view_label(t, breast, labels, text, rng, text.startswith("R"))
        labels = labels | more
    return t, labels
