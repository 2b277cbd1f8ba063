"""Patient-grouped, cancer-stratified splits; metadata encoder; sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from train_data import make_table

from rsna_pkg.data.dataset import EpochSampler
from rsna_pkg.data.metadata_encoder import MetadataEncoder, fit_metadata_encoder
from rsna_pkg.data.splits import (
    assign_split,
    check_split,
    holdout_folds,
    load_split,
    patient_folds,
    save_split,
)
from rsna_pkg.errors import InputError


def test_holdout_is_patient_grouped_stratified_and_about_a_quarter() -> None:
    df = make_table(80, pos_patients=20)
    folds = holdout_folds(df, 0.25, seed=3)
    split = assign_split(df, folds, 0)
    train_p = set(df.loc[split == "train", "patient_id"])
    val_p = set(df.loc[split == "val", "patient_id"])
    assert not train_p & val_p
    assert train_p | val_p == set(df["patient_id"])
    assert len(val_p) == 20  # 80 patients / 4 folds
    val_pos = df[split == "val"].groupby("patient_id")["cancer"].max().sum()
    assert val_pos == 5  # 20 positive patients spread evenly over 4 folds


def test_same_seed_same_split_other_seed_differs() -> None:
    df = make_table(60, pos_patients=15)
    a = holdout_folds(df, 0.25, seed=1)
    b = holdout_folds(df, 0.25, seed=1)
    c = holdout_folds(df, 0.25, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["fold"].equals(c["fold"])


def test_k_folds_cover_every_patient_once() -> None:
    df = make_table(50, pos_patients=10)
    folds = patient_folds(df, 5, seed=0)
    assert sorted(folds["patient_id"]) == sorted(df["patient_id"].unique())
    assert set(folds["fold"]) == set(range(5))
    assert folds.groupby("fold")["cancer"].sum().tolist() == [2] * 5
    vals = [set(folds.loc[folds["fold"] == k, "patient_id"]) for k in range(5)]
    assert sum(len(v) for v in vals) == len(set().union(*vals)) == 50


def test_split_round_trips_through_csv(tmp_path) -> None:
    df = make_table(20, pos_patients=8)
    folds = holdout_folds(df, 0.25, seed=0)
    save_split(tmp_path / "split.csv", folds, 0)
    back = load_split(tmp_path / "split.csv")
    assert (back["split"] == np.where(back["fold"] == 0, "val", "train")).all()
    pd.testing.assert_series_equal(assign_split(df, back, 0), assign_split(df, folds, 0))
    with pytest.raises(InputError, match="not found"):
        load_split(tmp_path / "none.csv")


def test_bad_splits_are_refused_with_reason() -> None:
    df = make_table(8, pos_patients=1)
    with pytest.raises(InputError, match="cannot fill"):
        patient_folds(df, 10, seed=0)
    with pytest.raises(InputError, match="^val_frac 1.5: must be between 0 and 1"):
        holdout_folds(df, 1.5, seed=0)  # the library names the setting; rsna train --val-frac
    all_train = pd.Series(["train"] * len(df), index=df.index)
    with pytest.raises(InputError, match="both sides"):
        check_split(df, all_train)
    neg_val = pd.Series(np.where(df["cancer"].groupby(df["patient_id"]).transform("max") > 0,
                                 "train", "val"), index=df.index)  # fmt: skip
    with pytest.raises(InputError, match="no positive"):
        check_split(df, neg_val)


def test_metadata_encoder_imputes_flags_and_buckets_unknowns() -> None:
    train = make_table(10)
    enc = fit_metadata_encoder(train)
    test = train.head(3).copy()
    test["age"] = [np.nan, 200.0, 50.0]
    test["machine_id"] = [999, train["machine_id"].iloc[0], np.nan]
    test["view"] = ["AT", "CC", "MLO"]
    x = enc.transform(test)
    names = list(enc.feature_names)
    assert x.shape == (3, enc.width) and np.isfinite(x).all()
    assert x[:, names.index("age_missing")].tolist() == [1.0, 0.0, 0.0]
    assert x[0, names.index("age")] == pytest.approx((enc.age_fill - enc.age_mean) / enc.age_std)
    assert x[:, names.index("machine_other")].tolist() == [1.0, 0.0, 1.0]
    assert x[:, names.index("view_other")].tolist() == [1.0, 0.0, 0.0]
    # each one-hot group sums to one per row
    for prefix in ("view_", "site_", "machine_"):
        cols = [i for i, n in enumerate(names) if n.startswith(prefix)]
        assert (x[:, cols].sum(axis=1) == 1).all()
    back = MetadataEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(back.transform(test), x)
    with pytest.raises(InputError, match="unknown key"):
        MetadataEncoder.from_dict({**enc.to_dict(), "bogus": 1})
    with pytest.raises(InputError, match="machine_id"):
        enc.transform(test.drop(columns=["machine_id"]))


def test_oversampling_sampler_balances_and_shards_without_overlap() -> None:
    labels = np.array([1] * 5 + [0] * 95)
    s = EpochSampler(labels, train=True, oversample=True, pos_fraction=0.25, seed=0)
    rows = s.epoch_rows()
    frac = labels[rows].mean()
    assert 0.2 < frac < 0.3
    s.set_epoch(1)
    assert not np.array_equal(s.epoch_rows(), rows)  # reshuffled per epoch
    assert min(list(s)) >= len(labels)  # keys carry the epoch
    shards = [
        EpochSampler(labels, train=False, rank=r, world_size=3).epoch_rows() for r in range(3)
    ]
    assert sorted(np.concatenate(shards).tolist()) == list(range(100))
    t0 = EpochSampler(labels, train=True, seed=4, rank=0, world_size=2)
    t1 = EpochSampler(labels, train=True, seed=4, rank=1, world_size=2)
    assert len(t0) == len(t1) == 50 and not set(t0.epoch_rows()) & set(t1.epoch_rows())
