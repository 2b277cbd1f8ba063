"""The ``--report`` JSON of an inference run: counts, failures, time per stage, throughput,
and the run time projected for the hidden test set (about 35,000 images, competition.md)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rsna_pkg.outputs import atomic_write_text

HIDDEN_TEST_IMAGES = 35_000


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished child (workers)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)  # ru_maxrss: KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"main": round(own, 1), "largest_child": round(children, 1)}


def projected_seconds(
    fixed_s: float, stream_s: float, images: int, target: int = HIDDEN_TEST_IMAGES
) -> float:
    """Fixed costs (CSV, model loading) plus the measured streaming time per image x target."""
    if images <= 0:
        return float("nan")
    return fixed_s + stream_s / images * target


def build_report(
    result: Any, settings: dict[str, Any], seconds: dict[str, float]
) -> dict[str, Any]:
    """Plain-JSON summary of an ``InferResult``; ``settings`` records how it ran."""
    n = len(result.table)
    decoded = int(np.isfinite(result.image_probs).sum())
    stream = seconds.get("stream", 0.0)
    fixed = seconds.get("read_csv", 0.0) + seconds.get("load_models", 0.0)
    return {
        "settings": settings,
        "images": n,
        "images_predicted": decoded,
        "images_failed": len(result.failures),
        "breasts": int(len(result.submission)),
        "breasts_in_test": int(result.table["prediction_id"].nunique()),
        "breasts_without_image": result.fallback_breasts,
        "breasts_not_in_sample": list(getattr(result, "unscored", [])),
        "threshold": result.threshold,
        "positive_breasts": int((result.submission["cancer"] >= 0.5).sum())
        if result.threshold is not None
        else None,
        "failures": result.failures,
        "skipped_models": list(getattr(result, "skipped_models", [])),
        "checkpoints": list(getattr(result, "checkpoints", [])),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "images_per_s": round(n / stream, 3) if stream > 0 else None,
        "projected_seconds_35000_images": round(projected_seconds(fixed, stream, n), 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return path
