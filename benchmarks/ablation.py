"""Training ablation: the baseline and one change at a time, in one table.

Every variant is a real ``rsna train`` run (the same option parser, ``run_training``, the
same seed, hence the same patient split) into OUT/<variant>/; the table gives the
breast-level validation AUC, pF1 at the best threshold and the seconds each run took.
Defaults: the baseline, + auxiliary heads, + the batch-balanced sampler and + 2x resolution
(the last needs ``--images-2x``, an ``rsna preprocess`` folder of the same split at twice
the size). ``--cumulative`` stacks the changes instead. ``--reuse`` takes a variant's
finished run from OUT/<variant>/ instead of training it again when its config.json is this
very configuration (a long table can be resumed, or assembled from runs made by hand).

rsna bench ablation --data D --images I --size H W --images-2x I2 --out O \
    --common "--backbone resnet18 --epochs 12 --seed 1"
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

AUX_ALL = "birads,density,biopsy,invasive,difficult_negative_case"
# Balanced means one positive per negative in every batch. The baseline's default sampler
# already oversamples positives to 25 % of an epoch, so a 0.25 batch sampler would only
# regroup them on real-rate data, and on the enriched realistic set (about half the images
# positive) it would halve their share. --balanced-fraction sets another ratio.
BALANCED_FRACTION = 0.5
CHANGES: dict[str, str] = {
    "+aux heads": f"--aux {AUX_ALL}",
    "+balanced sampler": "--balance batch --pos-fraction {fraction}",
}
COLUMNS: tuple[str, ...] = (
    "variant", "options", "val_auc", "val_pf1_best", "threshold", "val_pf1", "best_epoch",
    "val_positive_breasts", "seconds",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (train.csv)")
    parser.add_argument("--images", type=Path, required=True, help="`rsna preprocess` folder")
    parser.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"))
    parser.add_argument("--images-2x", type=Path, default=None,
                        help="the same split preprocessed at 2H x 2W (adds the +2x row)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="one run folder per variant")
    parser.add_argument("--common", default="", help="`rsna train` options every run gets")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                        help="replace the default variants (repeatable; 'baseline=' is the base)")  # fmt: skip
    parser.add_argument("--balanced-fraction", type=float, default=BALANCED_FRACTION,
                        help="positive share of every batch in the +balanced sampler row")  # fmt: skip
    parser.add_argument("--cumulative", action="store_true", help="each row adds to the last")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a variant's finished run of the same configuration")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")


def variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, extra `rsna train` options) per row, the baseline first."""
    from rsna_pkg.errors import InputError

    if args.variant:
        rows = []
        for spec in args.variant:
            name, sep, options = spec.partition("=")
            if not sep or not name.strip():
                raise InputError(f"--variant {spec!r}: expected NAME=OPTIONS")
            rows.append((name.strip(), options.strip()))
        return rows
    rows = [("baseline", ""),
            *((name, o.format(fraction=args.balanced_fraction)) for name, o in CHANGES.items())]  # fmt: skip
    if args.images_2x is not None:
        h, w = args.size
        rows.append(("+2x resolution", f"--images {shlex.quote(str(args.images_2x))} "
                                       f"--size {2 * h} {2 * w}"))  # fmt: skip
    if args.cumulative:
        rows = [(name, " ".join(o for _, o in rows[: i + 1]).strip())
                for i, (name, _) in enumerate(rows)]  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rsna_pkg.cli import absolute_paths
    from rsna_pkg.train import command
    from rsna_pkg.train.loop import run_training
    from rsna_pkg.train.report import write_json

    parser = argparse.ArgumentParser(prog="rsna train")
    command.add_arguments(parser)
    rows: list[dict[str, Any]] = []
    plan = variants(args)
    for name, options in plan:  # parse every variant before the first run starts
        _parse(parser, args, name, options)
    for name, options in plan:
        train_args = absolute_paths(_parse(parser, args, name, options))
        cfg = command.config_from_args(train_args, train_args.backbone)
        metrics = finished_run(cfg, train_args.out) if args.reuse else None
        reused = metrics is not None
        print(f"=== {name}: {options or '(base options)'}"
              + (f" (reused: {train_args.out})" if reused else ""), flush=True)  # fmt: skip
        if metrics is None:
            metrics = run_training(cfg, train_args.data, train_args.images, train_args.out)
        history = pd.read_csv(train_args.out / "history.csv")
        rows.append({
            "variant": name, "options": options, "reused": reused,
            **{k: metrics.get(k) for k in COLUMNS[2:-1]},
            # the run's own wall time, set-up to last epoch (history.csv), reused or not
            "seconds": float(history["elapsed_seconds"].iloc[-1]),
        })  # fmt: skip
    table = format_table(rows, args.common)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text(table)
    if args.json:
        write_json(args.json, {"common": args.common, "rows": rows})
    return 0


# Parts of a run's config.json that training fits or that do not change its results.
FITTED_MODEL_KEYS = ("metadata", "prevalence", "fallback_coef", "fallback_intercept", "threshold")
RUN_ONLY_KEYS = ("workers", "threads", "device")


def finished_run(cfg: Any, out: Path) -> dict[str, Any] | None:
    """metrics.json of a finished run in ``out`` whose config.json is ``cfg`` (what training
    fits aside, and the input size for the images' whole preprocess config), else None."""
    import json

    from rsna_pkg.train.config import TrainConfig

    paths = [out / n for n in ("metrics.json", "config.json", "history.csv")]
    if not all(p.is_file() for p in paths):
        return None
    saved = TrainConfig.from_dict(json.loads(paths[1].read_text()))
    if comparable(saved) != comparable(cfg):
        print(f"{out}: another configuration; training it again")
        return None
    return dict(json.loads(paths[0].read_text()))


def comparable(cfg: Any) -> dict[str, Any]:
    d = {k: v for k, v in cfg.to_dict().items() if k not in RUN_ONLY_KEYS}
    model = {k: v for k, v in d.pop("model").items() if k not in FITTED_MODEL_KEYS}
    model["preprocess"] = (cfg.model.height, cfg.model.width)
    return {**d, "model": model}


def _parse(
    parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, options: str
) -> argparse.Namespace:
    """The variant's `rsna train` options: base, then --common, then the variant's own
    (argparse keeps the last of a repeated option, so a variant can replace --images)."""
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "run"
    argv = ["--data", str(args.data), "--images", str(args.images), "--out",
            str(args.out / slug), "--size", *map(str, args.size),
            *shlex.split(args.common), *shlex.split(options)]  # fmt: skip
    return parser.parse_args(argv)


def format_table(rows: list[dict[str, Any]], common: str) -> str:
    lines = [f"Training ablation (`rsna train {common}`), breast-level validation", "",
             "| variant | val AUC | pF1 @ best thr | best thr | pF1 (probabilities) | best epoch | "
             "val + breasts | seconds |", "|" + " --- |" * 8]  # fmt: skip
    for r in rows:
        cells = [r["variant"] + (" (reused run)" if r.get("reused") else ""),
                 *(_fmt(r[k]) for k in COLUMNS[2:-1]), f"{r['seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) and not isinstance(v, bool) else str(v)


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["ablation", *sys.argv[1:]]))
