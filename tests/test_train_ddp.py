"""DDP on CPU: torchrun with 2 gloo processes trains a tiny model end to end
(with gradient accumulation, EMA, SGD, auxiliary heads and batch-balanced sampling, so
those paths run too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
from train_data import make_dataset

from rsna_pkg.models.checkpoint import load_checkpoint


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
    assert "world=2" in proc.stdout
    assert "auxiliary heads: birads x0.1 (0/" in proc.stdout
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
