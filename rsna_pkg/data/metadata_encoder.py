"""Encode the test-time metadata columns into a fixed-width float matrix.

Only columns present in test.csv are used (age, view, laterality, implant,
site_id, machine_id), so the model never sees a training-only label such as
BIRADS. The encoder is fitted on the training split and serialised as a plain
dict of primitives, which lets a checkpoint carry it under
``torch.load(weights_only=True)``; values unseen at fit time (a new machine, a
rare view) fall into an explicit "other" bucket instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rsna_pkg.data.schema import LATERALITIES, check_columns
from rsna_pkg.dataclass_io import PlainDict

METADATA_COLUMNS: tuple[str, ...] = (
    "age", "view", "laterality", "implant", "site_id", "machine_id",
)  # fmt: skip
# Views with their own one-hot slot; every other view (AT, LM, ...) shares "other".
MAIN_VIEWS: tuple[str, ...] = ("CC", "MLO")
OTHER = "other"


@dataclass(frozen=True)
class MetadataEncoder(PlainDict):
    """Fitted encoding parameters (all primitives, see ``to_dict``)."""

    WHAT = "metadata encoder"

    age_fill: float = 58.0
    age_mean: float = 58.0
    age_std: float = 10.0
    sites: tuple[int, ...] = ()
    machines: tuple[int, ...] = ()
    views: tuple[str, ...] = MAIN_VIEWS
    feature_names: tuple[str, ...] = field(default=())

    @property
    def width(self) -> int:
        return len(self.feature_names)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(N, width) float32 features; NaN age is imputed and flagged."""
        check_columns(df, METADATA_COLUMNS, "metadata")
        age = pd.to_numeric(df["age"], errors="coerce").to_numpy(dtype=np.float64)
        age_missing = np.isnan(age)
        age = np.where(age_missing, self.age_fill, age)
        cols = [
            (age - self.age_mean) / self.age_std,
            age_missing.astype(np.float64),
            (df["laterality"].astype(str).to_numpy() == LATERALITIES[1]).astype(np.float64),
            _implant(df["implant"]),
        ]
        cols += _one_hot(df["view"].astype(str), self.views)
        cols += _one_hot(_as_int(df["site_id"]), self.sites)
        cols += _one_hot(_as_int(df["machine_id"]), self.machines)
        return np.stack(cols, axis=1).astype(np.float32).reshape(len(df), self.width)


def fit_metadata_encoder(df: pd.DataFrame) -> MetadataEncoder:
    """Fit imputation/scaling and the category lists on the training rows."""
    age = pd.to_numeric(df["age"], errors="coerce")
    fill = float(age.median()) if age.notna().any() else 58.0
    filled = age.fillna(fill)
    std = float(filled.std(ddof=0)) if len(filled) > 1 else 0.0
    sites = tuple(sorted(int(v) for v in _as_int(df["site_id"]).dropna().unique()))
    machines = tuple(sorted(int(v) for v in _as_int(df["machine_id"]).dropna().unique()))
    names = ["age", "age_missing", "laterality_R", "implant"]
    names += [f"view_{v}" for v in (*MAIN_VIEWS, OTHER)]
    names += [f"site_{s}" for s in sites] + [f"site_{OTHER}"]
    names += [f"machine_{m}" for m in machines] + [f"machine_{OTHER}"]
    return MetadataEncoder(
        age_fill=fill,
        age_mean=float(filled.mean()),
        age_std=std if std > 1e-6 else 1.0,
        sites=sites,
        machines=machines,
        views=MAIN_VIEWS,
        feature_names=tuple(names),
    )


def _as_int(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("Int64")


def _implant(s: pd.Series) -> np.ndarray:
    """1 for implant, 0 otherwise (missing counts as no implant, the common case)."""
    v = pd.to_numeric(s, errors="coerce").fillna(0).to_numpy(dtype=np.float64)
    return (v > 0).astype(np.float64)


def _one_hot(values: pd.Series, known: tuple[Any, ...]) -> list[np.ndarray]:
    """One column per known value plus a final 'other' column for the rest (incl. NaN)."""
    cols = [values.eq(k).fillna(False).to_numpy(dtype=np.float64) for k in known]
    seen = values.isin(list(known)).fillna(False).to_numpy(dtype=bool)
    return [*cols, (~seen).astype(np.float64)]
