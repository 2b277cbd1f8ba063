"""The training run: data -> model -> epochs of (train, validate, checkpoint).

One code path serves CPU, one GPU and torchrun DDP. Every epoch writes
``last.pt`` (resumable: weights, optimiser, schedule, EMA, history) and, when
the monitored validation metric improves, ``model.pt`` with the threshold chosen
on that epoch's per-breast predictions, and those predictions (``val_predictions.csv``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.augment import build_augment
from rsna_pkg.data.aux_targets import describe_aux
from rsna_pkg.data.dataset import EpochSampler, MammoDataset
from rsna_pkg.data.sampling import positives_per_batch
from rsna_pkg.data.splits import load_split, save_split
from rsna_pkg.logs import progress_shown
from rsna_pkg.models.checkpoint import build_model, read_checkpoint, save_checkpoint
from rsna_pkg.models.fusion import apply_freeze
from rsna_pkg.outputs import RunFolder, remove_stale_temporaries
from rsna_pkg.train import ddp
from rsna_pkg.train.config import TrainConfig
from rsna_pkg.train.cpu_tuning import cpu_training_settings
from rsna_pkg.train.evaluate import (
    gather_predictions,
    predict,
    score,
    write_predictions,
)
from rsna_pkg.train.history import plot_curves, write_history, write_json
from rsna_pkg.train.prepare import Prepared, prepare
from rsna_pkg.train.trainer import make_trainer

log = logging.getLogger(__name__)

# Settings that must agree between a run and the last.pt it resumes.
RESUME_KEYS: tuple[str, ...] = ("backbone", "height", "width", "use_metadata", "freeze", "seed",
                                "aux_heads")  # fmt: skip


def resume_values(cfg: TrainConfig) -> dict[str, Any]:
    """The RESUME_KEYS of a run, by the flat names format-1 checkpoints stored them under."""
    m = cfg.model
    return {"backbone": m.backbone, "height": m.height, "width": m.width,
            "use_metadata": m.use_metadata, "freeze": cfg.freeze, "seed": cfg.seed,
            "aux_heads": m.aux_heads}  # fmt: skip


def run_training(
    cfg: TrainConfig,
    data_dir: str | Path,
    images_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Train, write OUT/{model.pt,last.pt,metrics.json,history.csv,curves.png,
    config.json,split.csv,val_predictions.csv}; return the best epoch's metrics."""
    started = time.perf_counter()
    ctx = ddp.setup(cfg.device)
    threads = torch.get_num_threads()  # _run sets its own; the caller gets theirs back
    try:
        with cpu_training_settings(ctx.device.type == "cpu"):
            return _run(ctx, cfg, Path(data_dir), Path(images_dir), Path(out_dir), resume, started)
    finally:
        torch.set_num_threads(threads)
        ddp.cleanup(ctx)


def _run(
    ctx: ddp.DistContext,
    cfg: TrainConfig,
    data: Path,
    images: Path,
    out: Path,
    resume: bool,
    started: float,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    run = RunFolder(out)
    if ctx.is_main:
        remove_stale_temporaries(out)  # a checkpoint cut short by a kill
    if ctx.device.type == "cpu":
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // ctx.world_size))
    state = _resume_state(cfg, out) if resume else None
    prep = prepare(cfg, data, images, load_split(run.split) if resume else None)
    cfg = prep.fitted_config(cfg)
    if ctx.is_main:
        save_split(run.split, prep.folds, prep.val_fold)
        write_json(run.config, cfg.to_dict())
        log.info(_describe(cfg, prep, ctx))
        if cfg.aux:
            log.info(describe_aux(cfg.aux, prep.train))

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, None if state else cfg.pretrained).to(ctx.device)
    apply_freeze(model, cfg.freeze)
    model.set_grad_checkpointing(cfg.grad_checkpoint)
    channels_last = cfg.channels_last and ctx.device.type in ("cuda", "cpu")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    train_loader, val_loader, sampler = _loaders(cfg, prep, ctx)
    trainer = make_trainer(model, cfg, ctx, steps_per_epoch=len(train_loader), prep=prep)
    history: list[dict[str, Any]] = []
    best, best_row, bad, start = -math.inf, {}, 0, 0
    earlier = 0.0  # wall seconds of the run's earlier calls (--resume)
    if state is not None:
        trainer.load_state_dict(state)
        history, best, bad = list(state["history"]), float(state["best"]), int(state["bad_epochs"])
        best_row, start = dict(state["best_row"]), int(state["epoch"])
        if ctx.is_main:
            log.info(f"resuming after epoch {start} (best {cfg.monitor} {best:.4f})")
        earlier = float(history[-1].get("elapsed_seconds", 0.0)) if history else 0.0

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout etc.: exact on --resume
        loss = trainer.train_epoch(train_loader, show=ctx.is_main and progress_shown())
        eval_model = trainer.eval_model()
        rows, probs = predict(eval_model, val_loader, ctx.device, channels_last)
        val_probs = gather_predictions(ctx, rows, probs)
        metrics = score(prep.val, val_probs, cfg.model.aggregation)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss, "lr": trainer.lr(), **metrics}
        row["seconds"] = round(seconds, 2)
        # wall time since the run began (set-up included; a resumed run adds this call's to
        # the time its earlier calls took): when each metric was reached
        row["elapsed_seconds"] = round(earlier + time.perf_counter() - started, 1)
        history.append(row)
        value = metrics["val_auc"] if cfg.monitor == "auc" else metrics["val_pf1_best"]
        value = -math.inf if value is None or math.isnan(value) else float(value)
        improved = value > best
        best, bad = (value, 0) if improved else (best, bad + 1)
        if improved:
            best_row = row
        if ctx.is_main:
            if improved:
                best_model = cfg.model.with_(threshold=row["threshold"])
                write_predictions(run.val_predictions, prep.val, val_probs, epoch + 1)
                save_checkpoint(run.model, eval_model, best_model)
            save_checkpoint(run.last, trainer.unwrapped, cfg.model, train=cfg.to_dict(),
                            epoch=epoch + 1, best=best,
                            bad_epochs=bad, best_row=best_row, history=history,
                            **trainer.state_dict())  # fmt: skip
            write_history(run.history, history)
            plot_curves(run.curves, history)
            log.info(_epoch_line(row, improved, cfg.monitor))
        ddp.barrier(ctx)
        if cfg.patience and bad >= cfg.patience:
            if ctx.is_main:
                log.info(f"early stop: no {cfg.monitor} gain for {bad} epoch(s)")
            break

    result = _final_metrics(best_row, history, cfg, prep)
    if ctx.is_main:
        write_json(run.metrics, result)
    return result


def _resume_state(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    run = RunFolder(out)
    path = run.last
    if not path.is_file() or not run.split.is_file():
        raise FieldError("resume", f"{path} or its split.csv not found; nothing to resume")
    state = read_checkpoint(path)
    saved = (
        resume_values(TrainConfig.from_dict(state["train"]))
        if "train" in state
        else {"aux_heads": (), **state.get("config", {})}  # format 1 had no auxiliary heads
    )
    wanted = resume_values(cfg)
    for key in RESUME_KEYS:
        if saved.get(key) != wanted[key]:
            raise FieldError(
                "resume",
                f"{path} was trained with {key}={saved.get(key)!r}, "
                f"this run asks for {wanted[key]!r}",
            )
    return state


def _loaders(
    cfg: TrainConfig, prep: Prepared, ctx: ddp.DistContext
) -> tuple[DataLoader, DataLoader, EpochSampler]:
    m = cfg.model
    size = (m.height, m.width)

    def dataset(df: Any, train: bool) -> MammoDataset:
        meta = prep.encoder.transform(df) if m.use_metadata else None
        aug = build_augment(cfg.augment) if train else None
        return MammoDataset(
            df["path"].tolist(), df["cancer"].to_numpy(), meta, m.norm_mean, m.norm_std,
            augment=aug, seed=cfg.seed, size=size,
        )  # fmt: skip

    labels = prep.train["cancer"].to_numpy()
    batch_pos = positives_per_batch(cfg.pos_fraction, cfg.batch_size)
    sampler = EpochSampler(
        labels, train=True, oversample=cfg.balance == "oversample", pos_fraction=cfg.pos_fraction,
        neg_fraction=cfg.neg_fraction, pos_per_batch=batch_pos if cfg.balance == "batch" else 0,
        batch_size=cfg.batch_size, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
    )  # fmt: skip
    val_sampler = EpochSampler(
        prep.val["cancer"].to_numpy(), train=False, rank=ctx.rank, world_size=ctx.world_size
    )
    common: dict[str, Any] = {
        "num_workers": cfg.workers,
        "pin_memory": ctx.device.type == "cuda",
        "persistent_workers": cfg.workers > 0,
        "worker_init_fn": worker_init if cfg.workers > 0 else None,
    }
    train_loader = DataLoader(
        dataset(prep.train, True), batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
        **common,
    )  # fmt: skip
    if len(train_loader) == 0:
        raise FieldError(
            "batch_size",
            f"{len(sampler)} training image(s) per rank is fewer than one batch",
            value=cfg.batch_size,
        )
    val_loader = DataLoader(
        dataset(prep.val, False), batch_size=cfg.batch_size * 2, sampler=val_sampler, **common
    )
    return train_loader, val_loader, sampler


def worker_init(worker_id: int) -> None:
    """One thread per loader worker (the main process owns the cores for the
    model), at a lower CPU priority: where loaders and the model share cores, a
    loader that preempts one of the model's threads stalls the whole parallel op,
    while a niced one fills the gaps between ops. Numpy is seeded from torch's
    per-worker seed; augmentation draws from its own per-sample generator (MammoDataset)."""
    torch.set_num_threads(1)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(10)
    np.random.seed(torch.initial_seed() % 2**32)


def _describe(cfg: TrainConfig, prep: Prepared, ctx: ddp.DistContext) -> str:
    pos_t, pos_v = int(prep.train["cancer"].sum()), int(prep.val["cancer"].sum())
    m = cfg.model
    return (
        f"train {len(prep.train)} images ({pos_t} positive), val {len(prep.val)} images "
        f"({pos_v} positive); {m.backbone} {m.height}x{m.width}, freeze={cfg.freeze}, "
        f"metadata={'on' if m.use_metadata else 'off'}, device={ctx.device}, "
        f"world={ctx.world_size}, threads={torch.get_num_threads()}"
    )


def _epoch_line(row: dict[str, Any], improved: bool, monitor: str) -> str:
    return (
        f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  val AUC {row['val_auc']:.4f}  "
        f"pF1 {row['val_pf1']:.4f}  best-thr pF1 {row['val_pf1_best']:.4f} @ {row['threshold']:.3f}"
        f"  image AUC {row['image_auc']:.4f}  {row['seconds']:.1f}s" + ("  *" if improved else "")
    )


def _final_metrics(
    best_row: dict[str, Any], history: list[dict[str, Any]], cfg: TrainConfig, prep: Prepared
) -> dict[str, Any]:
    per_breast = {k: best_row.get(k) for k in ("val_auc", "val_pf1", "val_pf1_best", "threshold")}
    per_image = {
        "auc": best_row.get("image_auc"),
        "pf1": best_row.get("image_pf1"),
        "pf1_best": best_row.get("image_pf1_best"),
        "threshold": best_row.get("image_threshold"),
    }
    return {
        **per_breast,
        "best_epoch": best_row.get("epoch"),
        "epochs_run": len(history),
        "monitor": cfg.monitor,
        "per_breast": dict(per_breast),
        "per_image": per_image,
        "train_images": len(prep.train),
        "val_images": len(prep.val),
        "val_positive_breasts": best_row.get("val_positive_breasts"),
        "prevalence": cfg.model.prevalence,
        "train_seconds": round(sum(float(r["seconds"]) for r in history), 1),
    }
