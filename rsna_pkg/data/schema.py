"""The competition's CSV schema (see shared/reference/competition.md) and loaders
that check it, so every stage fails early with the column at fault named."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_pkg.errors import InputError, one_line

log = logging.getLogger(__name__)

COMPETITION_SLUG = "rsna-breast-cancer-detection"

TRAIN_COLUMNS: tuple[str, ...] = (
    "site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy",
    "invasive", "BIRADS", "implant", "density", "machine_id", "difficult_negative_case",
)  # fmt: skip
TEST_COLUMNS: tuple[str, ...] = (
    "site_id", "patient_id", "image_id", "laterality", "view", "age", "implant", "machine_id",
    "prediction_id",
)  # fmt: skip
SUBMISSION_COLUMNS: tuple[str, ...] = ("prediction_id", "cancer")
# Columns present in both tables: the only ones a model may use at test time.
TEST_TIME_COLUMNS: tuple[str, ...] = tuple(c for c in TEST_COLUMNS if c != "prediction_id")

LATERALITIES: tuple[str, ...] = ("L", "R")
VIEWS: tuple[str, ...] = ("CC", "MLO", "AT", "LM", "ML", "LMO")
DENSITIES: tuple[str, ...] = ("A", "B", "C", "D")
BIRADS_VALUES: tuple[int, ...] = (0, 1, 2)
SITE_MACHINES: dict[int, tuple[int, ...]] = {
    1: (49, 93, 170, 190, 197, 210, 216),
    2: (21, 29, 48),
}
MACHINE_IDS: tuple[int, ...] = tuple(m for ms in SITE_MACHINES.values() for m in ms)

IMAGE_DIRS = {"train": "train_images", "test": "test_images"}


def prediction_id(patient_id: int | str, laterality: str) -> str:
    """The competition's per-breast key, ``f"{patient_id}_{laterality}"``."""
    return f"{patient_id}_{laterality}"


def prediction_ids(df: pd.DataFrame) -> list[str]:
    """``prediction_id`` of every row of a table with patient_id and laterality."""
    return [
        prediction_id(p, lat) for p, lat in zip(df["patient_id"], df["laterality"], strict=True)
    ]


def image_path(data_dir: str | Path, split: str, patient_id: int, image_id: int) -> Path:
    """Where Kaggle keeps one image: ``<split>_images/<patient_id>/<image_id>.dcm``.
    Ids must be non-negative ints (as :func:`read_table` returns them): nothing else can
    become a path component, so no CSV value reads or writes outside ``data_dir``."""
    for name, value in (("patient_id", patient_id), ("image_id", image_id)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InputError(f"{name} {value!r} is not an integer id")
    return Path(data_dir) / IMAGE_DIRS[split] / str(int(patient_id)) / f"{int(image_id)}.dcm"


def check_columns(df: pd.DataFrame, required: tuple[str, ...], source: str | Path) -> None:
    """Raise InputError naming the first missing column and the file."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing required column(s) {', '.join(missing)}")


Warn = Callable[[str], None]
# Rows of one file reported one line each; the rest are counted in one more line.
MAX_ROW_WARNINGS = 20
_ID_TEXT = re.compile(r"\s*\+?(\d{1,18})(?:\.0*)?\s*")


def warn_stderr(message: str) -> None:
    """The default ``Warn``: a logging warning (stderr unless the caller set logging up)."""
    log.warning(f"warning: {message}")


def parse_id(value: object) -> int | None:
    """A patient or image id as a non-negative int, or None when it is not one.

    ``10006``, ``10006.0`` and ``"10006.0"`` (a column pandas read as float, or text) are
    10006; NaN, ``"../x"``, ``"12/3"``, ``-5`` and ``1.5`` are None. An id is only ever
    turned into a path component from this int, so no CSV text can reach the file system.
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value) if value >= 0 else None
    if isinstance(value, float | np.floating):
        ok = math.isfinite(value) and float(value).is_integer() and 0 <= value < 2**63
        return int(value) if ok else None
    match = _ID_TEXT.fullmatch(str(value))
    return int(match.group(1)) if match else None


def clean_rows(df: pd.DataFrame, source: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Drop the rows no stage can use; return the kept rows and one message per dropped row.

    A row is dropped when its patient_id or image_id is not an id (:func:`parse_id`), its
    laterality is not L or R, or its image_id repeats an earlier row's (the first is kept).
    Ids come back as int64 columns. Line numbers count the header as line 1.
    """
    problems: list[str] = []
    keep = np.ones(len(df), dtype=bool)
    ids: dict[str, list[int]] = {}
    for col in ("patient_id", "image_id"):
        values = df[col].tolist()
        parsed = [parse_id(v) for v in values]
        for i, (raw, got) in enumerate(zip(values, parsed, strict=True)):
            if got is None and keep[i]:
                keep[i] = False
                problems.append(f"{source} line {i + 2}: {col} {raw!r} is not an integer id; "
                                "row skipped")  # fmt: skip
        ids[col] = [-1 if v is None else v for v in parsed]
    lateralities = df["laterality"].astype(str).str.strip()
    for i, lat in enumerate(lateralities):
        if keep[i] and lat not in LATERALITIES:
            keep[i] = False
            problems.append(f"{source} line {i + 2}: laterality {lat!r} is not L or R; "
                            "row skipped")  # fmt: skip
    first_line: dict[int, int] = {}
    for i, image in enumerate(ids["image_id"]):
        if not keep[i]:
            continue
        if image in first_line:
            keep[i] = False
            problems.append(f"{source} line {i + 2}: image_id {image} repeats line "
                            f"{first_line[image]}; row skipped")  # fmt: skip
        else:
            first_line[image] = i + 2
    out = df.copy()
    out["patient_id"] = np.asarray(ids["patient_id"], dtype=np.int64)
    out["image_id"] = np.asarray(ids["image_id"], dtype=np.int64)
    out["laterality"] = lateralities
    return out[keep].reset_index(drop=True), problems


def report_problems(problems: list[str], source: str | Path, warn: Warn) -> None:
    """One line per problem up to MAX_ROW_WARNINGS, then one line counting the rest."""
    for message in problems[:MAX_ROW_WARNINGS]:
        warn(message)
    if len(problems) > MAX_ROW_WARNINGS:
        warn(f"{source}: {len(problems) - MAX_ROW_WARNINGS} more row(s) skipped")


def read_table(path: str | Path, split: str, warn: Warn | None = None,
               optional: tuple[str, ...] = ()) -> pd.DataFrame:  # fmt: skip
    """Read train.csv or test.csv, check its columns and key types.

    Only the columns present at test time are required for ``split="test"``; a test.csv
    without ``prediction_id`` gets it derived, as Kaggle's does (also for a row whose
    prediction_id is empty). Columns named in ``optional`` may be missing: they are added
    empty (NaN) with a warning. Extra columns are kept and ignored. Rows that cannot be
    used are dropped with one warning each (:func:`clean_rows`); a file that cannot be
    used at all (unreadable, a required column missing, no usable row) is an InputError.
    """
    path = Path(path)
    warn = warn or warn_stderr
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({one_line(exc)})") from exc
    required = TRAIN_COLUMNS if split == "train" else TEST_TIME_COLUMNS
    check_columns(df, tuple(c for c in required if c not in optional), path)
    for col in optional:
        if col not in df.columns:
            warn(f"{path}: column {col} missing; read as empty (unknown) values")
            df[col] = np.nan
    if df.empty:
        raise InputError(f"{path}: no rows")
    df, problems = clean_rows(df, path)
    report_problems(problems, path, warn)
    if df.empty:
        raise InputError(f"{path}: no usable rows ({len(problems)} skipped)")
    if split == "test":
        derived = prediction_ids(df)
        if "prediction_id" not in df.columns:
            df["prediction_id"] = derived
        else:
            given = df["prediction_id"]
            empty = given.isna() | (given.astype(str).str.strip() == "")
            df["prediction_id"] = np.where(empty, derived, given.astype(str).str.strip())
    return df
