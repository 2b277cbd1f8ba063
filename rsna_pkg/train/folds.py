"""K-fold training: every fold of one patient split, then the out-of-fold (OOF) evaluation.

``rsna train --folds K`` (without ``--fold``) trains OUT/fold_<i>/ for i in 0..K-1, each an
ordinary run (``run_training`` with ``fold=i``: the same table and seed give every fold the same
StratifiedGroupKFold split, checked through each fold's split.csv). Each fold's best epoch left
its held-out patients' predictions in ``val_predictions.csv``; together they score every training
image once, by a model that never saw it: OUT/oof.csv, scored like one validation set
(``evaluate.score``) into OUT/metrics.json. The OOF best threshold is then written into every
fold's model.pt, so ``rsna infer --model OUT`` (an ensemble of the K checkpoints, binarised at
the mean of their stored thresholds) decides with it. ``--resume`` skips finished folds (those
with metrics.json) and resumes the one that has a last.pt.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.splits import load_split
from rsna_pkg.errors import InputError
from rsna_pkg.metrics import pfbeta_at
from rsna_pkg.models.checkpoint import update_config
from rsna_pkg.outputs import FOLD_PREFIX, LAST_NAME, RunFolder, atomic_write_text
from rsna_pkg.train.config import TrainConfig
from rsna_pkg.train.evaluate import per_breast, score
from rsna_pkg.train.history import write_json
from rsna_pkg.train.loop import resume_values, run_training

OOF_COLUMNS: tuple[str, ...] = (
    "patient_id", "image_id", "prediction_id", "fold", "cancer", "probability",
)  # fmt: skip
# What each fold contributes to metrics.json's per_fold list (from its own metrics.json).
FOLD_KEYS: tuple[str, ...] = (
    "val_auc", "val_pf1", "val_pf1_best", "threshold", "best_epoch", "train_images", "val_images",
)  # fmt: skip

log = logging.getLogger(__name__)


def run_folds(
    cfg: TrainConfig,
    data_dir: str | Path,
    images_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the ``cfg.folds`` folds, then write OUT/oof.csv, OUT/metrics.json and the OOF
    threshold into each fold's model.pt; return the OOF metrics ({} on DDP ranks > 0)."""
    if cfg.folds < 2:
        raise FieldError("folds", "K-fold training needs at least 2 folds", value=cfg.folds)
    out = RunFolder(Path(out_dir))
    folds = [out.fold(i) for i in range(cfg.folds)]
    if resume and not any(f.last.is_file() for f in folds):
        raise FieldError("resume", f"no {out.root}/{FOLD_PREFIX}<i>/{LAST_NAME}; nothing to resume")
    for i, fold in enumerate(folds):
        if resume and fold.metrics.is_file():
            check_same_run(cfg, fold.root)
            log.info(f"fold {i}: finished, skipped ({fold.root})")
            continue
        log.info(f"=== fold {i + 1}/{cfg.folds} -> {fold.root}")
        again = resume and fold.last.is_file()
        run_training(cfg.with_(fold=i), data_dir, images_dir, fold.root, resume=again)
    if os.environ.get("RANK", "0") != "0":
        return {}  # DDP: rank 0 writes the OOF outputs
    oof = collect_oof(out.root, cfg.folds)
    atomic_write_text(out.oof, oof.to_csv(index=False))
    metrics = oof_metrics(oof, cfg.model.aggregation, [_fold_metrics(f.root) for f in folds])
    write_json(out.metrics, metrics)
    for fold in folds:
        update_config(fold.model, threshold=metrics["threshold"])
    return metrics


def check_same_run(cfg: TrainConfig, folder: Path) -> None:
    """A finished fold joins this run only if trained with the same model, seed and folds."""
    path = RunFolder(folder).config
    if not path.is_file():
        raise FieldError("resume", f"{path} not found; cannot tell how this fold was trained")
    saved = TrainConfig.from_dict(json.loads(path.read_text()))
    have = {**resume_values(saved), "folds": saved.folds}
    want = {**resume_values(cfg), "folds": cfg.folds}
    for key, value in want.items():
        if have[key] != value:
            raise FieldError(
                "resume",
                f"{folder} was trained with {key}={have[key]!r}, this run asks for {value!r}",
            )


def collect_oof(out: Path, folds: int) -> pd.DataFrame:
    """Every fold's best-epoch validation predictions, with the fold that held them out;
    refused when the folds were not trained on one split or a file is stale."""
    run = RunFolder(out)
    first = _split(run.fold(0).root)
    parts = []
    for i in range(folds):
        folder = run.fold(i).root
        if i and not _split(folder).equals(first):
            raise InputError(
                f"{run.fold(i).split}: not the patient split of {run.fold(0).root}; "
                "retrain without resuming"
            )
        path = run.fold(i).val_predictions
        if not path.is_file():
            raise InputError(f"{path}: not found; retrain fold {i}")
        preds = pd.read_csv(path, dtype={"prediction_id": str})
        best = _fold_metrics(folder).get("best_epoch")
        if set(preds["epoch"]) != {best}:
            raise InputError(f"{path}: not from the best epoch ({best}); retrain fold {i}")
        parts.append(preds.assign(fold=i))
    oof = pd.concat(parts, ignore_index=True)
    return oof.sort_values(["patient_id", "image_id"], kind="stable")[list(OOF_COLUMNS)]


def oof_metrics(
    oof: pd.DataFrame, aggregation: str, per_fold: list[dict[str, Any]]
) -> dict[str, Any]:
    """The OOF set scored as one validation set (per breast: AUC, pF1 of the probabilities,
    pF1 binarised at 0.5, best pF1 and its threshold; the same per image) + each fold's own."""
    oof = oof.reset_index(drop=True)
    probs = oof["probability"].to_numpy(dtype=float)
    s = score(oof, probs, aggregation)
    breast_y, breast_p = per_breast(oof, probs, aggregation)
    per_breast_metrics = {k: s[k] for k in ("val_auc", "val_pf1", "val_pf1_best", "threshold")}
    return {
        **per_breast_metrics,
        "val_pf1_at_0.5": pfbeta_at(breast_y, breast_p, 0.5),
        "folds": len(per_fold),
        "aggregation": aggregation,
        "per_breast": dict(per_breast_metrics),
        "per_image": {
            "auc": s["image_auc"],
            "pf1": s["image_pf1"],
            "pf1_best": s["image_pf1_best"],
            "threshold": s["image_threshold"],
        },
        "oof_images": s["val_images"],
        "oof_breasts": s["val_breasts"],
        "oof_positive_breasts": s["val_positive_breasts"],
        "per_fold": [
            {"fold": i, **{k: m.get(k) for k in FOLD_KEYS}} for i, m in enumerate(per_fold)
        ],
    }


def _split(folder: Path) -> pd.DataFrame:
    split = load_split(RunFolder(folder).split)
    return split[["patient_id", "fold"]].sort_values("patient_id").reset_index(drop=True)


def _fold_metrics(folder: Path) -> dict[str, Any]:
    path = RunFolder(folder).metrics
    if not path.is_file():
        raise InputError(f"{path}: not found; the fold did not finish")
    result: dict[str, Any] = json.loads(path.read_text())
    return result
