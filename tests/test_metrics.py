"""pF1, per-breast aggregation, AUC and threshold search on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsna_pkg.metrics import aggregate_per_breast, best_threshold, pfbeta, pfbeta_at, roc_auc


@pytest.mark.parametrize(
    ("labels", "preds", "beta", "expected"),
    [
        ([1, 0, 1, 0], [0, 0, 0, 0], 1.0, 0.0),  # all-zero predictions
        ([0, 0, 0], [0.5, 0.2, 0.9], 1.0, 0.0),  # no positives
        ([1, 0, 1], [1, 0, 1], 1.0, 1.0),  # perfect
        ([1, 0], [1.7, -0.4], 1.0, 1.0),  # clipped to [0, 1] -> perfect
        ([1, 0, 1, 0], [0.8, 0.4, 0.6, 0.2], 1.0, 0.7),  # pTP 1.4, pFP 0.6: P = R = 0.7
        ([1, 1, 0, 0], [0.5, 0, 0, 0], 1.0, 0.4),  # P 1, R 0.25: 2*.25/1.25
        ([1, 1, 0, 0], [0.5, 0, 0, 0], 2.0, 1.25 / 4.25),  # (1+4)*P*R/(4P+R)
        ([1, 1, 0], [1, 0, 1], 1.0, 0.5),  # P 0.5, R 0.5
    ],
)
def test_pfbeta_hand_computed(labels, preds, beta, expected) -> None:
    assert pfbeta(labels, preds, beta) == pytest.approx(expected)


def test_pfbeta_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ"):
        pfbeta([1, 0], [0.5])


def test_pfbeta_equals_f1_for_binary_predictions() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = rng.integers(0, 2, 200)
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    assert pfbeta(y, p) == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_aggregate_per_breast_mean_and_max_keep_first_appearance_order() -> None:
    ids = ["7_R", "7_L", "7_R", "8_L"]
    values = [0.2, 0.9, 0.6, 0.1]
    mean = aggregate_per_breast(ids, values, "mean")
    assert list(mean.index) == ["7_R", "7_L", "8_L"]
    assert mean.tolist() == pytest.approx([0.4, 0.9, 0.1])
    assert aggregate_per_breast(ids, values, "max").tolist() == pytest.approx([0.6, 0.9, 0.1])
    assert aggregate_per_breast(ids, values).equals(mean)  # mean by default
    with pytest.raises(ValueError, match="aggregation must be 'mean' or 'max', got 'median'"):
        aggregate_per_breast(ids, values, "median")  # type: ignore[arg-type]


def test_roc_auc_known_value_and_single_class() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_best_threshold_hand_computed() -> None:
    labels = [0, 0, 1, 1, 0]
    scores = [0.1, 0.2, 0.7, 0.9, 0.8]
    # >= 0.7: TP 2, FP 1 -> 0.8; >= 0.8: 0.5; >= 0.9: 2/3; >= 0.2: 4/6; >= 0.1: 4/7
    res = best_threshold(labels, scores)
    assert res.threshold == pytest.approx(0.7)
    assert res.pf1 == pytest.approx(0.8)
    binarised = (np.asarray(scores) >= res.threshold).astype(float)
    assert pfbeta(labels, binarised) == pytest.approx(res.pf1)


def test_best_threshold_ties_pick_lowest_and_candidates_are_respected() -> None:
    # only the top score isolates the single positive
    labels = [1, 0, 0]
    scores = [0.9, 0.6, 0.3]
    assert best_threshold(labels, scores).threshold == pytest.approx(0.9)
    tied = best_threshold([1, 0], [0.8, 0.2], candidates=[0.5, 0.7])
    assert tied.threshold == pytest.approx(0.5) and tied.pf1 == pytest.approx(1.0)
    forced = best_threshold(labels, scores, candidates=[0.5])
    assert forced.threshold == pytest.approx(0.5) and forced.pf1 == pytest.approx(2 / 3)


def test_best_threshold_without_positives_is_defined() -> None:
    res = best_threshold([0, 0, 0], [0.1, 0.5, 0.9])
    assert res.pf1 == 0.0 and res.threshold == pytest.approx(0.5)


def test_best_threshold_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 2)  # rounded: ties between scores
    res = best_threshold(y, s)
    brute = max((pfbeta(y, (s >= t).astype(float)), -t) for t in np.unique(s))
    assert res.pf1 == pytest.approx(brute[0])
    assert res.threshold == pytest.approx(-brute[1])


def test_best_threshold_at_the_lowest_score_counts_every_positive() -> None:
    """Every image a positive: the lowest score keeps them all (pF1 1), as does a candidate
    below every score."""
    res = best_threshold([1, 1], [0.2, 0.4])
    assert res.threshold == pytest.approx(0.2) and res.pf1 == pytest.approx(1.0)
    below = best_threshold([1, 1, 0], [0.2, 0.4, 0.1], candidates=[0.05, 0.15])
    assert below.threshold == pytest.approx(0.15) and below.pf1 == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.6, 0.8), (0.7, 1.0), (0.75, 2 / 3), (0.0, 2 / 3), (0.95, 0.0)],
)
def test_pfbeta_at_binarises_scores_at_or_above_the_threshold(threshold, expected) -> None:
    labels = [0, 1, 0, 1]
    scores = [0.2, 0.7, 0.6, 0.9]  # 0.7 itself counts as positive
    assert pfbeta_at(labels, scores, threshold) == pytest.approx(expected)
