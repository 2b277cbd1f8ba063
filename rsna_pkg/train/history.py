"""Run outputs beside the model: history.csv, curves.png, metrics.json, config.json."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from rsna_pkg.lazy_pyplot import pyplot
from rsna_pkg.outputs import atomic_write_bytes, atomic_write_text


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON write; NaN becomes null so the file is strict JSON."""
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(path, pd.DataFrame(history).to_csv(index=False))


def plot_curves(path: str | Path, history: list[dict[str, Any]]) -> None:
    """Loss and validation metrics per epoch (matplotlib, Agg backend)."""
    plt = pyplot()
    df = pd.DataFrame(history)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(df["epoch"], df["train_loss"], marker="o", label="train loss")
    if "val_loss" in df:
        ax_loss.plot(df["epoch"], df["val_loss"], marker="o", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("loss (BCE)")
    ax_loss.legend()
    for col, label in (
        ("val_auc", "AUC per breast"),
        ("image_auc", "AUC per image"),
        ("val_pf1_best", "pF1 per breast (best thr.)"),
        ("val_pf1", "pF1 per breast (raw)"),
    ):
        if col in df:
            ax_metric.plot(df["epoch"], df[col], marker="o", label=label)
    ax_metric.set_ylim(0, 1)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation")
    ax_metric.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
