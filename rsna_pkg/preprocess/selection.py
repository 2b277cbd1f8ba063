"""Which images a preprocess run takes: negative subsampling and patient-grouped shards.

Both work on whole patients, so a patient's images never straddle two shards and a kept
patient keeps all of their images (both breasts, every view).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import FieldError


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise FieldError("shard", f"must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise FieldError("shard", "need 0 <= I < N", value=text)
    return index, count


def shard_of(patient_id: int | str, count: int) -> int:
    """Stable across runs and machines (crc32 of the decimal id, unlike Python's hash)."""
    return zlib.crc32(str(patient_id).encode()) % count


def take_shard(table: pd.DataFrame, index: int, count: int) -> pd.DataFrame:
    keep = table["patient_id"].map(lambda p: shard_of(p, count) == index)
    return table[keep.to_numpy(dtype=bool)]


def subsample_negatives(
    table: pd.DataFrame, ratio: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Keep every patient with a positive breast, plus negative-only patients drawn in a
    seeded random order until the kept negative breasts reach ``ratio`` x the positive
    breasts (all images of a kept patient stay). Needs the train table's ``cancer``."""
    if "cancer" not in table.columns:
        raise FieldError("neg_ratio", "needs the cancer column (train split only)")
    if ratio < 0:
        raise FieldError("neg_ratio", f"must be >= 0, got {ratio}")
    breasts = table.groupby(["patient_id", "laterality"])["cancer"].max().reset_index()
    positive_patients = set(breasts.loc[breasts["cancer"] == 1, "patient_id"])
    kept_negatives = int(
        ((breasts["cancer"] == 0) & breasts["patient_id"].isin(positive_patients)).sum()
    )
    target = ratio * int((breasts["cancer"] == 1).sum())
    per_patient = (
        breasts[~breasts["patient_id"].isin(positive_patients)].groupby("patient_id").size()
    )
    order = per_patient.index.to_numpy()[rng.permutation(len(per_patient))]
    chosen = set(positive_patients)
    for pid in order:
        if kept_negatives >= target:
            break
        chosen.add(pid)
        kept_negatives += int(per_patient[pid])
    return table[table["patient_id"].isin(chosen)]
