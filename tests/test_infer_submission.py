"""Submission assembly: aggregation, threshold, order, fallbacks, validation (no models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rsna_pkg.errors import InputError
from rsna_pkg.infer import submission as sub


@pytest.mark.parametrize(
    ("how", "expected"),
    [("mean", {"1_L": 0.3, "1_R": 0.8, "2_L": 0.5}), ("max", {"1_L": 0.5, "1_R": 0.8, "2_L": 0.5})],
)
def test_aggregate_images_skips_failed_images(how: str, expected: dict[str, float]) -> None:
    ids = ["1_L", "1_L", "1_R", "1_R", "2_L", "3_R"]
    probs = [0.1, 0.5, 0.8, math.nan, 0.5, math.nan]  # NaN = image that failed
    got = sub.aggregate_images(ids, probs, how).to_dict()
    assert got.keys() == expected.keys()  # 3_R has no usable image: absent
    for k, v in expected.items():
        assert got[k] == pytest.approx(v)


@pytest.mark.parametrize(
    ("spec", "stored", "expected"),
    [("none", [0.3], None), ("stored", [0.3], 0.3), ("stored", [0.2, 0.4], 0.3), (0.7, [0.1], 0.7)],
)
def test_resolve_threshold(spec: sub.ThresholdSpec, stored: list[float], expected: float | None):
    got = sub.resolve_threshold(spec, stored)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("text", "expected"), [("stored", "stored"), ("none", "none"), ("0.25", 0.25), ("1", 1.0)]
)
def test_parse_threshold(text: str, expected: sub.ThresholdSpec) -> None:
    assert sub.parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["abc", "-0.1", "1.5", ""])
def test_parse_threshold_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--threshold"):
        sub.parse_threshold(text)


def test_binarise_uses_greater_or_equal_and_clips() -> None:
    v = [0.0, 0.29, 0.3, 0.31, 1.0]
    assert sub.binarise(v, 0.3).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert sub.binarise([-0.5, 0.4, 1.5], None).tolist() == [0.0, 0.4, 1.0]


def test_submission_order_is_exactly_the_sample(tmp_path) -> None:
    """Kaggle scores sample_submission's ids: test.csv breasts outside it are not written."""
    sample = tmp_path / "sample_submission.csv"
    pd.DataFrame({"prediction_id": ["9_R", "1_L", "5_L"], "cancer": 0.02}).to_csv(
        sample, index=False
    )
    test_ids = ["1_L", "1_L", "1_R", "9_R", "7_L"]
    order = sub.submission_order(test_ids, sample)
    assert order == ["9_R", "1_L", "5_L"]
    assert sub.unscored(test_ids, order) == ["1_R", "7_L"]
    assert sub.submission_order(["2_R", "1_L", "2_R"], tmp_path / "absent.csv") == ["2_R", "1_L"]
    assert sub.unscored(["2_R", "1_L"], ["2_R", "1_L"]) == []


def test_submission_order_bad_sample(tmp_path) -> None:
    sample = tmp_path / "sample_submission.csv"
    pd.DataFrame({"id": ["1_L"]}).to_csv(sample, index=False)
    with pytest.raises(InputError, match="prediction_id"):
        sub.submission_order(["1_L"], sample)


def test_assemble_fills_fallback_then_default_and_binarises() -> None:
    breast = pd.Series({"1_L": 0.6, "1_R": 0.2})
    frame = sub.assemble(["2_L", "1_R", "1_L", "3_R"], breast, {"2_L": 0.9}, 0.02, None)
    assert frame.columns.tolist() == ["prediction_id", "cancer"]
    assert frame["prediction_id"].tolist() == ["2_L", "1_R", "1_L", "3_R"]
    assert frame["cancer"].tolist() == pytest.approx([0.9, 0.2, 0.6, 0.02])
    binary = sub.assemble(["2_L", "1_R", "1_L", "3_R"], breast, {"2_L": 0.9}, 0.02, 0.5)
    assert binary["cancer"].tolist() == [1.0, 0.0, 1.0, 0.0]
    sub.validate_submission(binary, ["2_L", "1_R", "1_L", "3_R"])


@pytest.mark.parametrize(
    ("ids", "values", "match"),
    [
        (["a", "b"], [0.1, math.nan], "finite"),
        (["a", "b"], [0.1, 1.2], "finite"),
        (["b", "a"], [0.1, 0.2], "order"),
        (["a"], [0.1], "order"),
    ],
)
def test_validate_submission_rejects(ids: list[str], values: list[float], match: str) -> None:
    frame = pd.DataFrame({"prediction_id": ids, "cancer": values})
    with pytest.raises(ValueError, match=match):
        sub.validate_submission(frame, ["a", "b"])


def test_write_submission_roundtrip(tmp_path) -> None:
    frame = pd.DataFrame({"prediction_id": ["10_L", "10_R"], "cancer": np.array([0.125, 1.0])})
    out = sub.write_submission(frame, tmp_path / "sub" / "submission.csv")
    text = out.read_text().splitlines()
    assert text == ["prediction_id,cancer", "10_L,0.125", "10_R,1"]
    assert not list(out.parent.glob("*.tmp"))
