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

from rsna_pkg.dicom.header import DicomHeader, VoiLut
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
    base: dict[str, Any] = {**rescale_fields(header), "invert": header.monochrome1}
    if header.voi_luts:
        if index >= len(header.voi_luts):
            raise DicomError(header.path, f"no VOI LUT number {index}")
        lut = header.voi_luts[index]
        problem = lut_problem(lut)
        if problem:
            raise DicomError(header.path, f"VOI LUT {index}: {problem}")
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
    if not (math.isfinite(center) and math.isfinite(width)):
        raise DicomError(header.path, f"window center {center} / width {width} not finite")
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


def lut_problem(lut: VoiLut) -> str:
    """What makes a VOI LUT unusable ('' if nothing): C.11.2.1.1 asks for LUT Data of
    exactly the number of entries its LUT Descriptor declares, of at most 16 bits each."""
    if not lut.data:
        return "LUT Data is empty"
    if lut.entries >= 0 and len(lut.data) != lut.entries:
        return f"LUT Descriptor declares {lut.entries} entries, LUT Data holds {len(lut.data)}"
    if not 1 <= lut.bits <= 16:
        return f"LUT Descriptor bits {lut.bits} outside 1..16"
    return ""


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
    """Rescale Slope/Intercept (C.11.1.1.2), in float32: exact for stored values < 2**24."""
    values = stored.astype(np.float32)
    if plan.has_rescale and (plan.slope != 1.0 or plan.intercept != 0.0):
        values *= np.float32(plan.slope)
        values += np.float32(plan.intercept)
    return values


def apply_plan(stored: np.ndarray, plan: VoiPlan, mirror: bool = False) -> np.ndarray:
    """Float32 arithmetic throughout (the images are large); agrees with pydicom's float64
    to ~1e-6. ``mirror``: the result comes out left-right mirrored, written in that order
    by the one float conversion (a mirrored view copied afterwards cost a 12 MB pass per
    crop); the same values as mirroring the unmirrored result."""
    x = modality(stored[:, ::-1] if mirror else stored, plan)
    if plan.kind == "lut":
        lut = np.asarray(plan.lut, dtype=np.float32) / np.float32(plan.lut_max)
        idx = np.where(x >= plan.lut_first, np.trunc(x - plan.lut_first), 0)
        out = lut[np.clip(idx, 0, len(lut) - 1).astype(np.int64)]
    elif plan.kind in ("LINEAR", "LINEAR_EXACT"):
        # pydicom: <= c - w/2 -> y_min, > c + w/2 -> y_max, ((x - c) / w + 0.5) between;
        # in [0, 1] that is exactly the clipped ramp.
        c, w = plan.center, plan.width
        if w > 0:
            x -= np.float32(c)
            x *= np.float32(1.0 / w)
            x += np.float32(0.5)
            out = np.clip(x, 0.0, 1.0, out=x)
        else:  # LINEAR with width 1: a step at c
            out = (x > c).astype(np.float32)
    elif plan.kind == "SIGMOID":
        x -= np.float32(plan.center)
        x *= np.float32(-4.0 / plan.width)
        with np.errstate(over="ignore"):  # exp -> inf gives exactly 0, as it should
            np.exp(x, out=x)
        x += np.float32(1.0)
        out = np.reciprocal(x, out=x)
    else:
        lo, hi = robust_range(x[:, ::-1] if mirror else x)  # the unmirrored subsample
        if hi > lo:
            x -= np.float32(lo)
            x *= np.float32(1.0 / (hi - lo))
            out = np.clip(x, 0.0, 1.0, out=x)
        else:
            out = np.zeros_like(x)
    if plan.invert:
        out = np.subtract(1.0, out, out=out) if out.dtype == np.float32 else 1.0 - out
    return out.astype(np.float32, copy=False)


def oriented_values(stored: np.ndarray, header: DicomHeader) -> np.ndarray:
    """Modality values (C.11.1) as float32, negated for MONOCHROME1 so that bright = dense,
    with no window: what the breast segmentation looks at, since a tissue window clips the
    skin line and a faint nipple to the background's black."""
    x = modality(stored, VoiPlan("minmax", **rescale_fields(header)))
    return np.negative(x, out=x) if header.monochrome1 else x


def rescale_fields(header: DicomHeader) -> dict[str, Any]:
    """The modality rescale (C.11.1) of a VoiPlan, refused when not finite."""
    if not (math.isfinite(header.rescale_slope) and math.isfinite(header.rescale_intercept)):
        raise DicomError(header.path, "RescaleSlope/Intercept not finite")
    return {"slope": header.rescale_slope, "intercept": header.rescale_intercept,
            "has_rescale": header.has_rescale}  # fmt: skip


def apply_voi(stored: np.ndarray, header: DicomHeader, index: int = 0,
              mirror: bool = False) -> np.ndarray:  # fmt: skip
    """Stored values -> float32 in [0, 1], MONOCHROME1 inverted (bright = dense tissue);
    ``mirror``: left-right mirrored (C-contiguous either way)."""
    return apply_plan(stored, voi_plan(header, index), mirror)
