"""Image galleries: for a few sampled images per group (healthy, cancer, implant,
each machine) show the stored pixels, the windowed image and the preprocessed
crop side by side, so what preprocessing does is visible.

All pixel work goes through the package's own code: ``rsna_pkg.dicom.decode``
(reduced resolution for speed), ``apply_voi`` and ``rsna_pkg.preprocess.preprocess_file``.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsna_pkg.preprocess.resize import halvings

# Longest side of a gallery tile (a gallery row is ~320 px tall at the figure's dpi);
# decode reduce is chosen to land at or above it: a 3000-px mammogram decodes at 1/8.
TILE = 320
# Size of the preprocessed crop shown (the contract's 2:1 aspect at display size).
CROP_HEIGHT, CROP_WIDTH = 384, 192


@dataclass(frozen=True)
class GalleryItem:
    group: str
    path: str
    image_id: int
    label: str


@dataclass
class Tiles:
    """Three display images in [0, 1] (or None with ``error`` set)."""

    item: GalleryItem
    raw: np.ndarray | None = None
    windowed: np.ndarray | None = None
    cropped: np.ndarray | None = None
    reduce: int = 0
    outline: np.ndarray | None = None  # breast mask boundary, on the windowed tile
    box: tuple[float, float, float, float] | None = None  # crop box (y0, x0, y1, x1), tile px
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def pick_groups(
    df: pd.DataFrame, readable: set[str], n: int, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Up to ``n`` random rows per group, drawn only from ``readable`` paths.

    ``df`` must carry a ``path`` column; groups with no candidates are left out.
    """
    ok = df[df["path"].isin(readable)]
    groups: dict[str, pd.DataFrame] = {
        "healthy": ok[ok["cancer"] != 1],
        "cancer": ok[ok["cancer"] == 1],
        "implant": ok[ok["implant"] == 1],
    }
    for machine, g in ok.groupby("machine_id", sort=True):
        groups[f"machine_{machine}"] = g
    picked = {}
    for name, g in groups.items():
        if len(g):
            take = rng.choice(len(g), size=min(n, len(g)), replace=False)
            picked[name] = g.iloc[np.sort(take)]
    return picked


def choose_reduce(rows: int, columns: int, target: int = TILE) -> int:
    """Largest power-of-two reduction keeping the longest side >= ``target``."""
    return halvings(max(rows, columns) / target)


def to_display(img: np.ndarray, target: int = TILE) -> np.ndarray:
    """Min-max scale to [0, 1] float32 and subsample so the longest side <= ``target``."""
    step = max(1, math.ceil(max(img.shape) / target))
    small = np.asarray(img[::step, ::step], dtype=np.float32)
    lo, hi = float(small.min()), float(small.max())
    return (small - lo) / (hi - lo) if hi > lo else np.zeros_like(small)


def render_item(item: GalleryItem) -> Tiles:
    """Decode one image three ways; a failure is recorded on the result."""
    from rsna_pkg.dicom import apply_voi, decode, read_header
    from rsna_pkg.eda.headers import voi_label
    from rsna_pkg.preprocess import PreprocessConfig, preprocess_file
    from rsna_pkg.preprocess.pipeline import segment
    from rsna_pkg.preprocess.roi import outline

    tiles = Tiles(item)
    try:
        header = read_header(item.path)
        tiles.reduce = choose_reduce(header.rows, header.columns)
        stored = decode(item.path, reduce=tiles.reduce)
        tiles.raw = to_display(stored)
        tiles.windowed = to_display(apply_voi(stored, header))
        cfg = PreprocessConfig(height=CROP_HEIGHT, width=CROP_WIDTH, bits=8, reduce=True)
        result = preprocess_file(item.path, cfg)
        tiles.cropped = to_display(result.image)
        step = max(1, math.ceil(max(stored.shape) / TILE))  # to_display's subsampling
        tiles.outline = outline(segment(stored, header, cfg))[::step, ::step]
        scale = 2**tiles.reduce * step  # full-resolution pixels per tile pixel
        tiles.box = tuple(v / scale for v in result.box)  # type: ignore[assignment]
        tiles.info = {
            "photometric": header.photometric,
            "voi": voi_label(header),
            "decoded_shape": list(stored.shape),
        }
    except Exception as exc:  # noqa: BLE001 - one bad image must not stop the report
        tiles.error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return tiles


@dataclass(frozen=True)
class GroupTask:
    """One gallery figure: its images and the PNG to write."""

    name: str
    title: str
    items: tuple[GalleryItem, ...]
    png: str


def render_group(task: GroupTask) -> list[dict[str, Any]]:
    """Decode, draw and save one gallery (runs in a worker); returns per-image facts."""
    from rsna_pkg.eda.figures import save_png

    tiles = [render_item(it) for it in task.items]
    save_png(draw_gallery(task.title, tiles), Path(task.png), tight=False)
    return [
        {"image_id": t.item.image_id, "reduce": t.reduce, "error": t.error, **t.info} for t in tiles
    ]


def render_groups(tasks: Sequence[GroupTask], workers: int) -> list[list[dict[str, Any]] | str]:
    """Every gallery, one per task, in a spawned process pool when ``workers`` > 1.

    A task whose worker died (a decoder crash kills the process, not just the call)
    yields its error message instead of per-image facts; the other galleries still finish.
    """
    out: list[list[dict[str, Any]] | str] = []
    if workers <= 1 or len(tasks) < 2:
        for task in tasks:
            try:
                out.append(render_group(task))
            except Exception as exc:  # noqa: BLE001 - e.g. the PNG cannot be written
                out.append(f"{type(exc).__name__}: {exc}")
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        futures = [pool.submit(render_group, t) for t in tasks]
        for fut in futures:
            try:
                out.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - BrokenProcessPool and the like
                out.append(f"{type(exc).__name__}: {exc}")
    return out


def draw_gallery(title: str, tiles: Sequence[Tiles]) -> Any:
    """Grid: one row per image; columns raw stored values, windowed, preprocessed."""
    from rsna_pkg.lazy_pyplot import pyplot

    plt = pyplot()
    n = len(tiles)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3.2 * n), squeeze=False)
    heads = ("raw stored values (min-max)", "windowed; breast mask, crop box", "preprocessed crop")
    for r, t in enumerate(tiles):
        images = (t.raw, t.windowed, t.cropped)
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is not None:
                ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
                if c == 1:
                    draw_mask_and_box(ax, t)
            else:
                ax.text(0.5, 0.5, t.error or "n/a", ha="center", va="center", wrap=True, fontsize=7)
            if r == 0:
                ax.set_title(heads[c], fontsize=9)
        info = f"{t.info.get('photometric', '')} {t.info.get('voi', '')} r={t.reduce}"
        axes[r][0].set_ylabel(f"{t.item.label}\n{info}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_mask_and_box(ax: Any, t: Tiles) -> None:
    """The breast mask's outline (green) and the crop box (red) over the windowed tile."""
    from matplotlib.patches import Rectangle

    if t.outline is not None and t.outline.any():
        overlay = np.zeros((*t.outline.shape, 4), dtype=np.float32)
        overlay[t.outline] = (0.25, 0.9, 0.25, 1.0)
        ax.imshow(overlay, interpolation="nearest")
    if t.box is not None:
        y0, x0, y1, x1 = t.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor=(1.0, 0.25, 0.25), linewidth=1))  # fmt: skip


def group_label(row: Mapping[str, Any]) -> str:
    """Row label: image id, machine, breast side and view, and the label."""
    cancer = "cancer" if row["cancer"] == 1 else "healthy"
    return f"{row['image_id']} m{row['machine_id']} {row['laterality']}-{row['view']} {cancer}"
