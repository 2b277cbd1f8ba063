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
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.schema import (
    TEST_COLUMNS,
    TEST_TIME_COLUMNS,
    image_path,
    prediction_ids,
    read_table,
)
from rsna_pkg.errors import InputError, describe, one_line
from rsna_pkg.infer import submission as sub
from rsna_pkg.infer.devices import Runtime, settle_backend
from rsna_pkg.infer.options import InferOptions
from rsna_pkg.infer.stream import Batch
from rsna_pkg.metrics import Aggregation
from rsna_pkg.options import capped_workers

if TYPE_CHECKING:
    from rsna_pkg.preprocess.config import PreprocessConfig

log = logging.getLogger(__name__)


# vflip is the flip training augments with; hflip mirrors the breast to the right side,
# which preprocessing never produces (kept for comparison: benchmarks/tta.py measures both).
TTA_FLIP_DIM = {"vflip": -2, "hflip": -1}


class ScorerConfig(Protocol):
    """What inference reads of a model's config (ModelConfig has it all)."""

    @property
    def preprocess(self) -> PreprocessConfig: ...
    @property
    def threshold(self) -> float: ...
    @property
    def prevalence(self) -> float: ...
    @property
    def aggregation(self) -> str: ...


class Scorer(Protocol):
    """A model as inference uses it: models.checkpoint.LoadedModel, or a test's stand-in."""

    @property
    def config(self) -> ScorerConfig: ...
    def image_tensor(self, img: np.ndarray) -> torch.Tensor: ...
    def encode_metadata(self, df: pd.DataFrame) -> torch.Tensor | None: ...
    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor: ...
    def metadata_only_proba(self, df: pd.DataFrame) -> np.ndarray | None: ...


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
    skipped_models: list[str] = field(default_factory=list)  # checkpoint, reason
    checkpoints: list[str] = field(default_factory=list)  # every --model, folders expanded
    unscored: list[str] = field(default_factory=list)  # test.csv breasts not in the sample


# test.csv columns a model can do without: a missing one is read as unknown values.
OPTIONAL_TEST_COLUMNS: tuple[str, ...] = tuple(
    c for c in TEST_TIME_COLUMNS if c not in ("patient_id", "image_id", "laterality")
)
# Failed images written to the log one line each; the report lists them all.
MAX_FAILURE_LINES = 20


def read_test_table(data: Path, split: str) -> pd.DataFrame:
    """<data>/<split>.csv, validated before any work; a prediction_id for every row.

    Unusable rows are skipped with one line each (see ``schema.read_table``). When the
    whole file is unusable but ``sample_submission.csv`` is there (the Kaggle case), the
    run goes on with no test rows, so every sample breast gets its fallback value, after
    one line saying why; without a sample submission there is nothing to predict and the
    InputError stands.
    """
    sample = Path(data) / "sample_submission.csv"

    def warn(message: str) -> None:
        log.warning(f"infer: WARNING: {message}")

    try:
        table = read_table(Path(data) / f"{split}.csv", split, warn, OPTIONAL_TEST_COLUMNS)
    except InputError as exc:
        if split != "test" or not sample.is_file():
            raise
        log.warning(f"infer: WARNING: {exc}; every breast of {sample.name} gets its fallback value")
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in TEST_COLUMNS})
        table["patient_id"] = table["patient_id"].astype(np.int64)
        table["image_id"] = table["image_id"].astype(np.int64)
    if "prediction_id" not in table.columns:  # train.csv used as a test set
        table["prediction_id"] = prediction_ids(table)
    table["prediction_id"] = table["prediction_id"].astype(str)
    return table.reset_index(drop=True)


def load_models(paths: Sequence[Path], device: str) -> tuple[list[Scorer], list[str]]:
    """Load every checkpoint; one that cannot be used is skipped with one line naming it,
    as long as another one loads (an ensemble loses a member, not the submission). With
    none usable, the first checkpoint's InputError is raised."""
    from rsna_pkg.models.checkpoint import load_checkpoint

    check_model_paths(paths)
    models: list[Scorer] = []
    skipped: list[str] = []
    first_error: InputError | None = None
    for p in paths:
        try:
            loaded = load_checkpoint(p, device=device)
        except InputError as exc:
            first_error = first_error or exc
            skipped.append(one_line(exc, 500))
            continue
        models.append(loaded)
    if not models:
        assert first_error is not None
        raise first_error
    for message in skipped:
        log.warning(f"infer: WARNING: skipping checkpoint: {message}")
    return models, skipped


def model_files(args: Sequence[Path]) -> list[Path]:
    """The checkpoint files the --model arguments name: a folder is every model.pt under it
    (a K-fold training output: its fold_<i>/model.pt), else its *.pt (``checkpoint_files``)."""
    from rsna_pkg.models.checkpoint import checkpoint_files

    files: list[Path] = []
    for arg in args:
        found = checkpoint_files(arg)
        if Path(arg).is_dir():
            names = ", ".join(str(p.relative_to(arg)) for p in found)
            log.info(f"infer: {arg}: {len(found)} checkpoint(s): {names}")
        files += found
    return files


def check_model_paths(paths: Sequence[Path]) -> None:
    if not paths:
        raise FieldError("models", "give at least one checkpoint")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: checkpoint not found")


def group_by_preprocess(models: Sequence[Scorer]) -> list[tuple[PreprocessConfig, list[int]]]:
    """(PreprocessConfig, indices of the models using it), one entry per distinct config,
    in first-use order, so each distinct config decodes the test set once."""
    groups: dict[str, tuple[PreprocessConfig, list[int]]] = {}
    for i, m in enumerate(models):
        cfg = m.config.preprocess
        key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        groups.setdefault(key, (cfg, []))[1].append(i)
    return list(groups.values())


def model_probabilities(
    loaded: Scorer, images: np.ndarray, rows: pd.DataFrame, tta: str
) -> np.ndarray:
    """(B,) probabilities of one model for a batch of preprocessed images (B, H, W),
    averaged over the original and, with ``tta`` vflip or hflip, the flipped image."""
    x = torch.stack([loaded.image_tensor(im) for im in images])  # (B, 1, H, W) float32
    meta = loaded.encode_metadata(rows)  # (B, F) | None
    if tta != "none":
        x = torch.cat([x, x.flip(TTA_FLIP_DIM[tta])])  # (2B, 1, H, W): one forward, both views
        meta = None if meta is None else torch.cat([meta, meta])
    # LoadedModel.forward moves to its device (channels_last, AMP on CUDA) and returns CPU.
    with torch.inference_mode():
        logits = loaded.forward(x, meta).float().reshape(-1)  # (B,) or (2B,)
    probs = torch.sigmoid(logits).cpu().numpy().astype(np.float64)
    return probs.reshape(2, -1).mean(axis=0) if tta != "none" else probs


def breast_fallbacks(
    models: Sequence[Scorer], rows: pd.DataFrame, how: Aggregation
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
    models: Sequence[Scorer] | None = None,
) -> InferResult:
    """The whole run: validate inputs, load the checkpoints (unless ``models`` are given),
    stream, assemble and write. Bad inputs raise InputError before any decoding."""
    t0 = time.perf_counter()
    table = read_test_table(opts.data, opts.split)
    seconds = {"read_csv": time.perf_counter() - t0}
    t0 = time.perf_counter()
    skipped: list[str] = []
    checkpoints: list[Path] = []
    if models is None:
        try:
            checkpoints = model_files(opts.models)
            models, skipped = load_models(checkpoints, runtime.device)
        except InputError as exc:
            write_prior_submission(opts, table, exc)
            raise
    check_models(models, opts)
    runtime = settle_backend(runtime, [m.config.preprocess for m in models])
    seconds["load_models"] = time.perf_counter() - t0
    image_dir = Path(opts.data) / f"{opts.split}_images"
    if not image_dir.is_dir():
        log.warning(f"infer: WARNING: {image_dir} does not exist; every breast gets its fallback")
    result = run_inference(opts, table, models, runtime)
    result.seconds = {**seconds, **result.seconds}
    result.runtime = runtime
    result.skipped_models = skipped
    result.checkpoints = [str(p) for p in checkpoints]
    log_failures(result.failures)
    return result


# The competition's training set: 492 of 23,826 breasts positive (shared/reference).
PRIOR_PREVALENCE = 492 / 23826


def write_prior_submission(opts: InferOptions, table: pd.DataFrame, cause: InputError) -> None:
    """No checkpoint is usable: still write every prediction_id (the training prevalence for
    each), so nothing is lost, and say so in the error the run then ends with."""
    sample = Path(opts.data) / "sample_submission.csv" if opts.split == "test" else None
    order = sub.submission_order(table["prediction_id"].tolist(), sample)
    frame = sub.assemble(order, pd.Series(dtype=np.float64), {}, PRIOR_PREVALENCE, None)
    sub.validate_submission(frame, order)
    sub.write_submission(frame, opts.out)
    cause.args = (f"{cause}; wrote {opts.out} with the prior {PRIOR_PREVALENCE:.4f} for all "
                  f"{len(frame)} prediction_ids (no usable checkpoint)",)  # fmt: skip


def log_failures(failures: Sequence[dict[str, Any]]) -> None:
    """One line per failed image (file and reason), the first MAX_FAILURE_LINES of them."""
    for f in failures[:MAX_FAILURE_LINES]:
        scored = " (scored by another model)" if f["scored_by_another_model"] else ""
        log.warning(f"infer: failed {f['path']}: {f['reason']}{scored}")
    if len(failures) > MAX_FAILURE_LINES:
        log.warning(
            f"infer: ... {len(failures) - MAX_FAILURE_LINES} more failed images (--report lists all)"
        )


def check_models(models: Sequence[Scorer], opts: InferOptions) -> None:
    """Warn when --agg differs from the aggregation a stored threshold was fitted with."""
    for i, m in enumerate(models):
        stored_agg = m.config.aggregation
        if opts.threshold == "stored" and stored_agg != opts.agg:
            log.warning(
                f"infer: WARNING: model {i} threshold was fitted with --agg {stored_agg}, "
                f"aggregating with {opts.agg}"
            )


def run_inference(
    opts: InferOptions,
    table: pd.DataFrame,
    models: Sequence[Scorer],
    runtime: Runtime,
) -> InferResult:
    """Score every row of the test table with every model, then write the submission."""
    paths = [
        image_path(opts.data, opts.split, int(p), int(i))
        for p, i in zip(table["patient_id"], table["image_id"], strict=True)
    ]
    n = len(table)
    workers, capped = capped_workers("--workers", opts.workers, n, "images")
    if capped and n:
        log.info(f"infer: {capped}")
    prob_sum = np.zeros(n, dtype=np.float64)
    prob_count = np.zeros(n, dtype=np.int64)
    failures: dict[int, str] = {}
    decode_cpu = wait = model_s = 0.0
    stream_start = time.perf_counter()
    groups = group_by_preprocess(models)
    for g, (cfg, members) in enumerate(groups):
        log.info(
            f"infer: pass {g + 1}/{len(groups)}: {n} images, models {members}, {runtime.describe()}"
        )
        batches = runtime.batches(paths, cfg, opts.batch_size, workers, opts.prefetch)
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
                log.info(f"infer: {min((b + 1) * opts.batch_size, n)}/{n} images")
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
    members: Sequence[Scorer],
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
                    failed.append((int(idx), f"model {m} failed: {describe(exc)}"))
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
    models: Sequence[Scorer],
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
    order = sub.submission_order(table["prediction_id"].tolist(), sample,
                                 lambda m: log.warning(f"infer: WARNING: {m}"))  # fmt: skip
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
    result = InferResult(frame, table, image_probs, failed, no_image, threshold)
    result.unscored = sub.unscored(table["prediction_id"].tolist(), order)
    return result
