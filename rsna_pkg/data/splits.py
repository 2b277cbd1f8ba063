"""Patient-grouped, cancer-stratified train/validation splits.

All images of a patient land on one side (otherwise the other breast or view
of the same woman leaks into validation), and the share of cancer patients is
kept roughly equal per fold. A hold-out split with ``val_frac = 1/K`` is fold 0
of a K-fold split; other fractions use the nearest K. Same table + seed ->
same split (scikit-learn's StratifiedGroupKFold with a fixed random_state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.schema import check_columns
from rsna_pkg.errors import InputError
from rsna_pkg.outputs import atomic_write_text

SPLIT_COLUMNS: tuple[str, ...] = ("patient_id", "fold")


def patient_folds(df: pd.DataFrame, folds: int, seed: int) -> pd.DataFrame:
    """One row per patient: ``patient_id``, ``fold`` in [0, folds), ``cancer``
    (1 if any image of the patient is positive)."""
    if folds < 2:
        raise FieldError("folds", "need at least 2 folds", value=folds)
    check_columns(df, ("patient_id", "cancer"), "split")
    patients = df.groupby("patient_id", sort=True)["cancer"].max().astype(int).reset_index()
    if len(patients) < folds:
        raise InputError(f"split: {len(patients)} patient(s) cannot fill {folds} folds")
    from sklearn.model_selection import StratifiedGroupKFold

    y = patients["cancer"].to_numpy()
    n_pos = int(y.sum())
    # Stratification needs each class at least `folds` times; otherwise group-only.
    strat = y if min(n_pos, len(y) - n_pos) >= folds else np.zeros_like(y)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.full(len(patients), -1, dtype=int)
    groups = patients["patient_id"].to_numpy()
    for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(y)), strat, groups)):
        fold[val_idx] = k
    patients["fold"] = fold
    return patients[["patient_id", "fold", "cancer"]]


def holdout_folds(df: pd.DataFrame, val_frac: float, seed: int) -> pd.DataFrame:
    """Patient folds for a single hold-out: validation is fold 0 of round(1/val_frac)."""
    if not 0 < val_frac < 1:
        raise FieldError("val_frac", "must be between 0 and 1", value=val_frac)
    return patient_folds(df, max(2, round(1 / val_frac)), seed)


def assign_split(df: pd.DataFrame, folds: pd.DataFrame, val_fold: int) -> pd.Series:
    """Per-image "train"/"val" labels for ``df`` given patient folds."""
    fold_of = folds.set_index("patient_id")["fold"]
    f = df["patient_id"].map(fold_of)
    if f.isna().any():
        raise InputError(f"split: {int(f.isna().sum())} image(s) of patients not in the split")
    return pd.Series(np.where(f.to_numpy() == val_fold, "val", "train"), index=df.index)


def check_split(df: pd.DataFrame, split: pd.Series) -> None:
    """Refuse splits training cannot use: empty sides or a validation side
    without any positive (its AUC and pF1 would be undefined)."""
    train, val = df[split == "train"], df[split == "val"]
    if train.empty or val.empty:
        raise InputError(f"split: {len(train)} train / {len(val)} val images; both sides need rows")
    if int(val["cancer"].sum()) == 0:
        raise InputError("split: the validation side has no positive image; use more patients")
    if int(train["cancer"].sum()) == 0:
        raise InputError("split: the training side has no positive image; use more patients")


def save_split(path: str | Path, folds: pd.DataFrame, val_fold: int) -> None:
    out = folds.assign(split=np.where(folds["fold"] == val_fold, "val", "train"))
    atomic_write_text(path, out.to_csv(index=False))


def load_split(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split file not found")
    folds = pd.read_csv(path)
    check_columns(folds, SPLIT_COLUMNS, path)
    return folds
