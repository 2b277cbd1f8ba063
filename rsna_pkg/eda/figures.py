"""Matplotlib figures of the EDA report. Each ``draw_*`` takes the exact numbers
that summary.json stores for it and returns a Figure; :func:`save_png` writes it.

matplotlib comes from :func:`rsna_pkg.lazy_pyplot.pyplot` (Agg, chosen on first use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsna_pkg.lazy_pyplot import pyplot

DPI = 100
BAR = "#4c72b0"
POS = "#c44e52"


def save_png(fig: Any, path: Path, tight: bool = True) -> Path:
    """Write ``fig`` as PNG and free it. ``tight=False`` skips the extra layout pass
    (for figures that already called ``tight_layout``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return path


def _label_bars(ax: Any, bars: Any, labels: Sequence[str]) -> None:
    for bar, text in zip(bars, labels, strict=True):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )


def draw_class_balance(balance: Mapping[str, Mapping[str, float]]) -> Any:
    """Positives and negatives per image, breast and patient, with the rate."""
    plt = pyplot()
    levels = list(balance)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(levels))
    neg = [balance[lv]["negative"] for lv in levels]
    pos = [balance[lv]["positive"] for lv in levels]
    bars = ax.bar(x - 0.2, neg, 0.4, color=BAR, label="negative")
    _label_bars(ax, bars, [str(int(n)) for n in neg])
    bars = ax.bar(x + 0.2, pos, 0.4, color=POS, label="cancer")
    rates = [balance[lv]["rate"] for lv in levels]
    _label_bars(ax, bars, [f"{int(p)} ({100 * r:.2f}%)" for p, r in zip(pos, rates, strict=True)])
    ax.set_xticks(x, levels)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8, top=max(max(neg), 1) * 3)  # bars start near 1; room for labels
    ax.set_ylabel("count (log scale)")
    ax.set_xlabel("level")
    ax.set_title("Class balance per image, breast and patient")
    ax.legend()
    return fig


def draw_rate(records: Sequence[Mapping[str, Any]], column: str) -> Any:
    """Left: images per value of ``column``; right: cancer rate with cancer/images."""
    plt = pyplot()
    values = [str(r["value"]) for r in records]
    x = np.arange(len(values))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    bars = ax1.bar(x, [r["images"] for r in records], color=BAR)
    _label_bars(ax1, bars, [str(int(r["images"])) for r in records])
    ax1.set_xticks(x, values, rotation=45 if len(values) > 6 else 0)
    ax1.set_xlabel(column)
    ax1.set_ylabel("images")
    ax1.set_title(f"Images by {column}")
    bars = ax2.bar(x, [100 * r["rate"] for r in records], color=POS)
    _label_bars(ax2, bars, [f"{int(r['cancer'])}/{int(r['images'])}" for r in records])
    ax2.set_xticks(x, values, rotation=45 if len(values) > 6 else 0)
    ax2.set_xlabel(column)
    ax2.set_ylabel("cancer rate per image (%)")
    ax2.set_title(f"Cancer rate by {column} (cancer/images)")
    fig.tight_layout()
    return fig


def draw_missing(missing: Mapping[str, int], rows: int) -> Any:
    """Empty cells per column, labelled with count and share of rows."""
    plt = pyplot()
    cols = list(missing)
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(cols, [missing[c] for c in cols], color=BAR)
    _label_bars(ax, bars, [f"{missing[c]} ({100 * missing[c] / max(rows, 1):.0f}%)" for c in cols])
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_xlabel("column")
    ax.set_ylabel("missing values")
    ax.set_title(f"Missing values per column ({rows} rows)")
    return fig


def draw_images_per_patient(histogram: Mapping[str, int]) -> Any:
    """How many patients have 1, 2, ... images."""
    plt = pyplot()
    keys = sorted(histogram, key=int)
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(keys, [histogram[k] for k in keys], color=BAR)
    _label_bars(ax, bars, [str(histogram[k]) for k in keys])
    ax.set_xlabel("images per patient")
    ax.set_ylabel("patients")
    ax.set_title("Images per patient")
    return fig


def draw_age_histogram(hist: Mapping[str, Sequence[int]]) -> Any:
    """Age distribution of healthy and cancer images (each normalised to 1)."""
    plt = pyplot()
    edges = np.asarray(hist["edges"], dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4))
    if len(edges) < 2:  # every age missing: say so instead of empty axes
        ax.text(0.5, 0.5, "no ages in this table", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title("Age distribution, healthy vs cancer")
        return fig
    for key, color in (("healthy", BAR), ("cancer", POS)):
        counts = np.asarray(hist[key], dtype=float)
        total = counts.sum()
        if total:
            ax.stairs(counts / total, edges, color=color, label=f"{key} ({int(total)} images)")
    ax.set_xlabel("age (years)")
    ax.set_ylabel("share of images")
    ax.set_title("Age distribution, healthy vs cancer")
    ax.legend()
    return fig


def draw_by_machine(by_machine: Mapping[str, Mapping[str, Any]], field: str, title: str) -> Any:
    """Stacked bars: per machine_id, files per value of one header field."""
    plt = pyplot()
    machines = list(by_machine)
    values = sorted({v for m in machines for v in by_machine[m][field]})
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = np.zeros(len(machines))
    cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
    for k, value in enumerate(values):
        counts = np.array([by_machine[m][field].get(value, 0) for m in machines], dtype=float)
        ax.bar(machines, counts, bottom=bottom, color=cmap(k % cmap.N), label=value)
        bottom += counts
    for i, total in enumerate(bottom):
        ax.annotate(str(int(total)), (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("machine_id")
    ax.set_ylabel("files")
    ax.set_title(title)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def draw_flags(flags: Mapping[str, Mapping[str, Any]], files: int) -> Any:
    """Counts of images needing special handling (MONOCHROME1, SIGMOID, windows)."""
    plt = pyplot()
    names = list(flags)
    counts = [int(flags[n]["count"]) for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(names, counts, color=POS)
    _label_bars(ax, bars, [f"{c} ({100 * c / max(files, 1):.0f}%)" for c in counts])
    ax.set_xlabel("flag")
    ax.set_ylabel("files")
    ax.set_title(f"Header flags over {files} readable files")
    return fig
