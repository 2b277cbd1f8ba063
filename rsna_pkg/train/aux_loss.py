"""The auxiliary heads' share of the training loss: sum over heads of weight x (masked
mean of BCE-with-logits for a one-logit head, cross-entropy otherwise). Missing labels
(``data.aux_targets.MISSING``, negative) are left out of the mean, not imputed; a batch
with none labelled adds 0 but keeps the head in the graph, so DDP still syncs its
(zero) gradient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def masked_head_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits [B, n] float, target [B] class index (0/1 when n == 1), negative = missing
    -> the mean loss over the labelled rows (0 when none is)."""
    known = target >= 0
    safe = torch.where(known, target, torch.zeros_like(target))
    if logits.shape[1] == 1:
        per_row = F.binary_cross_entropy_with_logits(logits[:, 0], safe, reduction="none")
    else:
        per_row = F.cross_entropy(logits, safe.long(), reduction="none")
    weight = known.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


def aux_loss(
    logits: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    names: Sequence[str],
    weights: Mapping[str, float],
) -> torch.Tensor:
    """sum_j weights[names[j]] * masked_head_loss(logits[names[j]], targets[:, j]);
    targets [B, len(names)]."""
    parts = [
        weights[name] * masked_head_loss(logits[name].float(), targets[:, j].float())
        for j, name in enumerate(names)
    ]
    return torch.stack(parts).sum()
