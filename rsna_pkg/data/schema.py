"""The competition's CSV schema (see shared/reference/competition.md) and loaders
that check it, so every stage fails early with the column at fault named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rsna_pkg.errors import InputError

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


def image_path(data_dir: str | Path, split: str, patient_id: int, image_id: int) -> Path:
    """Where Kaggle keeps one image: ``<split>_images/<patient_id>/<image_id>.dcm``."""
    return Path(data_dir) / IMAGE_DIRS[split] / str(patient_id) / f"{image_id}.dcm"


def check_columns(df: pd.DataFrame, required: tuple[str, ...], source: str | Path) -> None:
    """Raise InputError naming the first missing column and the file."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing required column(s) {', '.join(missing)}")


def read_table(path: str | Path, split: str) -> pd.DataFrame:
    """Read train.csv or test.csv, check its columns and key types.

    Only the columns present at test time are required for ``split="test"``;
    a test.csv without ``prediction_id`` gets it derived, as Kaggle's does.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from exc
    required = TRAIN_COLUMNS if split == "train" else TEST_TIME_COLUMNS
    check_columns(df, required, path)
    if df.empty:
        raise InputError(f"{path}: no rows")
    for col in ("patient_id", "image_id"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise InputError(f"{path}: column {col} must hold integers")
    bad_lat = sorted(set(df["laterality"].astype(str)) - set(LATERALITIES))
    if bad_lat:
        raise InputError(f"{path}: column laterality has values {bad_lat}, expected L or R")
    if split == "test" and "prediction_id" not in df.columns:
        df["prediction_id"] = [
            prediction_id(p, lat) for p, lat in zip(df["patient_id"], df["laterality"], strict=True)
        ]
    return df
