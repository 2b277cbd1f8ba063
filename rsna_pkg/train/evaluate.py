"""Validation: predict per image, gather over ranks, score per image and per
breast (the competition's unit) with the metrics module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from rsna_pkg.errors import InputError
from rsna_pkg.metrics import aggregate_per_breast, best_threshold, pfbeta, roc_auc
from rsna_pkg.outputs import atomic_write_text
from rsna_pkg.train.ddp import DistContext, gather_objects


@torch.no_grad()
def predict(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, channels_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, probabilities) for this rank's share of the loader."""
    model.eval()
    rows: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    for images, meta, _, idx in loader:
        x = images.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        m = meta.to(device) if meta.numel() else None
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model(x, m)
        probs.append(torch.sigmoid(logits.float()).cpu().numpy())
        rows.append(np.asarray(idx))
    if not rows:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
    return np.concatenate(rows), np.concatenate(probs)


def gather_predictions(ctx: DistContext, rows: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-row probabilities of the whole validation set, ordered by row."""
    parts = gather_objects(ctx, (rows.tolist(), probs.tolist()))
    all_rows = np.concatenate([np.asarray(r, dtype=int) for r, _ in parts])
    all_probs = np.concatenate([np.asarray(p, dtype=np.float64) for _, p in parts])
    out = np.full(int(all_rows.max()) + 1 if all_rows.size else 0, np.nan)
    out[all_rows] = all_probs
    return out


def score(val: pd.DataFrame, probs: np.ndarray, aggregation: str) -> dict[str, Any]:
    """Per-image and per-breast AUC and pF1 (raw probabilities), plus the
    best-threshold pF1 per breast and that threshold (used at inference)."""
    if len(probs) != len(val):
        raise RuntimeError(f"validation predictions cover {len(probs)}/{len(val)}")
    if not np.isfinite(probs).all():  # NaN/inf weights: the optimiser diverged (a high --lr)
        raise InputError(f"validation predictions are not finite for {(~np.isfinite(probs)).sum()}"
                         f"/{len(val)} images: training diverged (try a lower --lr)")  # fmt: skip
    y_img = val["cancer"].to_numpy()
    breast_y, breast_p = per_breast(val, probs, aggregation)
    best = best_threshold(breast_y.to_numpy(), breast_p.to_numpy())
    best_img = best_threshold(y_img, probs)
    return {
        "val_auc": roc_auc(breast_y, breast_p),
        "val_pf1": pfbeta(breast_y, breast_p),
        "val_pf1_best": best.pf1,
        "threshold": best.threshold,
        "image_auc": roc_auc(y_img, probs),
        "image_pf1": pfbeta(y_img, probs),
        "image_pf1_best": best_img.pf1,
        "image_threshold": best_img.threshold,
        "val_images": int(len(val)),
        "val_breasts": int(len(breast_p)),
        "val_positive_breasts": int(breast_y.sum()),
    }


def per_breast(
    val: pd.DataFrame, probs: np.ndarray, aggregation: str
) -> tuple[pd.Series, pd.Series]:
    """(labels, probabilities) per prediction_id: a breast is positive if any image is."""
    breast_p = aggregate_per_breast(val["prediction_id"], probs, how=aggregation)  # type: ignore[arg-type]
    breast_y = val.groupby("prediction_id", sort=False)["cancer"].max().reindex(breast_p.index)
    return breast_y, breast_p


def write_predictions(path: str | Path, val: pd.DataFrame, probs: np.ndarray, epoch: int) -> None:
    """A run's val_predictions.csv (``RunFolder.val_predictions``): ids, label and
    probability of every validation image, and the epoch that scored them (the one model.pt
    holds); K-fold training gathers every fold's into oof.csv (train/folds.py)."""
    frame = val[["patient_id", "image_id", "prediction_id", "cancer"]].assign(
        probability=probs, epoch=epoch
    )
    atomic_write_text(path, frame.to_csv(index=False))
