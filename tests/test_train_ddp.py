"""DDP on CPU: torchrun with 2 gloo processes trains a tiny model end to end
(with gradient accumulation, EMA, SGD, auxiliary heads and batch-balanced sampling, so
those paths run too), and the training step's gradients are synchronised: after training
both ranks hold the same weights, those of one process trained on the whole batch."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from ddp_step import Tiny, config, data, train
from torch import nn
from torch.nn import functional as F
from train_data import make_dataset

import rsna_pkg
from rsna_pkg.models.checkpoint import load_checkpoint
from rsna_pkg.train.ddp import DistContext
from rsna_pkg.train.trainer import Trainer

DDP_STEP = Path(__file__).with_name("ddp_step.py")


def step_env() -> dict[str, str]:
    """The environment of a subprocess that must import this process's rsna_pkg (a mutation
    run's copy, not the installed one)."""
    root = str(Path(rsna_pkg.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_step(
    out: Path, world: int, accumulate: int, count: int = 48, heads: bool = True
) -> list[dict[str, Any]]:
    """tests/ddp_step.py on ``world`` gloo processes under torchrun, or (world 1) in this
    process, so that a mutation run sees this test use the Trainer; each rank's saved state."""
    out.mkdir()
    if world == 1:
        train(DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")),
              out, accumulate, count, heads)  # fmt: skip
    else:
        assert count == 48 and heads, "torchrun runs take every image, with the head"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(world), str(DDP_STEP), str(out), str(accumulate)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=step_env())
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(world)]


def test_ddp_ranks_agree_with_each_other_and_with_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the only DDP test passed with the no-sync context forced on every step. Two
    ranks accumulating two micro-batches of 4, one process accumulating two of 8 (or four
    of 4), and one process taking steps of 16 at once all see the same 16 images per
    optimizer step."""
    rank0, rank1 = run_step(tmp_path / "ddp", world=2, accumulate=2)
    (single,) = run_step(tmp_path / "single", world=1, accumulate=2)
    # four micro-steps per optimizer step: an accumulation boundary that is right only for
    # two (stepping after micro-steps 2, 4, 6 rather than 4, 8, 12) shows up here
    (quarters,) = run_step(tmp_path / "quarters", world=1, accumulate=4)
    (whole,) = run_step(tmp_path / "whole", world=1, accumulate=1)
    # show=False (every rank but 0) draws no progress bar
    assert capsys.readouterr().err == ""
    torch.manual_seed(0)
    initial = Tiny().state_dict()  # rank 0's and the single process's start
    runs = (rank0, rank1, single, quarters, whole)
    # three optimizer steps of 16 images each, however they were split
    assert [int(run["optimizer_steps"]) for run in runs] == [3] * 5
    # the epoch's mean loss, gathered over the ranks: the same per-image losses in every run
    losses = [float(run["loss"]) for run in runs]
    assert losses == pytest.approx([losses[2]] * 5, rel=1e-6) and losses[2] > 0.1, losses
    for part in ("model", "ema"):
        for name, value in rank0[part].items():
            # all-reduced gradients: the ranks agree to the last bits
            torch.testing.assert_close(rank1[part][name], value, rtol=1e-6, atol=1e-7)
            # and equal one process on the whole batch (the sum order differs)
            torch.testing.assert_close(value, single[part][name], rtol=1e-5, atol=1e-6)
            # accumulating two halves is one step on the whole: the loss is divided by 2
            torch.testing.assert_close(single[part][name], whole[part][name], rtol=1e-5,
                                       atol=1e-6)  # fmt: skip
            torch.testing.assert_close(quarters[part][name], whole[part][name], rtol=1e-5,
                                       atol=1e-6)  # fmt: skip
    # not a vacuous match: training moved every weight, and the EMA of the weights, far
    # beyond those tolerances
    for part in ("model", "ema"):
        for name, value in single[part].items():
            assert (value - initial[name]).abs().max() > 1e-3, (part, name)


def test_a_last_partial_accumulation_still_steps(tmp_path: Path) -> None:
    """40 images in micro-steps of 4, four per optimizer step: the epoch's last two
    micro-steps make a third, shorter step, which must happen and must include both (a
    boundary test that missed the epoch's end, or fired one micro-step early, would drop
    them). The run on the first 36 images takes one micro-step fewer: different weights."""
    (forty,) = run_step(tmp_path / "forty", world=1, accumulate=4, count=40)
    (thirty_six,) = run_step(tmp_path / "thirty_six", world=1, accumulate=4, count=36)
    (thirty_two,) = run_step(tmp_path / "thirty_two", world=1, accumulate=4, count=32)
    assert [int(r["optimizer_steps"]) for r in (forty, thirty_six, thirty_two)] == [3, 3, 2]
    for name, value in forty["model"].items():
        # the last micro-step counted: not the weights of the run that never saw it
        assert (value - thirty_six["model"][name]).abs().max() > 1e-6, name


def one_process_trainer(lr: float) -> tuple[Trainer, list[Any], nn.Module]:
    """A Trainer on the 48 images in three steps of 16 in this process, and a copy of the
    model it starts from."""
    images, meta, labels, aux = data()
    torch.manual_seed(0)
    model = Tiny()
    start = copy.deepcopy(model)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = config(16, 1).with_(lr=lr)
    trainer = Trainer(model, cfg, ctx, steps_per_epoch=3, pos_weight=1.5, aux_targets=aux)
    rows = torch.arange(48).split(16)
    batches = [(images[r], meta[r], labels[r].double(), r) for r in rows]
    return trainer, batches, start


def test_the_epoch_loss_is_the_mean_loss_of_every_image() -> None:
    """With a learning rate too small to move the weights, the epoch's loss is the starting
    model's loss over all 48 images, computed here from its logits: the cancer loss (positive
    weight 1.5) plus 0.5 x the biopsy head's. A wrong sum, count or sign shows up."""
    trainer, batches, start = one_process_trainer(lr=1e-12)
    loss = trainer.train_epoch(batches, show=False)  # type: ignore[arg-type]
    images, meta, labels, _ = data()
    with torch.no_grad():
        logits, heads = start(images, meta, aux=True)
        cancer = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=torch.tensor(1.5))
        biopsy = F.binary_cross_entropy_with_logits(heads["biopsy"][:, 0], labels)
    assert loss == pytest.approx(float(cancer + 0.5 * biopsy), rel=1e-5)


def test_a_loss_that_stops_being_finite_stops_training() -> None:
    trainer, batches, _ = one_process_trainer(lr=0.05)
    images, meta, labels, rows = batches[1]
    batches[1] = (torch.full_like(images, float("nan")), meta, labels, rows)
    with pytest.raises(FloatingPointError, match="training loss became nan at step 1"):
        trainer.train_epoch(batches, show=False)  # type: ignore[arg-type]


def test_a_model_without_auxiliary_heads_trains_on_its_logits_alone(tmp_path: Path) -> None:
    """The step's other branch: no heads, so the model is called without ``aux`` and the
    loss is the cancer loss alone (smaller than with the biopsy head's term added)."""
    (plain,) = run_step(tmp_path / "plain", world=1, accumulate=2, heads=False)
    (headed,) = run_step(tmp_path / "headed", world=1, accumulate=2)
    assert int(plain["optimizer_steps"]) == 3 and "biopsy.weight" in plain["model"]
    assert 0.1 < float(plain["loss"]) < float(headed["loss"])
    torch.manual_seed(0)
    initial = Tiny().state_dict()
    assert torch.equal(plain["model"]["biopsy.weight"], initial["biopsy.weight"])  # untrained
    assert (plain["model"]["out.weight"] - initial["out.weight"]).abs().max() > 1e-3


def test_torchrun_two_gloo_processes(tmp_path) -> None:
    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=1)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "rsna_pkg.train", "--data", str(data), "--images", str(images), "--out", str(out),
        "--size", "64", "32", "--epochs", "1", "--batch-size", "4", "--workers", "0",
        "--device", "cpu", "--backbone", "resnet18", "--seed", "2",
        # the less common paths ride along: no_sync accumulation, EMA weights, SGD
        "--accumulate", "2", "--ema", "0.5", "--optimizer", "sgd",
        # heads through DDP's forward (BIRADS is never known here: a head whose gradient is
        # zero must still sync), and whole balanced batches per rank
        "--aux", "birads,biopsy=0.5", "--balance", "batch", "--neg-fraction", "0.8",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world=2" in proc.stderr  # progress is logged (stderr); the result line is stdout
    assert "auxiliary heads: birads x0.1 (0/" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    split = pd.read_csv(out / "split.csv")
    table = pd.read_csv(data / "train.csv")
    val_ids = set(split.loc[split["split"] == "val", "patient_id"])
    # predictions of both ranks were gathered: every validation image scored once
    assert metrics["val_images"] == int(table["patient_id"].isin(val_ids).sum())
    assert metrics["epochs_run"] == 1 and metrics["val_auc"] is not None
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 1 and history["train_loss"].notna().all()
    loaded = load_checkpoint(out / "model.pt")
    assert loaded.config.backbone == "resnet18"
    assert set(loaded.model.aux_heads) == {"birads", "biopsy"}
