"""TrainConfig: the settings of one training run, around the ModelConfig it produces.

The model part (architecture, input, decision: ``models.config.ModelConfig``) is what a
checkpoint stores; the rest (optimisation, sampling, split, devices) describes the run and is
saved beside it as config.json. ``from_dict`` rejects unknown keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from rsna_pkg.data.augment_config import AugmentConfig
from rsna_pkg.data.aux_targets import AUX_TARGETS, aux_heads, check_aux_weights
from rsna_pkg.data.sampling import positives_per_batch
from rsna_pkg.dataclass_io import PlainDict
from rsna_pkg.errors import InputError
from rsna_pkg.models.config import ModelConfig

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
MONITORS: tuple[str, ...] = ("auc", "pf1")
BALANCE: tuple[str, ...] = ("oversample", "pos_weight", "none", "batch")


@dataclass(frozen=True)
class TrainConfig(PlainDict):
    WHAT = "train config"

    model: ModelConfig = field(default_factory=ModelConfig)
    # initial weights and what trains
    freeze: str = "none"
    pretrained: str | None = None
    # optimisation
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    accumulate: int = 1
    ema: float = 0.0
    balance: str = "oversample"
    pos_fraction: float = 0.25
    neg_fraction: float = 1.0
    aux: dict[str, float] = field(default_factory=dict)  # loss weight per model.aux_heads name
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    monitor: str = "auc"
    patience: int = 0
    amp: bool = True
    channels_last: bool = True
    grad_checkpoint: bool = False  # recompute body activations in backward (less memory)
    # data and run
    seed: int = 0
    val_frac: float = 0.25
    folds: int = 0
    fold: int = 0
    workers: int = 2
    threads: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        """InputError for inconsistent settings (every config validates on construction)."""
        checks = [
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
            (self.monitor in MONITORS, f"--monitor must be one of {MONITORS}"),
            (self.balance in BALANCE, f"--balance must be one of {BALANCE}"),
            (self.model.height >= 32 and self.model.width >= 32, "--size must be at least 32 32"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.accumulate >= 1, "--accumulate must be >= 1"),
            (0.0 <= self.ema < 1.0, "--ema must be in [0, 1)"),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                f"--weight-decay must be >= 0, got {self.weight_decay}",
            ),
            (
                math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0,
                f"--warmup-epochs must be >= 0, got {self.warmup_epochs}",
            ),
            (self.workers >= 0 and self.threads >= 0, "--workers and --threads must be >= 0"),
            (0 < self.val_frac < 1 or self.folds > 1, "--val-frac must be in (0, 1)"),
            (self.folds == 0 or 0 <= self.fold < self.folds, "--fold must be in [0, folds)"),
            (self.folds != 1, "--folds must be at least 2"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        self._check_sampling_and_aux()

    def _check_sampling_and_aux(self) -> None:
        n_pos = positives_per_batch(self.pos_fraction, self.batch_size)
        if self.balance == "batch" and not 0 < n_pos < self.batch_size:
            raise InputError(f"--pos-fraction {self.pos_fraction} gives {n_pos} positive(s) per "
                             f"batch of {self.batch_size}; --balance batch needs 1 to "
                             f"{self.batch_size - 1}")  # fmt: skip
        if not 0 < self.neg_fraction <= 1:
            raise InputError(f"--neg-fraction must be in (0, 1], got {self.neg_fraction}")
        check_aux_weights(self.aux)
        if self.model.aux_heads != aux_heads([n for n in AUX_TARGETS if n in self.aux]):
            raise InputError(f"--aux {sorted(self.aux)} does not match the model's auxiliary "
                             f"heads {self.model.aux_heads}")  # fmt: skip

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def with_model(self, **changes: Any) -> TrainConfig:
        return replace(self, model=replace(self.model, **changes))
