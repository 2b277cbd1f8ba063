"""Tiny preprocessed-PNG datasets for the training tests, built in the test.

Layout mirrors `rsna preprocess` output: IMAGES/<pid>/<iid>.png, manifest.csv,
preprocess_config.json; DATA/train.csv has the real competition columns.
Positive breasts carry a bright disc, so a model can learn them quickly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from rsna_pkg.data.schema import SITE_MACHINES, TRAIN_COLUMNS
from rsna_pkg.train.trainer import Trainer


def make_table(patients: int, seed: int = 0, pos_patients: int | None = None) -> pd.DataFrame:
    """train.csv rows: each patient has L/R x CC/MLO; the first breast of the
    first ``pos_patients`` patients is positive."""
    rng = np.random.default_rng(seed)
    pos_patients = patients // 2 if pos_patients is None else pos_patients
    rows = []
    image_id = 1000
    for i in range(patients):
        site = 1 + i % 2
        machine = int(rng.choice(SITE_MACHINES[site]))
        age = float(rng.integers(40, 80)) if i % 7 else float("nan")
        for lat in ("L", "R"):
            cancer = int(i < pos_patients and lat == "L")
            for view in ("CC", "MLO"):
                rows.append({
                    "site_id": site, "patient_id": 10 + i, "image_id": image_id,
                    "laterality": lat, "view": view, "age": age, "cancer": cancer,
                    "biopsy": cancer, "invasive": 0, "BIRADS": np.nan, "implant": 0,
                    "density": "B", "machine_id": machine, "difficult_negative_case": False,
                })  # fmt: skip
                image_id += 1
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


def render(cancer: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A gray 'breast' on the left half with noise; positives get a bright disc."""
    h, w = size
    img = np.zeros((h, w), dtype=np.float64)
    img[:, : w * 3 // 4] = 90 + rng.normal(0, 12, (h, w * 3 // 4))
    if cancer:
        cy, cx = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 6, w // 2)
        yy, xx = np.mgrid[:h, :w]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= (min(h, w) // 6) ** 2] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(
    root: Path,
    patients: int = 12,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    pos_patients: int | None = None,
) -> tuple[Path, Path]:
    """Write DATA/train.csv and IMAGES/...; return (data_dir, images_dir)."""
    from rsna_pkg.preprocess import PreprocessConfig

    data, images = root / "data", root / "images"
    data.mkdir(parents=True)
    images.mkdir(parents=True)
    table = make_table(patients, seed, pos_patients)
    table.to_csv(data / "train.csv", index=False)
    rng = np.random.default_rng(seed)
    manifest = []
    for r in table.itertuples():
        rel = f"{r.patient_id}/{r.image_id}.png"
        (images / str(r.patient_id)).mkdir(exist_ok=True)
        Image.fromarray(render(int(r.cancer), size, rng)).save(images / rel)
        manifest.append({"patient_id": r.patient_id, "image_id": r.image_id, "status": "ok",
                         "reason": "", "png": rel})  # fmt: skip
    pd.DataFrame(manifest).to_csv(images / "manifest.csv", index=False)
    pre = PreprocessConfig(height=size[0], width=size[1])
    (images / "preprocess_config.json").write_text(json.dumps(pre.to_dict()))
    return data, images


def ctrl_c_in_second_epoch(monkeypatch: Any) -> Callable[[], None]:
    """Make training raise KeyboardInterrupt when its second epoch starts (as a Ctrl-C
    would); the returned function restores the real epoch."""
    real, calls = Trainer.train_epoch, {"n": 0}

    def crash_on_second(self: Trainer, loader: Any, show: bool) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, loader, show)

    monkeypatch.setattr(Trainer, "train_epoch", crash_on_second)
    return lambda: monkeypatch.setattr(Trainer, "train_epoch", real)
