"""Training ablation: the baseline and one change at a time, in one table.

Every variant is a real ``rsna train`` run (the same option parser, ``run_training``, the
same seed, hence the same patient split) into OUT/<variant>/; the table gives the
breast-level validation AUC, pF1 at the best threshold and the seconds each run took.
Defaults: the baseline, + auxiliary heads, + the batch-balanced sampler and + 2x resolution
(the last needs ``--images-2x``, an ``rsna preprocess`` folder of the same split at twice
the size). ``--cumulative`` stacks the changes instead. ``--reuse`` takes a variant's
finished run from OUT/<variant>/ instead of training it again when its config.json is this
very configuration (a long table can be resumed, or assembled from runs made by hand).
``--seeds 1,2,3`` trains every variant once per seed (OUT/<variant>/seed_<s>/, each seed its
own split and initialisation, shared by all variants) and reports mean +- sd over the seeds;
``--train-auc`` adds the best checkpoint's per-breast AUC on its own training split and the
train - val gap (overfitting), cached in each run folder as train_side.json.

rsna bench ablation --data D --images I --size H W --images-2x I2 --out O \
    --common "--backbone resnet18 --epochs 12 --seed 1"
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from rsna_pkg.outputs import RunFolder

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
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: the table of the finished runs so far (a study "
                             "that goes on across sessions), listing the runs still missing")  # fmt: skip
    parser.add_argument("--seeds", type=seed_list, default=None, metavar="S,S,...",
                        help="train every variant once per seed; report mean +- sd")  # fmt: skip
    parser.add_argument("--train-auc", action="store_true",
                        help="also score each best checkpoint on its training split")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")


def seed_list(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]: distinct non-negative integers."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 1,2,3") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct non-negative integers")
    return seeds


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
    from rsna_pkg.train.history import write_json
    from rsna_pkg.train.loop import run_training

    parser = argparse.ArgumentParser(prog="rsna train")
    command.add_arguments(parser)
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    plan = [(name, options, seed) for name, options in variants(args)
            for seed in (args.seeds or [None])]  # fmt: skip
    for name, options, seed in plan:  # parse every run before the first one starts
        _parse(parser, args, name, options, seed)
    for name, options, seed in plan:
        train_args = absolute_paths(_parse(parser, args, name, options, seed))
        cfg = command.config_from_args(train_args, train_args.backbone)
        metrics = finished_run(cfg, train_args.out) if args.reuse or args.finished_only else None
        reused = metrics is not None
        if metrics is None and args.finished_only:
            missing.append(f"{name}{'' if seed is None else f' seed {seed}'}")
            continue
        print(f"=== {name}{'' if seed is None else f' seed {seed}'}: "
              f"{options or '(base options)'}"
              + (f" (reused: {train_args.out})" if reused else ""), flush=True)  # fmt: skip
        if metrics is None:
            metrics = run_training(cfg, train_args.data, train_args.images, train_args.out)
        history = pd.read_csv(RunFolder(train_args.out).history)
        row = {
            "variant": name, "options": options, "seed": seed, "reused": reused,
            **{k: metrics.get(k) for k in COLUMNS[2:-1]},
            # the run's own wall time, set-up to last epoch (history.csv), reused or not
            "seconds": float(history["elapsed_seconds"].iloc[-1]),
        }  # fmt: skip
        if args.train_auc:
            row["train_auc"] = train_auc(cfg, train_args)
            row["auc_gap"] = row["train_auc"] - row["val_auc"]
        rows.append(row)
    if args.seeds:
        table = format_seed_table(summarise(rows), args.common, args.seeds)
    else:
        table = format_table(rows, args.common)
    if missing:
        table += f"\nNot run yet ({len(missing)}): {', '.join(missing)}\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text(table)
    if args.json:
        summary = summarise(rows) if args.seeds else None
        write_json(args.json, {"common": args.common, "seeds": args.seeds, "rows": rows,
                               "summary": summary, "missing": missing})  # fmt: skip
    return 0


def train_auc(cfg: Any, train_args: argparse.Namespace) -> float:
    """The best checkpoint's per-breast AUC on its training split, kept in the run folder
    (train_side.json) for as long as model.pt is the one it was computed from."""
    import json

    from rsna_pkg.train.study import train_side_scores

    out: Path = train_args.out
    stat = RunFolder(out).model.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    cache = out / "train_side.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("model_stamp") == stamp:
            return float(saved["train_auc"])
    side = train_side_scores(out, cfg, train_args.data, train_args.images)
    cache.write_text(json.dumps({**side, "model_stamp": stamp}, indent=2))
    return float(side["train_auc"])


SUMMARY_KEYS = ("val_auc", "val_pf1_best", "train_auc", "auc_gap", "seconds")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant, in the plan's order: mean and sample sd of each measure over its
    seeds (sd 0 for a single run), the seeds and each seed's best epoch."""
    import statistics

    summary: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == name]
        entry: dict[str, Any] = {"variant": name, "options": runs[0]["options"],
                                 "seeds": [r["seed"] for r in runs],
                                 "best_epochs": [r["best_epoch"] for r in runs]}  # fmt: skip
        for key in SUMMARY_KEYS:
            values = [float(r[key]) for r in runs if r.get(key) is not None]
            if values:
                entry[key] = statistics.fmean(values)
                # one run has no spread to report (None, not a misleading 0)
                entry[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(entry)
    return summary


def format_seed_table(summary: list[dict[str, Any]], common: str, seeds: list[int]) -> str:
    gap = any("auc_gap" in s for s in summary)
    lines = [f"Training ablation (`rsna train {common}`), breast-level validation, "
             f"mean +- sd over seeds {','.join(map(str, seeds))}", "",
             "| variant | val AUC | pF1 @ best thr | " + ("train - val AUC | " if gap else "")
             + "seed (best epoch) | seconds |", "|" + " --- |" * (6 if gap else 5)]  # fmt: skip
    for s in summary:
        cells = [s["variant"], _pm(s, "val_auc"), _pm(s, "val_pf1_best"),
                 *([_pm(s, "auc_gap")] if gap else []),
                 ", ".join(f"{seed} ({epoch})" for seed, epoch in zip(s["seeds"], s["best_epochs"],
                                                                      strict=True)),
                 f"{s['seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pm(summary: dict[str, Any], key: str) -> str:
    if key not in summary:
        return "n/a"
    sd = summary[key + "_sd"]
    return f"{summary[key]:.3f}" if sd is None else f"{summary[key]:.3f} +- {sd:.3f}"


# Parts of a run's config.json that training fits or that do not change its results.
FITTED_MODEL_KEYS = ("metadata", "prevalence", "fallback_coef", "fallback_intercept", "threshold")
RUN_ONLY_KEYS = ("workers", "threads", "device")


def finished_run(cfg: Any, out: Path) -> dict[str, Any] | None:
    """metrics.json of a finished run in ``out`` whose config.json is ``cfg`` (what training
    fits aside, and the input size for the images' whole preprocess config), else None."""
    import json

    from rsna_pkg.train.config import TrainConfig

    run = RunFolder(out)
    paths = [run.metrics, run.config, run.history]
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
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    name: str,
    options: str,
    seed: int | None = None,
) -> argparse.Namespace:
    """The run's `rsna train` options: base, then --common, then the variant's own
    (argparse keeps the last of a repeated option, so a variant can replace --images), then
    the seed of a --seeds run, which overrides any --seed before it."""
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "run"
    out = args.out / slug if seed is None else args.out / slug / f"seed_{seed}"
    argv = ["--data", str(args.data), "--images", str(args.images), "--out",
            str(out), "--size", *map(str, args.size),
            *shlex.split(args.common), *shlex.split(options),
            *([] if seed is None else ["--seed", str(seed)])]  # fmt: skip
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
