"""Competition metric and the per-breast evaluation the winning solutions used.

pF1 follows the host's definition (competition.md): predictions clipped to [0, 1],
pTP = sum of p over positives, pFP = sum of p over negatives,
pPrecision = pTP / (pTP + pFP), pRecall = pTP / #positives, and 0 when either is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

Aggregation = Literal["mean", "max"]


def pfbeta(labels: ArrayLike, predictions: ArrayLike, beta: float = 1.0) -> float:
    """Probabilistic F-beta of the competition (vectorised)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(predictions, dtype=np.float64).ravel(), 0.0, 1.0)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in length")
    positives = y.sum()
    ptp = float((p * y).sum())
    pfp = float((p * (1.0 - y)).sum())
    if positives == 0 or ptp + pfp == 0:
        return 0.0
    precision = ptp / (ptp + pfp)
    recall = ptp / positives
    if precision == 0 or recall == 0:
        return 0.0
    b2 = beta * beta
    return float((1 + b2) * precision * recall / (b2 * precision + recall))


def pfbeta_at(labels: ArrayLike, scores: ArrayLike, threshold: float) -> float:
    """pF1 of scores binarised at ``threshold``: 1 where score >= threshold (the rule
    ``best_threshold`` searches and inference applies)."""
    s = np.asarray(scores, dtype=np.float64)
    return pfbeta(labels, (s >= threshold).astype(np.float64))


def aggregate_per_breast(
    prediction_ids: ArrayLike, values: ArrayLike, how: Aggregation = "mean"
) -> pd.Series:
    """Reduce per-image values to one per ``prediction_id`` (mean or max),
    indexed by prediction_id in order of first appearance."""
    if how not in ("mean", "max"):
        raise ValueError(f"aggregation must be 'mean' or 'max', got {how!r}")
    frame = pd.DataFrame({"prediction_id": np.asarray(prediction_ids), "v": np.asarray(values)})
    grouped = frame.groupby("prediction_id", sort=False)["v"]
    return grouped.mean() if how == "mean" else grouped.max()


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).ravel()
    if np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores).ravel()))


@dataclass(frozen=True)
class ThresholdResult:
    threshold: float
    pf1: float


def best_threshold(
    labels: ArrayLike, scores: ArrayLike, candidates: ArrayLike | None = None
) -> ThresholdResult:
    """The threshold whose binarised predictions maximise pF1 (ties: the lowest).

    Without candidates, every distinct score is tried: binarising at a score s
    predicts 1 for all scores >= s, so these are all the distinct outcomes.
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    cand = np.unique(s) if candidates is None else np.unique(np.asarray(candidates, dtype=float))
    if cand.size == 0 or y.sum() == 0:
        return ThresholdResult(threshold=0.5, pf1=0.0)
    # Vectorised over candidates: for binary predictions pF1 = 2TP / (2TP + FP + FN).
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    pos_total = y.sum()
    # number of items with score >= c, and positives among them
    idx = np.searchsorted(s_sorted, cand, side="left")
    pos_above = pos_total - np.concatenate([[0.0], np.cumsum(y_sorted)])[idx]
    n_above = s.size - idx
    tp = pos_above
    fp = n_above - pos_above
    fn = pos_total - pos_above
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return ThresholdResult(threshold=float(cand[best]), pf1=float(f1[best]))
