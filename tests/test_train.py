"""End-to-end training on a few tiny PNGs: outputs, determinism, resume, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_data import ctrl_c_in_second_epoch, make_dataset

from rsna_pkg.data.dataset import load_image_table, read_png
from rsna_pkg.errors import InputError
from rsna_pkg.models.checkpoint import load_checkpoint
from rsna_pkg.train import command
from rsna_pkg.train.trainer import warmup_cosine

SIZE = ("64", "32")


def _args(data: Path, images: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", *SIZE,
        "--epochs", "2", "--batch-size", "8", "--workers", "0", "--threads", "1", "--seed", "3",
        *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return make_dataset(tmp_path_factory.mktemp("tiny"), patients=12, size=(64, 32), seed=0)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert command.run(_args(*tiny, out)) == 0
    return out


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    m.pop("train_seconds")
    return m


def test_train_writes_every_output_and_a_usable_checkpoint(tiny, trained) -> None:
    for name in ("model.pt", "last.pt", "metrics.json", "history.csv", "curves.png",
                 "config.json", "split.csv"):  # fmt: skip
        assert (trained / name).is_file(), name
    m = _metrics(trained)
    for key in ("val_auc", "val_pf1", "val_pf1_best", "threshold"):
        assert m[key] is not None and 0.0 <= m[key] <= 1.0, key
        assert m["per_breast"][key] == m[key]
    assert set(m["per_image"]) == {"auc", "pf1", "pf1_best", "threshold"}
    history = pd.read_csv(trained / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    elapsed = history["elapsed_seconds"].to_numpy()
    assert (elapsed > 0).all() and elapsed[1] >= elapsed[0] + history["seconds"].iloc[1] - 0.5
    # the bright-disc positives are trivially separable: the model must find them
    assert history["val_auc"].max() >= 0.9
    split = pd.read_csv(trained / "split.csv")
    assert set(split["split"]) == {"train", "val"}

    loaded = load_checkpoint(trained / "model.pt")
    cfg = json.loads((trained / "config.json").read_text())
    assert loaded.config.backbone == cfg["model"]["backbone"] == "resnet18"
    assert loaded.config.threshold == pytest.approx(m["threshold"])
    assert loaded.config.preprocess is not None and loaded.config.preprocess.height == 64
    # inference path reproduces the validation AUC of the saved epoch
    table = load_image_table(*tiny)
    val_ids = set(split.loc[split["split"] == "val", "patient_id"])
    val = table[table["patient_id"].isin(val_ids)].reset_index(drop=True)
    images = torch.stack([loaded.image_tensor(read_png(p)) for p in val["path"]])
    probs = torch.sigmoid(loaded.forward(images, loaded.encode_metadata(val))).numpy()
    from rsna_pkg.metrics import aggregate_per_breast, roc_auc

    breast = aggregate_per_breast(val["prediction_id"], probs)
    labels = val.groupby("prediction_id", sort=False)["cancer"].max().reindex(breast.index)
    assert roc_auc(labels, breast) == pytest.approx(m["val_auc"], abs=1e-6)
    fallback = loaded.metadata_only_proba(val)
    assert fallback is not None and np.isfinite(fallback).all()


def test_same_seed_reproduces_metrics_with_any_worker_count(tiny, trained, tmp_path) -> None:
    # augmentation is seeded per (seed, epoch, row), so loader workers change nothing
    assert command.run(_args(*tiny, tmp_path / "again", "--workers", "2")) == 0
    assert _metrics(tmp_path / "again") == _metrics(trained)


def test_resume_continues_exactly(tiny, trained, tmp_path, monkeypatch) -> None:
    out = tmp_path / "resumed"
    restore = ctrl_c_in_second_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        command.run(_args(*tiny, out))
    restore()
    assert not (out / "metrics.json").exists()
    assert command.run(_args(*tiny, out, "--resume")) == 0
    assert _metrics(out) == _metrics(trained)
    # elapsed_seconds runs on from the first call's last row, not from zero
    history = pd.read_csv(out / "history.csv")
    elapsed, seconds = history["elapsed_seconds"].to_numpy(), history["seconds"].to_numpy()
    assert elapsed[1] >= elapsed[0] + seconds[1] - 0.1, (elapsed, seconds)
    with pytest.raises(InputError, match="backbone"):
        command.run(_args(*tiny, out, "--resume", "--backbone", "squeezenet1_1"))


def test_bad_inputs_give_clear_errors(tiny, tmp_path) -> None:
    data, images = tiny
    with pytest.raises(InputError, match="--size"):
        command.run(_args(data, images, tmp_path / "o1", "--size", "128", "64"))
    with pytest.raises(InputError, match="nothing to resume"):
        command.run(_args(data, images, tmp_path / "o2", "--resume"))
    with pytest.raises(InputError, match="backbone"):
        command.run(_args(data, images, tmp_path / "o3", "--backbone", "lenet"))
    with pytest.raises(InputError, match="not found"):
        command.run(_args(data, images, tmp_path / "o4", "--pretrained", str(tmp_path / "x.pth")))


def test_size_defaults_to_the_images_folder_and_a_given_one_must_match(tiny, tmp_path) -> None:
    """Before: train defaulted to --size 512 256 whatever the images were, so the README's
    `rsna preprocess ... --size H W` then `rsna train` (no --size) failed unless both agreed."""
    data, images = tiny
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    base = ["--data", str(data), "--images", str(images), "--out", str(tmp_path / "o")]
    cfg = command.config_from_args(parser.parse_args(base), "resnet18")
    assert (cfg.model.height, cfg.model.width) == (64, 32)  # make_dataset's PNGs
    cfg = command.config_from_args(parser.parse_args([*base, "--size", "64", "32"]), "resnet18")
    assert (cfg.model.height, cfg.model.width) == (64, 32)
    (images / "preprocess_config.json").rename(tmp_path / "moved.json")
    try:
        with pytest.raises(InputError, match="preprocess_config.json: not found"):
            command.config_from_args(parser.parse_args(base), "resnet18")
    finally:
        (tmp_path / "moved.json").rename(images / "preprocess_config.json")


def test_manifest_errors_and_missing_pngs_are_skipped_with_counts(tmp_path, caplog) -> None:
    data, images = make_dataset(tmp_path, patients=4, size=(64, 32))
    manifest = pd.read_csv(images / "manifest.csv", dtype={"reason": str})
    manifest.loc[0, ["status", "reason"]] = ["error", "decode failed"]
    manifest.to_csv(images / "manifest.csv", index=False)
    (images / manifest.loc[1, "png"]).unlink()
    with caplog.at_level("INFO", logger="rsna_pkg"):
        table = load_image_table(data, images)
    out = caplog.text
    assert "skipping 1 image(s) the manifest marks as errors" in out
    assert "skipping 1 image(s) listed in the manifest but missing on disk" in out
    assert len(table) == len(manifest) - 2
    assert set(manifest.loc[:1, "image_id"]).isdisjoint(table["image_id"])


def test_validation_without_positives_is_refused(tmp_path) -> None:
    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), pos_patients=1)
    with pytest.raises(InputError, match="no positive"):
        command.run(_args(data, images, tmp_path / "out"))


def test_warmup_cosine_schedule_shape() -> None:
    values = [warmup_cosine(s, warmup=4, total=20) for s in range(20)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(values[4:], values[5:], strict=False))
    assert values[-1] < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_channels_last_path(tiny, tmp_path) -> None:
    out = tmp_path / "cuda"
    assert command.run(_args(*tiny, out, "--device", "cuda", "--ema", "0.9")) == 0
    loaded = load_checkpoint(out / "model.pt", device="cuda")
    assert next(loaded.model.parameters()).is_cuda
    x = torch.zeros(2, 1, 64, 32)
    meta = loaded.encode_metadata(load_image_table(*tiny).head(2))
    logits = loaded.forward(x, meta)
    assert logits.shape == (2,) and torch.isfinite(logits).all() and logits.device.type == "cpu"


@pytest.mark.parametrize("balance", ["pos_weight", "none", "oversample"])
def test_balance_modes_weigh_the_loss_or_the_sampler(tmp_path, monkeypatch, balance) -> None:
    """``--balance pos_weight`` weighs positives in the loss by negatives/positives of the
    training split and samples every image once; ``none`` does neither; ``oversample`` (the
    contrast) repeats positives to a quarter of the epoch with an unweighted loss."""
    from rsna_pkg.train import loop

    seen: dict = {}
    real_trainer, real_loaders = loop.make_trainer, loop._loaders

    def make_trainer(model, cfg, ctx, steps_per_epoch, prep):
        seen["trainer"] = real_trainer(model, cfg, ctx, steps_per_epoch, prep)
        seen["train"] = prep.train
        return seen["trainer"]

    def loaders(cfg, prep, ctx):
        out = real_loaders(cfg, prep, ctx)
        seen["sampler"] = out[2]
        return out

    monkeypatch.setattr(loop, "make_trainer", make_trainer)
    monkeypatch.setattr(loop, "_loaders", loaders)
    rare = make_dataset(tmp_path, patients=20, size=(64, 32), seed=0, pos_patients=5)
    assert command.run(_args(*rare, tmp_path / "out", "--epochs", "1", "--balance", balance)) == 0
    labels = seen["train"]["cancer"].to_numpy()
    pos, neg = int(labels.sum()), int((labels == 0).sum())
    assert pos > 0 and pos / (pos + neg) < 0.2  # oversampling has positives to repeat
    weight = seen["trainer"].criterion.pos_weight
    loss_of_a_missed_positive = seen["trainer"].criterion(torch.zeros(1), torch.ones(1))
    sampler = seen["sampler"]
    sampler.set_epoch(0)
    drawn = np.asarray(list(sampler))
    if balance == "pos_weight":
        assert weight is not None and float(weight) == pytest.approx(neg / pos)
        assert float(loss_of_a_missed_positive) == pytest.approx(neg / pos * np.log(2))
    else:
        assert weight is None
        assert float(loss_of_a_missed_positive) == pytest.approx(np.log(2))
    if balance == "oversample":
        assert len(drawn) > len(labels) and labels[drawn].mean() == pytest.approx(0.25, abs=0.05)
    else:  # every training image once, in the classes' own proportion
        assert sorted(drawn.tolist()) == list(range(len(labels)))
