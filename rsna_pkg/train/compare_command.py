"""Train several backbones under the same budget and split, and rank them.

Each backbone trains with identical options and seed (hence the same patient
split) into OUT/<backbone>/; OUT/comparison.csv, OUT/comparison.md and
OUT/comparison.png summarise the best epoch of each, the best one marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rsna_pkg.errors import InputError
from rsna_pkg.train.command import add_common_arguments, config_from_args

COLUMNS: tuple[str, ...] = (
    "backbone", "val_auc", "val_pf1_best", "val_pf1", "threshold", "image_auc", "best_epoch",
    "train_seconds", "params_m",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--backbones", required=True, help="comma-separated, e.g. resnet18,vgg11")


def parse_backbones(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names:
        raise InputError("--backbones: give at least one backbone name")
    if len(set(names)) != len(names):
        raise InputError(f"--backbones {text!r}: a backbone is listed twice")
    return names


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rsna_pkg.models.checkpoint import read_checkpoint
    from rsna_pkg.train.loop import run_training

    names = parse_backbones(args.backbones)
    configs = {name: config_from_args(args, name) for name in names}  # validate all first
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"=== {name} ===")
        metrics = run_training(configs[name], args.data, args.images, out / name)
        state = read_checkpoint(out / name / "model.pt")["state_dict"]
        params = sum(int(t.numel()) for t in state.values() if t.is_floating_point())
        rows.append({
            "backbone": name,
            **{k: metrics.get(k) for k in COLUMNS[1:-1] if k != "image_auc"},
            "image_auc": metrics["per_image"]["auc"],
            "params_m": round(params / 1e6, 2),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    key = "val_auc" if args.monitor == "auc" else "val_pf1_best"
    best = write_comparison(out, table, key)
    print(f"best by {key}: {best}  -> {out / 'comparison.md'}")
    return 0


def write_comparison(out: Path, table: Any, key: str) -> str:
    """Write comparison.csv/.md/.png; return the best backbone by ``key``."""
    table = table.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    best = str(table.loc[0, "backbone"])
    table["best"] = table["backbone"] == best
    table.to_csv(out / "comparison.csv", index=False)
    lines = [
        f"# Backbone comparison (ranked by {key}, per breast)",
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


def _bar_chart(path: Path, table: Any, key: str, best: str) -> None:
    from rsna_pkg.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table)), 3.5))
    colors = ["tab:orange" if b == best else "tab:blue" for b in table["backbone"]]
    values = table[key].fillna(0.0)
    ax.bar(table["backbone"], values, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{key} (validation, per breast)")
    ax.set_title(f"best: {best}")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
