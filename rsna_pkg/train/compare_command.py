"""Train several backbones under the same budget and split, and rank them.

Each variant (``BACKBONE[@FREEZE]``, see ``train/study.py``; ``--study notebooks`` lists the
seed's study) trains with identical options and seed (hence the same patient split) into
OUT/<variant>/; OUT/comparison.csv, OUT/comparison.md and OUT/comparison.png summarise
the best epoch of each, the best one marked, with the best checkpoint's AUC on its own
training split beside the validation AUC (the gap is overfitting).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.outputs import RunFolder
from rsna_pkg.train.command import (
    LIBRARY_FLAGS,
    add_common_arguments,
    check_output_folder,
    config_from_args,
    with_weights,
    worker_count,
)

COLUMNS: tuple[str, ...] = (
    "backbone", "val_auc", "val_pf1_best", "val_pf1", "threshold", "image_auc", "train_auc",
    "auc_gap", "train_loss", "best_epoch", "train_seconds", "params_m", "trainable_m",
    "freeze", "metadata", "weights",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rsna_pkg.train.study import STUDIES, STUDY_ALIASES

    add_common_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--backbones",
        help="comma-separated BACKBONE[@FREEZE], e.g. resnet18,vgg11@classifier,timm:convnext_small",
    )
    which.add_argument("--study", choices=[*STUDIES, *STUDY_ALIASES], metavar="|".join(STUDIES),
                       help="a preset list; notebooks (the four-notebook study): "
                       + ",".join(STUDIES["notebooks"]))  # fmt: skip


def parse_backbones(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names:
        raise InputError("--backbones: give at least one backbone name")
    if len(set(names)) != len(names):
        raise InputError(f"--backbones {text!r}: a backbone is listed twice")
    return names


def run(args: argparse.Namespace) -> int:
    """The comparison; a setting the library refuses is named by its flag."""
    from rsna_pkg.cli_options import flags_in_errors
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.train.config import TrainConfig

    with flags_in_errors(TrainConfig, ModelConfig, **LIBRARY_FLAGS):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rsna_pkg.models.zoo import build_backbone
    from rsna_pkg.train.loop import run_training
    from rsna_pkg.train.study import (
        STUDIES,
        STUDY_ALIASES,
        random_frozen_note,
        resolve_variants,
        train_side_scores,
    )

    if args.study is None and args.backbones is None:
        raise InputError("give --backbones a,b,c or --study " + "|".join(STUDIES))
    if args.study in STUDY_ALIASES:
        new = STUDY_ALIASES[args.study]
        print(f"note: --study {args.study} is now --study {new}", file=sys.stderr)
        args.study = new
    check_output_folder(args)
    args.workers = worker_count(args)  # capped once, not per variant
    names = list(STUDIES[args.study]) if args.study else parse_backbones(args.backbones)
    variants = resolve_variants(names, args.freeze, args.pretrained, args.pretrained_dir)
    configs = {  # validate all first
        v.name: with_weights(
            config_from_args(args, v.backbone).with_(freeze=v.freeze), v.pretrained
        )  # fmt: skip
        for v in variants
    }
    for v in variants:  # a wrong weights file fails now, not hours into the study
        if v.pretrained:
            build_backbone(v.backbone, v.pretrained)
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    for v in variants:
        print(f"=== {v.name} (freeze={v.freeze}, weights={v.pretrained or 'random'}) ===")
        cfg, run_dir = configs[v.name], out / v.folder
        metrics = run_training(cfg, args.data, args.images, run_dir)
        history = pd.read_csv(RunFolder(run_dir).history).set_index("epoch")
        side = train_side_scores(run_dir, cfg, args.data, args.images)
        rows.append({
            "backbone": v.name,
            **{k: metrics.get(k) for k in ("val_auc", "val_pf1_best", "val_pf1", "threshold",
                                           "best_epoch", "train_seconds")},
            "image_auc": metrics["per_image"]["auc"],
            **side,
            "auc_gap": side["train_auc"] - metrics["val_auc"],
            "train_loss": float(history.loc[metrics["best_epoch"], "train_loss"]),
            "freeze": v.freeze,
            "metadata": cfg.model.use_metadata,
            "weights": Path(v.pretrained).name if v.pretrained else "random",
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    key = "val_auc" if args.monitor == "auc" else "val_pf1_best"
    best = write_comparison(out, table, key, note=random_frozen_note(variants))
    print(f"best by {key}: {best}  -> {out / 'comparison.md'}")
    return 0


def write_comparison(out: Path, table: Any, key: str, note: str = "") -> str:
    """Write comparison.csv/.md/.png; return the best backbone by ``key``."""
    table = table.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    best = str(table.loc[0, "backbone"])
    table["best"] = table["backbone"] == best
    table.to_csv(out / "comparison.csv", index=False)
    lines = [
        f"# Backbone comparison (ranked by {key}, per breast)",
        "",
        *([f"**Note:** {note}.", ""] if note else []),
        "val_*: validation split, per breast (pF1 at the best threshold, and raw); train_auc: "
        "the best checkpoint on its own training split (no augmentation); auc_gap = "
        "train_auc - val_auc (large: overfitting); train_loss: the best epoch's; params in "
        "millions, trainable under the freeze mode.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + " --- |" * len(COLUMNS),
    ]
    for r in table.itertuples(index=False):
        cells = [_fmt(getattr(r, c)) for c in COLUMNS]
        if r.best:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append("| " + " | ".join(cells) + " |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    _bar_chart(out / "comparison.png", table, key, best)
    return best


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


BARS: tuple[tuple[str, str], ...] = (
    ("val_auc", "val AUC"), ("val_pf1_best", "val pF1 (best thr.)"), ("train_auc", "train AUC"),
)  # fmt: skip


def _bar_chart(path: Path, table: Any, key: str, best: str) -> None:
    """Grouped bars per variant: validation AUC and pF1, and the train AUC beside them."""
    import numpy as np

    from rsna_pkg.lazy_pyplot import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(table)), 4.0))
    x = np.arange(len(table))
    width = 0.8 / len(BARS)
    for j, (column, label) in enumerate(BARS):
        values = table[column].astype(float).fillna(0.0) if column in table else np.zeros(len(x))
        bars = ax.bar(x + (j - 1) * width, values, width, label=label)
        if column == key:
            for bar, name in zip(bars, table["backbone"], strict=True):
                bar.set_edgecolor("black" if name == best else "none")
        for xi, v in zip(x + (j - 1) * width, values, strict=True):
            ax.text(xi, v, f"{v:.2f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, table["backbone"])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("per breast")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"best by {key}: {best}")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
