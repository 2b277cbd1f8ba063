"""The torch twin of :mod:`rsna_pkg.dicom.voi`, for windowing on the GPU after DALI.

Same plan (:func:`voi_plan`), same formulas, float32 arithmetic on the tensor's device with
the window parameters kept as Python floats (float64): never float16, which cannot hold a
center above 2048 exactly.
"""

from __future__ import annotations

import torch

from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.voi import FALLBACK_PERCENTILES, VoiPlan, fallback_stride, voi_plan


def robust_range_torch(values: torch.Tensor) -> tuple[float, float]:
    s = fallback_stride(tuple(values.shape))
    sample = values[::s, ::s].reshape(-1).double()
    vmin, vmax = sample.min(), sample.max()
    kept = sample[(sample > vmin) & (sample < vmax)]
    if kept.numel() >= 2:
        q = torch.tensor([p / 100 for p in FALLBACK_PERCENTILES], dtype=torch.float64)
        lo, hi = torch.quantile(kept, q.to(kept.device)).tolist()
        if hi > lo:
            return float(lo), float(hi)
    return float(vmin), float(vmax)


def apply_plan_torch(stored: torch.Tensor, plan: VoiPlan) -> torch.Tensor:
    x = stored.to(torch.float32)
    if plan.has_rescale and (plan.slope != 1.0 or plan.intercept != 0.0):
        x = x * plan.slope + plan.intercept
    if plan.kind == "lut":
        lut = torch.tensor(plan.lut, dtype=torch.float32, device=x.device) / plan.lut_max
        idx = torch.where(x >= plan.lut_first, torch.trunc(x - plan.lut_first), 0)
        out = lut[idx.clamp(0, len(plan.lut) - 1).long()]
    elif plan.kind in ("LINEAR", "LINEAR_EXACT"):
        c, w = plan.center, plan.width
        out = ((x - c) * (1.0 / w) + 0.5).clamp(0.0, 1.0) if w > 0 else (x > c).float()
    elif plan.kind == "SIGMOID":
        out = 1.0 / (1.0 + torch.exp((-4.0 / plan.width) * (x - plan.center)))
    else:
        lo, hi = robust_range_torch(x)
        out = ((x - lo) / (hi - lo)).clamp(0.0, 1.0) if hi > lo else torch.zeros_like(x)
    if plan.invert:
        out = 1.0 - out
    return out.to(torch.float32)


def apply_voi_torch(stored: torch.Tensor, header: DicomHeader, index: int = 0) -> torch.Tensor:
    """(H, W) stored values on any device -> float32 [0, 1] on that device, as apply_voi."""
    return apply_plan_torch(stored, voi_plan(header, index))
