"""Everything a run derives from the data before training: the usable image
table, the patient split, the metadata encoder, the metadata-only fallback
model and the prevalence -- all fitted on the training side only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.dataset import load_image_table
from rsna_pkg.data.metadata_encoder import MetadataEncoder, fit_metadata_encoder
from rsna_pkg.data.splits import assign_split, check_split, holdout_folds, patient_folds
from rsna_pkg.errors import InputError
from rsna_pkg.outputs import PREPROCESS_CONFIG_NAME
from rsna_pkg.train.config import TrainConfig

if TYPE_CHECKING:
    from rsna_pkg.preprocess import PreprocessConfig


@dataclass
class Prepared:
    train: pd.DataFrame  # image rows: train.csv columns + path, prediction_id
    val: pd.DataFrame
    folds: pd.DataFrame  # per patient: patient_id, fold, cancer
    val_fold: int
    encoder: MetadataEncoder
    preprocess: PreprocessConfig

    def fitted_config(self, cfg: TrainConfig) -> TrainConfig:
        """cfg with the train-side fits filled in (threshold comes later)."""
        coef, intercept = fit_fallback(self.encoder.transform(self.train), self.train["cancer"])
        breast_pos = self.train.groupby("prediction_id")["cancer"].max()
        return cfg.with_model(
            preprocess=self.preprocess,
            metadata=self.encoder,
            prevalence=float(breast_pos.mean()),
            fallback_coef=tuple(coef),
            fallback_intercept=intercept,
        )


def images_preprocess_config(images_dir: str | Path) -> PreprocessConfig:
    """The PreprocessConfig an `rsna preprocess` output folder's PNGs were made with."""
    from rsna_pkg.preprocess import PreprocessConfig

    path = Path(images_dir) / PREPROCESS_CONFIG_NAME
    if not path.is_file():
        raise InputError(f"{path}: not found; --images must be an `rsna preprocess` output")
    try:
        return PreprocessConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{path}: unreadable preprocess config ({exc})") from exc


def read_preprocess_config(images_dir: str | Path, height: int, width: int) -> PreprocessConfig:
    """The PreprocessConfig the PNGs were made with; their size must match the model's."""
    pre = images_preprocess_config(images_dir)
    if (pre.height, pre.width) != (height, width):
        path = Path(images_dir) / PREPROCESS_CONFIG_NAME
        raise FieldError(
            "size",
            f"{path}: images are {pre.height}x{pre.width}; preprocess them at "
            f"{height}x{width} or leave the size out (it is read from the images)",
            value=f"{height} {width}",
        )
    return pre


def prepare(
    cfg: TrainConfig,
    data_dir: str | Path,
    images_dir: str | Path,
    folds: pd.DataFrame | None = None,
) -> Prepared:
    """Load, split (or reuse ``folds``), check and fit the metadata encoder."""
    preprocess = read_preprocess_config(images_dir, cfg.model.height, cfg.model.width)
    table = load_image_table(data_dir, images_dir)
    if folds is None:
        if cfg.folds > 1:
            folds = patient_folds(table, cfg.folds, cfg.seed)
        else:
            folds = holdout_folds(table, cfg.val_frac, cfg.seed)
    val_fold = cfg.fold if cfg.folds > 1 else 0
    split = assign_split(table, folds, val_fold)
    check_split(table, split)
    train = table[split == "train"].reset_index(drop=True)
    val = table[split == "val"].reset_index(drop=True)
    return Prepared(train, val, folds, val_fold, fit_metadata_encoder(train), preprocess)


def fit_fallback(x: np.ndarray, y: Any) -> tuple[list[float], float]:
    """Logistic regression on metadata features: the per-image cancer probability
    inference uses for a breast none of whose images decodes. Constant
    prevalence when the training side has a single class."""
    labels = np.asarray(y, dtype=int)
    if np.unique(labels).size < 2:
        p = float(np.clip(labels.mean(), 1e-4, 1 - 1e-4))
        return [0.0] * x.shape[1], float(np.log(p / (1 - p)))
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=1000)
    lr.fit(x.astype(np.float64), labels)
    return [float(c) for c in lr.coef_[0]], float(lr.intercept_[0])
