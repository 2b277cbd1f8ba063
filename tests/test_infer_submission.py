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
    with pytest.raises(InputError, match="^threshold: must"):  # rsna infer says --threshold
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


def test_thresholds_at_the_edges_and_without_checkpoints() -> None:
    assert sub.parse_threshold("0") == 0.0  # [0, 1] is closed at both ends
    with pytest.raises(InputError) as info:
        sub.resolve_threshold("stored", [])
    assert str(info.value) == "threshold stored: needs at least one checkpoint"
    assert sub.aggregate_images(["1_L", "1_L"], [0.2, 0.6]).tolist() == pytest.approx([0.4])


def test_blank_id_lines_are_csv_line_numbers() -> None:
    """Header = line 1: the first id is line 2; NA markers in any case and spacing count."""
    assert sub.blank_id_lines(["1_L", "", "na", " NA ", "2_R", "n/a"]) == [3, 4, 5, 7]


def write_sample(path, ids: list[str]) -> None:
    path.write_text("prediction_id,cancer\n" + "".join(f"{i},0.5\n" for i in ids))


def test_sample_ids_are_text_and_blank_rows_are_skipped_with_one_line(tmp_path) -> None:
    sample = tmp_path / "sample_submission.csv"
    write_sample(sample, ["0012_L", "", "NA", "7_R", " N/A ", "0012_L", "3_L"])
    lines: list[str] = []
    assert sub.submission_order(["x"], sample, lines.append) == ["0012_L", "7_R", "3_L"]
    assert lines == [f"{sample}: 3 row(s) with a blank or NA prediction_id skipped (line 3, 4, 6)"]
    many = tmp_path / "many.csv"
    write_sample(many, ["1_L"] + [""] * 12)
    lines.clear()
    assert sub.read_sample_ids(many, lines.append) == ["1_L"]
    assert lines == [f"{many}: 12 row(s) with a blank or NA prediction_id skipped "
                     f"(line 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, ...)"]  # fmt: skip
    eleven = tmp_path / "eleven.csv"
    write_sample(eleven, ["1_L"] + [""] * 11)
    lines.clear()
    sub.read_sample_ids(eleven, lines.append)
    assert lines[0].endswith("(line 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, ...)")  # more than 10
    ten = tmp_path / "ten.csv"
    write_sample(ten, ["1_L"] + [""] * 10)
    lines.clear()
    sub.read_sample_ids(ten, lines.append)
    assert lines[0].endswith("(line 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)")
    numeric = tmp_path / "numeric.csv"
    write_sample(numeric, ["0012", "1e5"])  # read as the text written, never as numbers
    assert sub.read_sample_ids(numeric, lines.append) == ["0012", "1e5"]


def test_unreadable_sample_is_one_input_error(tmp_path) -> None:
    sample = tmp_path / "sample_submission.csv"
    sample.write_bytes(b"")
    with pytest.raises(InputError) as info:
        sub.read_sample_ids(sample, print)
    assert str(info.value).startswith(f"{sample}: not a readable CSV (")


def test_validate_submission_messages_and_an_empty_submission() -> None:
    sub.validate_submission(pd.DataFrame({"prediction_id": [], "cancer": []}), [])
    good = ["a", "b"]
    with pytest.raises(ValueError) as info:
        sub.validate_submission(pd.DataFrame({"id": good, "cancer": [0.1, 0.2]}), good)
    assert str(info.value) == "submission columns ['id', 'cancer'] != ['prediction_id', 'cancer']"
    with pytest.raises(ValueError) as info:
        sub.validate_submission(pd.DataFrame({"prediction_id": good[::-1], "cancer": [0.1, 0.2]}),
                                good)  # fmt: skip
    assert (
        str(info.value) == "submission prediction_ids differ from the expected ones or their order"
    )
    with pytest.raises(ValueError) as info:
        sub.validate_submission(pd.DataFrame({"prediction_id": good, "cancer": [0.1, -0.2]}), good)
    assert str(info.value) == "submission values must be finite and in [0, 1]"
