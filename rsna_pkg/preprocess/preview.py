"""OUT/preview.png: a few images before (windowed, the breast mask's outline in green and the
crop box in red) and after cropping."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_pkg.errors import RsnaError
from rsna_pkg.outputs import atomic_write_bytes
from rsna_pkg.preprocess.config import PreprocessConfig
from rsna_pkg.preprocess.resize import halvings

TILE = 256  # tile height in the sheet
MASK_COLOUR = (64, 220, 64)
BOX_COLOUR = (255, 64, 64)


def before_tile(dicom: Path, box: tuple[int, int, int, int], cfg: PreprocessConfig) -> np.ndarray:
    """The windowed image at about TILE px with the mask (found again at this level, by
    the same segmentation) and the box (full-res pixels) drawn."""
    from PIL import Image, ImageDraw

    from rsna_pkg.dicom import apply_voi, decode, read_header
    from rsna_pkg.preprocess.pipeline import segment
    from rsna_pkg.preprocess.roi import outline

    header = read_header(dicom)
    level = halvings(max(header.rows, header.columns) / TILE)
    stored = decode(dicom, reduce=level)
    rgb = np.repeat(
        np.rint(apply_voi(stored, header, cfg.voi_index) * 255).astype(np.uint8)[..., None],
        3,
        axis=2,
    )
    rgb[outline(segment(stored, header, cfg))] = MASK_COLOUR
    im = Image.fromarray(rgb)
    y0, x0, y1, x1 = (v / 2**level for v in box)
    ImageDraw.Draw(im).rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX_COLOUR, width=2)
    scale = TILE / im.height
    # nearest: the one-pixel outline and box keep their colours
    return np.asarray(im.resize((max(1, round(im.width * scale)), TILE), Image.Resampling.NEAREST))


def after_tile(png: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(png) as im:
        arr = np.asarray(im)
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float32) / 257).round().astype(np.uint8)
    scale = TILE / arr.shape[0]
    small = Image.fromarray(arr).resize((max(1, round(arr.shape[1] * scale)), TILE))
    return np.asarray(small.convert("RGB"))


def write_preview(out_dir: Path, manifest: pd.DataFrame, dicoms: dict[int, Path], count: int,
                  cfg: PreprocessConfig) -> Path | None:  # fmt: skip
    """Rows of [before | after] for the first ``count`` ok images; None if there are none."""
    from PIL import Image

    ok = manifest[manifest["status"] == "ok"].head(count)
    rows = []
    for r in ok.to_dict("records"):
        if r["box_y0"] == "" or int(r["image_id"]) not in dicoms:
            continue  # a resumed row without its box
        box = (int(r["box_y0"]), int(r["box_x0"]), int(r["box_y1"]), int(r["box_x1"]))
        try:
            before = before_tile(dicoms[int(r["image_id"])], box, cfg)
            after = after_tile(out_dir / str(r["png"]))
        except (RsnaError, OSError):
            continue  # changed on disk since it was preprocessed: leave it out of the sheet
        gap = np.full((TILE, 8, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([before, gap, after], axis=1))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    path = out_dir / "preview.png"
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(padded, axis=0)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
