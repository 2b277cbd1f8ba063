"""Streaming inference: test rows -> per-image probabilities -> submission.csv.

Everything is rebuilt from the checkpoints (contract 4, ``LoadedModel``): each image is
preprocessed with the checkpoint's PreprocessConfig, normalised by its ``image_tensor``
and scored by its ``forward``. Checkpoints sharing a PreprocessConfig share one decoding
pass. An ensemble averages probabilities (and hflip TTA within each model); breasts are
aggregated with ``metrics.aggregate_per_breast``; breasts without a usable image get the
checkpoints' metadata-only probability, else their training prevalence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsna_pkg.data.schema import image_path, read_table
from rsna_pkg.errors import InputError
from rsna_pkg.infer import submission as sub
from rsna_pkg.infer.devices import Runtime, settle_backend
from rsna_pkg.infer.stream import Batch
from rsna_pkg.metrics import Aggregation

Log = Callable[[str], None]


@dataclass(frozen=True)
class InferOptions:
    """What ``rsna infer`` was asked to do (see its --help)."""

    data: Path
    models: tuple[Path, ...]
    out: Path
    split: str = "test"
    agg: Aggregation = "mean"
    threshold: sub.ThresholdSpec = "stored"
    tta: str = "none"  # none | hflip
    batch_size: int = 8
    workers: int = 0
    prefetch: int = 2


@dataclass
class InferResult:
    """Everything the report needs; ``submission`` is what was written to ``out``."""

    submission: pd.DataFrame
    table: pd.DataFrame
    image_probs: np.ndarray  # (N,) NaN where no model produced a probability
    failures: list[dict[str, Any]]
    fallback_breasts: list[str]
    threshold: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    runtime: Runtime | None = None


def read_test_table(data: Path, split: str) -> pd.DataFrame:
    """<data>/<split>.csv, validated before any work; a prediction_id for every row."""
    table = read_table(Path(data) / f"{split}.csv", split)
    if "prediction_id" not in table.columns:  # train.csv used as a test set
        table["prediction_id"] = table["patient_id"].astype(str) + "_" + table["laterality"]
    table["prediction_id"] = table["prediction_id"].astype(str)
    return table.reset_index(drop=True)


def check_model_paths(paths: Sequence[Path]) -> None:
    if not paths:
        raise InputError("--model: give at least one checkpoint")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: checkpoint not found")


def group_by_preprocess(models: Sequence[Any]) -> list[tuple[Any, list[int]]]:
    """(PreprocessConfig, indices of the models using it), one entry per distinct config,
    in first-use order, so each distinct config decodes the test set once."""
    groups: dict[str, tuple[Any, list[int]]] = {}
    for i, m in enumerate(models):
        cfg = m.config.preprocess
        key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        groups.setdefault(key, (cfg, []))[1].append(i)
    return list(groups.values())


def model_probabilities(
    loaded: Any, images: np.ndarray, rows: pd.DataFrame, tta: str
) -> np.ndarray:
    """(B,) probabilities of one model for a batch of preprocessed images (B, H, W),
    averaged over the original and, with ``tta="hflip"``, the mirrored image."""
    x = torch.stack([loaded.image_tensor(im) for im in images])  # (B, 1, H, W) float32
    meta = loaded.encode_metadata(rows)  # (B, F) | None
    if tta == "hflip":
        x = torch.cat([x, x.flip(-1)])  # (2B, 1, H, W): one forward for both views
        meta = None if meta is None else torch.cat([meta, meta])
    # LoadedModel.forward moves to its device (channels_last, AMP on CUDA) and returns CPU.
    with torch.inference_mode():
        logits = loaded.forward(x, meta).float().reshape(-1)  # (B,) or (2B,)
    probs = torch.sigmoid(logits).cpu().numpy().astype(np.float64)
    return probs.reshape(2, -1).mean(axis=0) if tta == "hflip" else probs


def breast_fallbacks(
    models: Sequence[Any], rows: pd.DataFrame, how: Aggregation
) -> dict[str, float]:
    """Per-breast metadata-only probability (mean over the checkpoints that have one)."""
    if rows.empty:
        return {}
    per_model = [m.metadata_only_proba(rows) for m in models]
    available = [np.asarray(p, dtype=np.float64).reshape(-1) for p in per_model if p is not None]
    if not available:
        return {}
    values = np.mean(np.stack(available), axis=0)
    return sub.aggregate_images(rows["prediction_id"], values, how).to_dict()


def infer(
    opts: InferOptions,
    runtime: Runtime,
    models: Sequence[Any] | None = None,
    log: Log = print,
) -> InferResult:
    """The whole run: validate inputs, load the checkpoints (unless ``models`` are given),
    stream, assemble and write. Bad inputs raise InputError before any decoding."""
    t0 = time.perf_counter()
    table = read_test_table(opts.data, opts.split)
    if opts.tta not in ("none", "hflip"):
        raise InputError(f"--tta must be none or hflip, got {opts.tta!r}")
    if opts.batch_size < 1 or opts.workers < 0:
        raise InputError("--batch-size must be >= 1 and --workers >= 0")
    seconds = {"read_csv": time.perf_counter() - t0}
    t0 = time.perf_counter()
    if models is None:
        check_model_paths(opts.models)
        from rsna_pkg.models.checkpoint import load_checkpoint

        models = [load_checkpoint(p, device=runtime.device) for p in opts.models]
    check_models(models, opts, log)
    runtime = settle_backend(runtime, [m.config.preprocess for m in models])
    seconds["load_models"] = time.perf_counter() - t0
    image_dir = Path(opts.data) / f"{opts.split}_images"
    if not image_dir.is_dir():
        log(f"infer: WARNING: {image_dir} does not exist; every breast gets its fallback")
    result = run_inference(opts, table, models, runtime, log)
    result.seconds = {**seconds, **result.seconds}
    result.runtime = runtime
    return result


def check_models(models: Sequence[Any], opts: InferOptions, log: Log) -> None:
    """Every checkpoint must carry its preprocessing; warn when --agg differs from the
    aggregation its stored threshold was fitted with."""
    for i, m in enumerate(models):
        if m.config.preprocess is None:
            name = opts.models[i] if i < len(opts.models) else f"model {i}"
            raise InputError(f"{name}: checkpoint stores no preprocess config")
        stored_agg = getattr(m.config, "aggregation", opts.agg)
        if opts.threshold == "stored" and stored_agg != opts.agg:
            log(
                f"infer: WARNING: model {i} threshold was fitted with --agg {stored_agg}, "
                f"aggregating with {opts.agg}"
            )


def run_inference(
    opts: InferOptions,
    table: pd.DataFrame,
    models: Sequence[Any],
    runtime: Runtime,
    log: Log = print,
) -> InferResult:
    """Score every row of the test table with every model, then write the submission."""
    paths = [
        image_path(opts.data, opts.split, int(p), int(i))
        for p, i in zip(table["patient_id"], table["image_id"], strict=True)
    ]
    n = len(table)
    prob_sum = np.zeros(n, dtype=np.float64)
    prob_count = np.zeros(n, dtype=np.int64)
    failures: dict[int, str] = {}
    decode_cpu = wait = model_s = 0.0
    stream_start = time.perf_counter()
    groups = group_by_preprocess(models)
    for g, (cfg, members) in enumerate(groups):
        log(
            f"infer: pass {g + 1}/{len(groups)}: {n} images, models {members}, {runtime.describe()}"
        )
        batches = runtime.batches(paths, cfg, opts.batch_size, opts.workers, opts.prefetch)
        member_models = [models[i] for i in members]
        tick = time.perf_counter()
        for b, batch in enumerate(batches):
            wait += time.perf_counter() - tick
            decode_cpu += batch.decode_seconds
            for idx, reason in batch.failures:
                failures.setdefault(idx, reason)
            tick = time.perf_counter()
            for idx, reason in score_batch(
                batch, table, member_models, opts.tta, prob_sum, prob_count
            ):
                failures.setdefault(idx, reason)
            model_s += time.perf_counter() - tick
            if (b + 1) % 100 == 0:
                log(f"infer: {min((b + 1) * opts.batch_size, n)}/{n} images")
            tick = time.perf_counter()
    seconds = {
        "stream": time.perf_counter() - stream_start,
        "decode_wait": wait,
        "decode_cpu": decode_cpu,
        "model": model_s,
    }
    t1 = time.perf_counter()
    with np.errstate(invalid="ignore", divide="ignore"):
        image_probs = np.where(prob_count > 0, prob_sum / np.maximum(prob_count, 1), np.nan)
    result = assemble_submission(opts, table, image_probs, models, failures, paths)
    seconds["aggregate_write"] = time.perf_counter() - t1
    result.seconds = seconds
    return result


def score_batch(
    batch: Batch,
    table: pd.DataFrame,
    members: Sequence[Any],
    tta: str,
    prob_sum: np.ndarray,
    prob_count: np.ndarray,
) -> list[tuple[int, str]]:
    """Add each model's probabilities for the batch's decoded rows to the running sums.

    A model that raises on the batch (a shape it cannot take, out of memory, a bug) is
    retried one image at a time, so one bad input costs one image; images it still fails
    on are returned as (row, reason) and get no probability from that model, which
    leaves them to the ensemble's other models or to their breast's fallback."""
    if len(batch.indices) == 0:
        return []
    rows = table.iloc[batch.indices]
    failed: list[tuple[int, str]] = []
    for m, loaded in enumerate(members):
        try:
            parts = [(batch.indices, model_probabilities(loaded, batch.images, rows, tta))]
        except Exception:  # noqa: BLE001 - isolate the image(s) below, never stop the run
            parts = []
            for j, idx in enumerate(batch.indices):
                try:
                    one = model_probabilities(loaded, batch.images[j : j + 1], rows.iloc[[j]], tta)
                except Exception as exc:  # noqa: BLE001
                    failed.append((int(idx), f"model {m} failed: {type(exc).__name__}: {exc}"))
                else:
                    parts.append((batch.indices[j : j + 1], one))
        for indices, probs in parts:
            ok = np.isfinite(probs)
            failed += [(int(i), f"model {m} gave a non-finite probability") for i in indices[~ok]]
            prob_sum[indices[ok]] += probs[ok]
            prob_count[indices[ok]] += 1
    return failed


def assemble_submission(
    opts: InferOptions,
    table: pd.DataFrame,
    image_probs: np.ndarray,
    models: Sequence[Any],
    failures: dict[int, str],
    paths: Sequence[Path],
) -> InferResult:
    """Aggregate, fill breasts without images, binarise, order, check and write."""
    breast = sub.aggregate_images(table["prediction_id"], image_probs, opts.agg)
    missing = [p for p in dict.fromkeys(table["prediction_id"]) if p not in breast.index]
    rows = table[table["prediction_id"].isin(missing)]
    fallbacks = breast_fallbacks(models, rows, opts.agg)
    prevalence = float(np.mean([m.config.prevalence for m in models]))
    threshold = sub.resolve_threshold(opts.threshold, [m.config.threshold for m in models])
    sample = Path(opts.data) / "sample_submission.csv" if opts.split == "test" else None
    order = sub.submission_order(table["prediction_id"].tolist(), sample)
    frame = sub.assemble(order, breast, fallbacks, prevalence, threshold)
    sub.validate_submission(frame, order)
    sub.write_submission(frame, opts.out)
    failed = [
        {
            "row": int(i),
            "patient_id": int(table.at[i, "patient_id"]),
            "image_id": int(table.at[i, "image_id"]),
            "path": str(paths[i]),
            "reason": failures[i],
            "scored_by_another_model": bool(np.isfinite(image_probs[i])),
        }
        for i in sorted(failures)
    ]
    no_image = sorted(set(order) - set(breast.index))
    return InferResult(frame, table, image_probs, failed, no_image, threshold)
