"""K-fold training end to end: `rsna train --folds K` (every fold, out-of-fold predictions and
metrics, the OOF threshold in each model.pt), `rsna infer --model FOLDER` as the ensemble of the
folds, and `--resume` over folds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_infer import read_sub, run_infer
from train_data import make_dataset

from rsna_pkg.data.dataset import load_image_table, read_png
from rsna_pkg.errors import InputError
from rsna_pkg.infer.command import main as infer_main
from rsna_pkg.metrics import aggregate_per_breast, best_threshold, pfbeta, pfbeta_at, roc_auc
from rsna_pkg.models.checkpoint import checkpoint_files, load_checkpoint
from rsna_pkg.train import command, folds
from rsna_pkg.train.trainer import Trainer

K = 3


def _args(data: Path, images: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "32", "32",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1", "--seed", "3",
        *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return make_dataset(tmp_path_factory.mktemp("folds"), patients=12, size=(32, 32), seed=0)


@pytest.fixture(scope="module")
def kfold(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kfold") / "out"
    assert command.run(_args(*tiny, out, "--folds", str(K))) == 0
    return out


def test_every_fold_trains_on_one_split_and_oof_covers_each_image_once(tiny, kfold) -> None:
    for i in range(K):
        for name in ("model.pt", "last.pt", "metrics.json", "split.csv", "val_predictions.csv"):
            assert (kfold / f"fold_{i}" / name).is_file(), (i, name)
    splits = [pd.read_csv(kfold / f"fold_{i}" / "split.csv") for i in range(K)]
    for i, split in enumerate(splits):
        assert split[["patient_id", "fold"]].equals(splits[0][["patient_id", "fold"]])
        assert set(split.loc[split["split"] == "val", "fold"]) == {i}
    table = load_image_table(*tiny)
    oof = pd.read_csv(kfold / "oof.csv", dtype={"prediction_id": str})
    assert oof.columns.tolist() == list(folds.OOF_COLUMNS)
    assert not oof["image_id"].duplicated().any()
    assert sorted(oof["image_id"]) == sorted(table["image_id"])
    fold_of = splits[0].set_index("patient_id")["fold"]
    assert (oof["fold"].to_numpy() == oof["patient_id"].map(fold_of).to_numpy()).all()
    assert sorted(oof["fold"].unique()) == list(range(K))
    # each probability is the fold's best model (model.pt) scoring its held-out image
    for i in range(K):
        rows = oof[oof["fold"] == i].merge(
            table, on=["patient_id", "image_id"], suffixes=("", "_t")
        )
        loaded = load_checkpoint(kfold / f"fold_{i}" / "model.pt")
        images = torch.stack([loaded.image_tensor(read_png(p)) for p in rows["path"]])
        probs = torch.sigmoid(loaded.forward(images, loaded.encode_metadata(rows))).numpy()
        np.testing.assert_allclose(rows["probability"], probs, atol=1e-5)


def test_oof_metrics_match_a_recomputation_and_every_fold_stores_the_oof_threshold(kfold) -> None:
    m = json.loads((kfold / "metrics.json").read_text())
    oof = pd.read_csv(kfold / "oof.csv", dtype={"prediction_id": str})
    breast_p = aggregate_per_breast(oof["prediction_id"], oof["probability"], "mean")
    breast_y = oof.groupby("prediction_id")["cancer"].max().reindex(breast_p.index)
    best = best_threshold(breast_y, breast_p)
    assert m["folds"] == K and m["oof_images"] == len(oof) and m["oof_breasts"] == len(breast_p)
    assert m["val_auc"] == pytest.approx(roc_auc(breast_y, breast_p))
    assert m["val_pf1"] == pytest.approx(pfbeta(breast_y, breast_p))
    assert m["val_pf1_at_0.5"] == pytest.approx(pfbeta(breast_y, (breast_p >= 0.5).astype(float)))
    assert m["val_pf1_best"] == pytest.approx(best.pf1)
    assert m["threshold"] == pytest.approx(best.threshold)
    assert pfbeta_at(breast_y, breast_p, m["threshold"]) == pytest.approx(best.pf1)
    image_best = best_threshold(oof["cancer"], oof["probability"])
    assert m["per_image"]["auc"] == pytest.approx(roc_auc(oof["cancer"], oof["probability"]))
    assert m["per_image"]["threshold"] == pytest.approx(image_best.threshold)
    own = []
    for i in range(K):
        fold_metrics = json.loads((kfold / f"fold_{i}" / "metrics.json").read_text())
        assert m["per_fold"][i]["fold"] == i
        assert m["per_fold"][i]["val_auc"] == fold_metrics["val_auc"]
        own.append(fold_metrics["threshold"])
        assert load_checkpoint(kfold / f"fold_{i}" / "model.pt").config.threshold == m["threshold"]
    assert [f["threshold"] for f in m["per_fold"]] == own
    assert len(set(own)) > 1  # the folds' own thresholds differ: the OOF one replaced them


def test_infer_on_the_fold_folder_is_the_mean_of_its_members(synth_data, kfold, tmp_path) -> None:
    members = [kfold / f"fold_{i}" / "model.pt" for i in range(K)]
    single = []
    for i, ckpt in enumerate(members):
        run_infer(synth_data, [ckpt], tmp_path / f"s{i}.csv", "--threshold", "none")
        single.append(read_sub(tmp_path / f"s{i}.csv"))
    assert not np.allclose(single[0], single[1])
    report = run_infer(synth_data, [kfold], tmp_path / "ens.csv", "--threshold", "none")
    ens = read_sub(tmp_path / "ens.csv")
    np.testing.assert_allclose(ens, sum(single) / K, atol=2e-5)
    assert report["checkpoints"] == [str(p) for p in members]
    sample = pd.read_csv(synth_data / "sample_submission.csv", dtype={"prediction_id": str})
    assert ens.index.tolist() == sample["prediction_id"].tolist()
    # the default (stored) threshold of the ensemble is the OOF one
    oof_threshold = json.loads((kfold / "metrics.json").read_text())["threshold"]
    report = run_infer(synth_data, [kfold], tmp_path / "bin.csv")
    assert report["threshold"] == pytest.approx(oof_threshold)
    expected = (ens >= oof_threshold).astype(float)
    binary = read_sub(tmp_path / "bin.csv").astype(float)
    assert set(binary.unique()) <= {0.0, 1.0}
    pd.testing.assert_series_equal(binary, expected, check_names=False)


def test_resume_skips_finished_folds_and_continues_the_unfinished_one(tiny, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    real_epoch = Trainer.train_epoch
    epochs = {"n": 0}

    def crash_on_fourth(self, loader, show):  # 2 epochs a fold: fold 1's second epoch
        epochs["n"] += 1
        if epochs["n"] == 4:
            raise KeyboardInterrupt
        return real_epoch(self, loader, show)

    monkeypatch.setattr(Trainer, "train_epoch", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        command.run(_args(*tiny, out, "--folds", str(K), "--epochs", "2"))
    assert (out / "fold_0" / "metrics.json").is_file() and (out / "fold_1" / "last.pt").is_file()
    assert not (out / "fold_1" / "metrics.json").exists() and not (out / "oof.csv").exists()
    fold0_history = (out / "fold_0" / "history.csv").read_bytes()

    real_run = folds.run_training
    calls: list[tuple[str, bool]] = []

    def record(cfg, data, images, folder, resume=False):
        calls.append((Path(folder).name, resume))
        return real_run(cfg, data, images, folder, resume=resume)

    monkeypatch.setattr(folds, "run_training", record)
    epochs["n"] = 100  # no more crashes
    assert command.run(_args(*tiny, out, "--folds", str(K), "--epochs", "2", "--resume")) == 0
    assert calls == [("fold_1", True), ("fold_2", False)]
    assert epochs["n"] == 100 + 1 + 2  # fold 1's last epoch, fold 2's two
    assert (out / "fold_0" / "history.csv").read_bytes() == fold0_history
    assert len(pd.read_csv(out / "fold_1" / "history.csv")) == 2
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == len(load_image_table(*tiny)) and set(oof["fold"]) == set(range(K))
    # a finished fold of another run is not mixed in; nothing to resume is an error
    with pytest.raises(InputError, match="seed"):
        command.run(_args(*tiny, out, "--folds", str(K), "--resume", "--seed", "4"))
    with pytest.raises(InputError, match="nothing to resume"):
        command.run(_args(*tiny, tmp_path / "none", "--folds", str(K), "--resume"))


def test_folds_with_fold_trains_that_fold_only(tiny, tmp_path) -> None:
    out = tmp_path / "one"
    assert command.run(_args(*tiny, out, "--folds", str(K), "--fold", "1")) == 0
    assert (out / "model.pt").is_file() and not list(out.glob("fold_*"))
    assert not (out / "oof.csv").exists()
    split = pd.read_csv(out / "split.csv")
    assert set(split.loc[split["split"] == "val", "fold"]) == {1}


def test_checkpoint_folder_rules(tmp_path, synth_data, capsys) -> None:
    nested = tmp_path / "kfold"
    for rel in ("fold_1/model.pt", "fold_0/model.pt", "fold_0/last.pt", "a.pt"):
        (nested / rel).parent.mkdir(parents=True, exist_ok=True)
        (nested / rel).write_bytes(b"")
    assert checkpoint_files(nested) == [nested / "fold_0/model.pt", nested / "fold_1/model.pt"]
    flat = tmp_path / "flat"
    for name in ("b.pt", "a.pt", "last.pt", "notes.txt"):
        (flat / name).parent.mkdir(exist_ok=True)
        (flat / name).write_bytes(b"")
    assert checkpoint_files(flat) == [flat / "a.pt", flat / "b.pt"]
    assert checkpoint_files(flat / "a.pt") == [flat / "a.pt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no model.pt"):
        checkpoint_files(empty)
    out = tmp_path / "sub.csv"
    rc = infer_main(["--data", str(synth_data), "--model", str(empty), "--out", str(out),
                     "--device", "cpu"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(empty) in err and "no model.pt" in err
