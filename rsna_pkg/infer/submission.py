"""Per-image probabilities -> the per-breast ``submission.csv`` Kaggle scores.

Pure pandas/numpy, no models: aggregation per ``prediction_id``, fallbacks for breasts
without a usable image, the threshold, the row order of ``sample_submission.csv`` and a
final check, so that whatever went wrong upstream the file has every breast exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.schema import SUBMISSION_COLUMNS
from rsna_pkg.errors import InputError
from rsna_pkg.metrics import Aggregation, aggregate_per_breast
from rsna_pkg.outputs import atomic_write_text

ThresholdSpec = str | float  # "stored", "none" or a float in [0, 1]


def parse_threshold(text: str) -> ThresholdSpec:
    """``--threshold`` values: ``stored`` (the checkpoints'), ``none`` (keep probabilities) or a float."""
    if text in ("stored", "none"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise FieldError(
            "threshold", f"must be 'stored', 'none' or a number, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise FieldError("threshold", f"must lie in [0, 1], got {value}")
    return value


def resolve_threshold(spec: ThresholdSpec, stored: Sequence[float]) -> float | None:
    """The threshold to binarise with, or None to keep probabilities.

    For an ensemble, ``stored`` is the mean of the checkpoints' thresholds: each was
    chosen on its own validation predictions, and the ensemble averages probabilities.
    """
    if spec == "none":
        return None
    if spec == "stored":
        if not stored:
            raise FieldError("threshold", "needs at least one checkpoint", value="stored")
        return float(np.mean(np.asarray(stored, dtype=np.float64)))
    return float(spec)


def binarise(values: ArrayLike, threshold: float | None) -> np.ndarray:
    """1.0 where value >= threshold, else 0.0 (the rule ``metrics.best_threshold`` scores);
    probabilities clipped to [0, 1] unchanged when threshold is None."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if threshold is None:
        return v
    return (v >= threshold).astype(np.float64)


def aggregate_images(
    prediction_ids: ArrayLike, probabilities: ArrayLike, how: Aggregation = "mean"
) -> pd.Series:
    """Per-breast value from the images that produced a probability (NaN = failed image).

    Breasts whose images all failed are absent from the result; see ``assemble``.
    """
    ids = np.asarray(prediction_ids)
    p = np.asarray(probabilities, dtype=np.float64)
    ok = np.isfinite(p)
    return aggregate_per_breast(ids[ok], p[ok], how=how)


# Ids a CSV reader (pandas, and so most scorers) reads back as missing: such a row names
# no breast, and writing it would give a file that does not read back as written.
MISSING_IDS = frozenset({"", "NA", "N/A", "#N/A", "NAN", "-NAN", "NULL", "NONE", "<NA>"})


def blank_id_lines(ids: Sequence[str]) -> list[int]:
    """CSV line numbers (header = line 1) of the ids that are blank or an NA marker."""
    return [k + 2 for k, i in enumerate(ids) if i.strip().upper() in MISSING_IDS]


def read_sample_ids(sample_path: str | Path, warn: Callable[[str], None]) -> list[str]:
    """sample_submission.csv's prediction_ids, in order, once each. Rows with a blank or
    NA id (an Excel blank line ``,``) are skipped with one line: they name no breast."""
    try:
        sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{sample_path}: not a readable CSV ({exc})") from exc
    if "prediction_id" not in sample.columns:
        raise InputError(f"{sample_path}: missing required column prediction_id")
    ids = sample["prediction_id"].tolist()
    blank = blank_id_lines(ids)
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (", ..." if len(blank) > 10 else "")
        warn(f"{sample_path}: {len(blank)} row(s) with a blank or NA prediction_id skipped "
             f"(line {shown})")  # fmt: skip
    kept = [i.strip() for i in ids if i.strip().upper() not in MISSING_IDS]
    return list(dict.fromkeys(kept))


def submission_order(
    test_ids: Sequence[str],
    sample_path: str | Path | None,
    warn: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Row order: exactly sample_submission.csv's ids when it exists, else test.csv's breasts.

    Kaggle scores the rows of the hidden sample submission, and an id it does not hold is a
    scoring risk, so a test.csv breast outside the sample is left out (``unscored`` names
    it). Without a sample (a validation split) every test.csv breast is written.
    """
    unique_test = list(dict.fromkeys(str(i) for i in test_ids))
    if sample_path is None or not Path(sample_path).is_file():
        return unique_test
    return read_sample_ids(sample_path, warn)


def unscored(test_ids: Sequence[str], order: Sequence[str]) -> list[str]:
    """test.csv breasts that ``order`` leaves out (in test.csv order): reported, not written."""
    written = set(order)
    return [i for i in dict.fromkeys(str(t) for t in test_ids) if i not in written]


def assemble(
    order: Sequence[str],
    breast_values: pd.Series,
    fallbacks: Mapping[str, float],
    default: float,
    threshold: float | None,
) -> pd.DataFrame:
    """One row per id in ``order``: the aggregated value, else its fallback, else ``default``;
    then binarised with ``threshold`` (None keeps probabilities)."""
    values = []
    for pid in order:
        v = breast_values.get(pid, math.nan)
        if not np.isfinite(v):
            v = fallbacks.get(pid, math.nan)
        if not np.isfinite(v):
            v = default
        values.append(float(v))
    frame = pd.DataFrame({SUBMISSION_COLUMNS[0]: list(order), SUBMISSION_COLUMNS[1]: values})
    frame[SUBMISSION_COLUMNS[1]] = binarise(frame[SUBMISSION_COLUMNS[1]], threshold)
    return frame


def validate_submission(frame: pd.DataFrame, expected_ids: Sequence[str]) -> None:
    """Raise ValueError unless the frame is what Kaggle accepts: the two columns, each
    expected id exactly once and in order, values finite in [0, 1]."""
    if tuple(frame.columns) != SUBMISSION_COLUMNS:
        raise ValueError(f"submission columns {list(frame.columns)} != {list(SUBMISSION_COLUMNS)}")
    ids = frame[SUBMISSION_COLUMNS[0]].astype(str).tolist()
    if ids != [str(i) for i in expected_ids]:
        raise ValueError("submission prediction_ids differ from the expected ones or their order")
    values = frame[SUBMISSION_COLUMNS[1]].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.min(initial=0.0) < 0 or values.max(initial=0) > 1:
        raise ValueError("submission values must be finite and in [0, 1]")


def write_submission(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``prediction_id,cancer`` (creating the folder) atomically: a failed write
    (disk full) raises OutputError and leaves any previous file untouched."""
    path = Path(path)
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
    return path
