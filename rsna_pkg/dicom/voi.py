"""Modality rescale + VOI (PS3.3 C.11.1, C.11.2) to float32 in [0, 1], bright = dense.

``apply_voi(stored, header, index)`` equals pydicom's
``apply_voi_lut(apply_modality_lut(stored, ds), ds, index)`` rescaled from its output range
to [0, 1]: the VOI LUT Sequence when present (output range [0, 2**bits - 1] of its LUT
Descriptor), else WindowCenter/Width with VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID
(C.11.2.1.2; output range = the stored range mapped through the rescale, which cancels out).
MONOCHROME1 is inverted afterwards (1 - x), which pydicom does not do.

Without any VOI data the window is a robust min-max (our design): the 0.5th and 99.5th
percentiles of the modality values on a regular subsample (about 2**18 pixels), ignoring
pixels equal to the image's minimum or maximum value (flat background, saturated labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.errors import DicomError

FALLBACK_PERCENTILES = (0.5, 99.5)
FALLBACK_SAMPLES = 2**18


@dataclass(frozen=True)
class VoiPlan:
    """Everything needed to window one image, worked out from the header alone."""

    kind: str  # "lut" | "LINEAR" | "LINEAR_EXACT" | "SIGMOID" | "minmax"
    slope: float
    intercept: float
    has_rescale: bool
    center: float = 0.0  # after the LINEAR adjustment (c - 0.5)
    width: float = 1.0  # after the LINEAR adjustment (w - 1)
    lut: tuple[int, ...] = ()
    lut_first: int = 0
    lut_max: float = 1.0  # 2**bits - 1 of the LUT Descriptor
    invert: bool = False


def voi_plan(header: DicomHeader, index: int = 0) -> VoiPlan:
    """Choose and parametrise the VOI transform, as pydicom's apply_voi_lut chooses it."""
    base: dict[str, Any] = {
        "slope": header.rescale_slope,
        "intercept": header.rescale_intercept,
        "has_rescale": header.has_rescale,
        "invert": header.monochrome1,
    }
    if header.voi_luts:
        if index >= len(header.voi_luts):
            raise DicomError(header.path, f"no VOI LUT number {index}")
        lut = header.voi_luts[index]
        return VoiPlan("lut", lut=lut.data, lut_first=lut.first_mapped,
                       lut_max=float(2**lut.bits - 1), **base)  # fmt: skip
    centers, widths = header.window_centers, header.window_widths
    if not centers or not widths:
        return VoiPlan("minmax", **base)
    if max(len(centers), len(widths)) > 1 and index >= min(len(centers), len(widths)):
        raise DicomError(header.path, f"no window number {index} (has {len(centers)})")
    # pydicom ignores the index when a tag holds one value.
    center = centers[index] if len(centers) > 1 else centers[0]
    width = widths[index] if len(widths) > 1 else widths[0]
    func = (header.voi_lut_function or "LINEAR").upper()
    if func == "LINEAR":
        if width < 1:
            raise DicomError(header.path, f"LINEAR window width {width} < 1")
        return VoiPlan("LINEAR", center=center - 0.5, width=width - 1, **base)
    if func in ("LINEAR_EXACT", "SIGMOID"):
        if width <= 0:
            raise DicomError(header.path, f"{func} window width {width} <= 0")
        return VoiPlan(func, center=center, width=width, **base)
    raise DicomError(header.path, f"unsupported VOILUTFunction {func!r}")


def fallback_stride(shape: tuple[int, ...]) -> int:
    """Subsampling step of the min-max fallback: about FALLBACK_SAMPLES pixels."""
    n = math.prod(shape)
    return max(1, math.ceil(math.sqrt(n / FALLBACK_SAMPLES)))


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """Fallback window [lo, hi] over the non-extreme pixels (see the module docstring)."""
    s = fallback_stride(values.shape)
    sample = values[::s, ::s].ravel()
    vmin, vmax = float(sample.min()), float(sample.max())
    kept = sample[(sample > vmin) & (sample < vmax)]
    if kept.size >= 2:
        lo, hi = np.percentile(kept, FALLBACK_PERCENTILES)
        if hi > lo:
            return float(lo), float(hi)
    return vmin, vmax


def modality(stored: np.ndarray, plan: VoiPlan) -> np.ndarray:
    """Rescale Slope/Intercept (C.11.1.1.2); float64."""
    values = stored.astype(np.float64)
    if plan.has_rescale:
        values = values * plan.slope + plan.intercept
    return values


def apply_plan(stored: np.ndarray, plan: VoiPlan) -> np.ndarray:
    x = modality(stored, plan)
    if plan.kind == "lut":
        lut = np.asarray(plan.lut, dtype=np.float64)
        idx = np.where(x >= plan.lut_first, np.trunc(x - plan.lut_first), 0)
        out = lut[np.clip(idx, 0, len(lut) - 1).astype(np.int64)] / plan.lut_max
    elif plan.kind in ("LINEAR", "LINEAR_EXACT"):
        c, w = plan.center, plan.width
        # below c - w/2 -> 0, above c + w/2 -> 1 (the <= / > split pydicom uses).
        ramp = (x - c) / w + 0.5 if w > 0 else np.zeros_like(x)
        out = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, ramp))
    elif plan.kind == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - plan.center) / plan.width))
    else:
        lo, hi = robust_range(x)
        out = np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x)
    if plan.invert:
        out = 1.0 - out
    return out.astype(np.float32)


def apply_voi(stored: np.ndarray, header: DicomHeader, index: int = 0) -> np.ndarray:
    """Stored values -> float32 in [0, 1], MONOCHROME1 inverted (bright = dense tissue)."""
    return apply_plan(stored, voi_plan(header, index))
