"""What real mammograms carry besides the breast, drawn per machine with its own rates:
burned-in view labels ("LCC", "RMLO") in a free corner, bright film or collimator bands
along the edges, a faint strip along the chest-wall edge, a skin line that fades almost to
the background, and a faint nipple protruding from the breast's tip.

They are what broke the breast crop on real images (issue 20). Drawn on the canvas in the
canonical orientation (chest wall on the left), each from the Generator passed in, after the
breast and before the final noise; the breast mask they return (nipple included) is the
truth ``rsna bench roi`` and ``breast_boxes.csv`` measure against. The rates are this
package's choice, spread so that every machine shows some of each, not figures measured
on the competition's images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABEL_LEVEL = 1.0  # burned-in text is drawn at the top of the stored range
CLEARANCE = 0.02  # a label keeps this share of the long side away from the breast's box


@dataclass(frozen=True)
class ArtefactRates:
    """Probability of each artefact on one image of a machine."""

    view_label: float
    edge_bands: float
    chest_strip: float
    faint_skin: float
    nipple: float


_R = ArtefactRates
ARTEFACT_RATES: dict[int, ArtefactRates] = {
    49: _R(0.9, 0.3, 0.2, 0.5, 0.6),
    93: _R(0.8, 0.6, 0.4, 0.6, 0.5),
    170: _R(0.7, 0.5, 0.3, 0.7, 0.5),
    190: _R(0.9, 0.2, 0.5, 0.4, 0.6),
    197: _R(0.6, 0.4, 0.3, 0.5, 0.7),
    210: _R(0.8, 0.5, 0.2, 0.6, 0.4),
    216: _R(0.5, 0.7, 0.4, 0.5, 0.5),
    21: _R(0.7, 0.6, 0.5, 0.7, 0.6),
    29: _R(0.9, 0.4, 0.3, 0.6, 0.5),
    48: _R(0.8, 0.3, 0.4, 0.5, 0.6),
}
NO_ARTEFACTS = ArtefactRates(0.0, 0.0, 0.0, 0.0, 0.0)

# 5x7 glyphs of the letters a view label needs (laterality + ViewPosition).
GLYPHS = {
    "L": ("10000",) * 6 + ("11111",),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "C": ("01111", "10000", "10000", "10000", "10000", "10000", "01111"),
    "M": ("10001", "11011", "10101", "10001", "10001", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "T": ("11111",) + ("00100",) * 6,
}


def clear_of_box(mask: np.ndarray, y0: int, x0: int, height: int, width: int, gap: int) -> bool:
    """True when the rectangle, grown by ``gap``, stays outside the bounding box of ``mask``:
    a label inside the breast's box would be inside any crop that keeps the whole breast."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return True
    return (y0 + height + gap <= ys[0] or y0 - gap > ys[-1]
            or x0 + width + gap <= xs[0] or x0 - gap > xs[-1])  # fmt: skip


def text_bitmap(text: str, cell: int) -> np.ndarray:
    """Boolean bitmap of ``text`` in the 5x7 glyphs, each glyph pixel ``cell`` px wide."""
    blank = ("00000",) * 7
    rows = [" ".join(GLYPHS.get(ch, blank)[r] for ch in text) for r in range(7)]
    bits = np.array([[c == "1" for c in row] for row in rows], dtype=bool)
    return np.kron(bits, np.ones((cell, cell), dtype=bool))


def fade_skin(t: np.ndarray, mask: np.ndarray, dist: np.ndarray, air: float,
              rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Thin the breast towards its outline: within a band of 1.5-3 % of the width the values
    fall to 10-25 % of their height above the air, as the compressed breast thins out."""
    band = mask.shape[1] * rng.uniform(0.015, 0.03)
    keep = rng.uniform(0.1, 0.25)
    ramp = keep + (1.0 - keep) * np.clip(dist / band, 0.0, 1.0)
    return np.where(mask, air + (t - air) * ramp, t).astype(np.float32)


def nipple(mask: np.ndarray, yc: float, air: float, rng: np.random.Generator
           ) -> tuple[np.ndarray, float]:  # fmt: skip
    """A faint protrusion beyond the breast's tip: (its pixels, its value there)."""
    h, w = mask.shape
    row = int(np.clip(round(yc), 0, h - 1))
    tip = int(mask[row].sum())  # the outline is a prefix of every row
    half = max(1.0, h * rng.uniform(0.01, 0.016))
    length = max(2.0, w * rng.uniform(0.03, 0.07))
    yy, xx = np.ogrid[0:h, 0:w]
    along = (xx - tip) / length
    # a rounded bump: full height at the tip, narrowing to its end
    narrowing = np.sqrt(1 - np.clip(along, 0, 1) ** 2)
    inside = (along >= -0.2) & (along < 1.0) & (np.abs(yy - row) < half * narrowing)
    return inside & ~mask, air + float(rng.uniform(0.04, 0.08))


def chest_strip(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A faint band over the full height along the chest-wall edge (column 0)."""
    width = max(1, round(t.shape[1] * rng.uniform(0.01, 0.045)))
    out = t.copy()
    out[:, :width] = np.maximum(out[:, :width], rng.uniform(0.08, 0.2))
    return out


def edge_bands(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bright bands along one to four edges (film or collimator edges)."""
    h, w = t.shape
    out = t.copy()
    level = rng.uniform(0.85, 1.0)
    for side in rng.permutation(4)[: rng.integers(1, 5)]:
        depth = max(1, round((h if side < 2 else w) * rng.uniform(0.003, 0.012)))
        if side == 0:
            out[:depth] = level
        elif side == 1:
            out[h - depth :] = level
        elif side == 2:
            out[:, :depth] = level
        else:
            out[:, w - depth :] = level
    return out


def view_label(t: np.ndarray, breast: np.ndarray, taken: np.ndarray, text: str,
               rng: np.random.Generator, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Burned-in text in a corner clear of the breast's box and of ``mask``'s other labels;
    (image, label pixels). No label when no corner is free."""
    h, w = t.shape
    bits = text_bitmap(text, max(1, round(h * rng.uniform(0.004, 0.007))))
    bits = bits[:, ::-1] if mirrored else bits
    bh, bw = bits.shape
    gap, clear = round(0.02 * h), round(CLEARANCE * max(h, w))
    label = np.zeros((h, w), dtype=bool)
    if bh + 2 * gap >= h or bw + 2 * gap >= w:
        return t, label
    corners = [(gap, w - gap - bw), (h - gap - bh, w - gap - bw), (gap, gap), (h - gap - bh, gap)]
    for i in rng.permutation(4):
        y0, x0 = corners[i]
        near = taken[max(0, y0 - gap) : y0 + bh + gap, max(0, x0 - gap) : x0 + bw + gap]
        if clear_of_box(breast, y0, x0, bh, bw, clear) and not near.any():
            label[y0 : y0 + bh, x0 : x0 + bw] = bits
            out = t.copy()
            out[label] = LABEL_LEVEL
            return out, label
    return t, label
