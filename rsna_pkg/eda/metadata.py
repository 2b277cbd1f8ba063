"""Metadata statistics from train.csv / test.csv: pure functions on DataFrames.

Everything returns plain dicts or small DataFrames so the same numbers feed the
figures, the report tables and summary.json. Rates are per image unless a name
says otherwise; a breast is one ``prediction_id`` (patient x laterality) and is
positive when any of its images is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsna_pkg.data.schema import IMAGE_DIRS, image_path, prediction_ids

# Age bands (years, left-closed): screening starts around 40, so finer there.
AGE_EDGES: tuple[int, ...] = (0, 40, 50, 60, 70, 80, 200)
AGE_LABELS: tuple[str, ...] = ("<40", "40-49", "50-59", "60-69", "70-79", "80+")
MISSING = "missing"
# Columns whose cancer rate the report breaks down (age via its band).
RATE_COLUMNS: tuple[str, ...] = (
    "age_band", "site_id", "machine_id", "view", "laterality", "density", "BIRADS", "implant",
)  # fmt: skip
# How many ids a consistency check lists before it only counts.
MAX_LISTED = 200


def with_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with ``prediction_id`` (breast key) and ``age_band`` columns."""
    out = df.copy()
    out["prediction_id"] = prediction_ids(out)
    band = pd.cut(out["age"], bins=list(AGE_EDGES), right=False, labels=list(AGE_LABELS))
    out["age_band"] = band.astype(object).where(band.notna(), MISSING)
    return out


def dataset_counts(df: pd.DataFrame) -> dict[str, int]:
    """Images, patients and breasts in one table."""
    breasts = df[["patient_id", "laterality"]].drop_duplicates()
    return {
        "images": int(len(df)),
        "patients": int(df["patient_id"].nunique()),
        "breasts": int(len(breasts)),
    }


def _balance(labels: pd.Series) -> dict[str, float | int]:
    pos = int(labels.sum())
    n = int(len(labels))
    return {"n": n, "positive": pos, "negative": n - pos, "rate": pos / n if n else 0.0}


def class_balance(df: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Positives per image, per breast (any image positive) and per patient."""
    cancer = df["cancer"].fillna(0).astype(int)
    breast = cancer.groupby([df["patient_id"], df["laterality"]]).max()
    patient = cancer.groupby(df["patient_id"]).max()
    return {"image": _balance(cancer), "breast": _balance(breast), "patient": _balance(patient)}


def _group_key(series: pd.Series) -> pd.Series:
    """Group values as strings, with NaN as ``missing`` (which pandas would drop)."""

    def fmt(v: object) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return series.map(fmt, na_action="ignore").fillna(MISSING)


def rate_by(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Cancer count and rate per value of ``column`` (missing kept as its own row).

    Columns: value, images, cancer, rate, breasts, cancer_breasts, breast_rate.
    """
    key = _group_key(df[column])
    cancer = df["cancer"].fillna(0).astype(int)
    img = cancer.groupby(key).agg(images="size", cancer="sum")
    breast_pos = cancer.groupby([key, df["prediction_id"]]).max()
    br = breast_pos.groupby(level=0).agg(breasts="size", cancer_breasts="sum")
    out = img.join(br).reset_index(names="value")
    out["rate"] = out["cancer"] / out["images"]
    out["breast_rate"] = out["cancer_breasts"] / out["breasts"]
    order = list(AGE_LABELS) + [MISSING] if column == "age_band" else None
    if order is not None:
        out["_o"] = out["value"].map({v: i for i, v in enumerate(order)})
        out = out.sort_values("_o").drop(columns="_o")
    else:
        out = out.sort_values("value", key=_natural_key)
    return out.reset_index(drop=True)[
        ["value", "images", "cancer", "rate", "breasts", "cancer_breasts", "breast_rate"]
    ]


def _natural_key(values: pd.Series) -> pd.Series:
    """Sort numbers numerically, then text, with ``missing`` last."""
    num = pd.to_numeric(values, errors="coerce")
    return pd.Series(
        [
            (2, 0.0, v) if v == MISSING else (0, float(n), v) if not np.isnan(n) else (1, 0.0, v)
            for v, n in zip(values, num, strict=True)
        ],
        index=values.index,
    )


def missing_values(df: pd.DataFrame) -> dict[str, int]:
    """Number of empty cells per column, every column listed (zeros included)."""
    return {str(c): int(n) for c, n in df.isna().sum().items()}


def images_per_patient(df: pd.DataFrame) -> dict[str, object]:
    """Distribution of images per patient: {count: patients} and summary numbers."""
    per = df.groupby("patient_id").size()
    hist = per.value_counts().sort_index()
    return {
        "histogram": {str(int(k)): int(v) for k, v in hist.items()},
        "min": int(per.min()),
        "median": float(per.median()),
        "mean": float(per.mean()),
        "max": int(per.max()),
    }


def _listed(ids: pd.Series) -> dict[str, object]:
    values = [int(v) if isinstance(v, (int, np.integer)) else str(v) for v in ids]
    return {"count": len(values), "ids": values[:MAX_LISTED], "truncated": len(values) > MAX_LISTED}


def consistency_checks(df: pd.DataFrame, data_dir: Path, split: str) -> dict[str, dict]:
    """Rows that break the data's own rules, listed by image id (never dropped).

    - ``cancer_without_biopsy``: cancer = 1 but biopsy = 0 (train only).
    - ``invasive_without_cancer``: invasive = 1 but cancer = 0 (train only).
    - ``duplicate_image_id``: an image id that appears on more than one row.
    - ``missing_on_disk``: a row whose ``<split>_images/<pid>/<iid>.dcm`` does not exist.
    - ``not_in_csv``: a .dcm under ``<split>_images`` that no row references.
    """
    checks: dict[str, dict] = {}
    if "biopsy" in df.columns:
        bad = df[(df["cancer"] == 1) & (df["biopsy"] == 0)]
        checks["cancer_without_biopsy"] = _listed(bad["image_id"])
    if "invasive" in df.columns:
        bad = df[(df["invasive"] == 1) & (df["cancer"] != 1)]
        checks["invasive_without_cancer"] = _listed(bad["image_id"])
    dup = df["image_id"][df["image_id"].duplicated(keep=False)].drop_duplicates()
    checks["duplicate_image_id"] = _listed(dup)
    exists = [
        image_path(data_dir, split, p, i).is_file()
        for p, i in zip(df["patient_id"], df["image_id"], strict=True)
    ]
    checks["missing_on_disk"] = _listed(df["image_id"][~np.asarray(exists, dtype=bool)])
    on_disk = {p.stem for p in (data_dir / IMAGE_DIRS[split]).glob("*/*.dcm")}
    referenced = {str(i) for i in df["image_id"]}
    checks["not_in_csv"] = _listed(pd.Series(sorted(on_disk - referenced)))
    return checks


def age_histogram(df: pd.DataFrame, width: int = 5) -> dict[str, object]:
    """Images per ``width``-year age bin, split into cancer and healthy images."""
    ages = df["age"].dropna()
    if ages.empty:
        return {"edges": [], "cancer": [], "healthy": []}
    lo = int(np.floor(ages.min() / width) * width)
    hi = int(np.floor(ages.max() / width) * width) + width
    edges = np.arange(lo, hi + 1, width)
    pos = df["cancer"] == 1
    cancer, _ = np.histogram(df.loc[pos, "age"].dropna(), bins=edges)
    healthy, _ = np.histogram(df.loc[~pos, "age"].dropna(), bins=edges)
    return {
        "edges": [int(e) for e in edges],
        "cancer": [int(c) for c in cancer],
        "healthy": [int(h) for h in healthy],
    }


def table_summary(raw: pd.DataFrame, data_dir: Path, split: str) -> dict[str, object]:
    """All metadata numbers of one split, from the table as read from its CSV."""
    df = with_keys(raw)
    summary: dict[str, object] = {
        "counts": dataset_counts(df),
        "missing": missing_values(raw),
        "images_per_patient": images_per_patient(df),
        "checks": consistency_checks(df, data_dir, split),
        "views": {str(k): int(v) for k, v in df["view"].value_counts().items()},
    }
    if "cancer" in df.columns:
        summary["class_balance"] = class_balance(df)
        summary["rates"] = {c: rate_by(df, c).to_dict(orient="records") for c in RATE_COLUMNS}
        summary["age_histogram"] = age_histogram(df)
    return summary
