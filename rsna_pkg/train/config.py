"""TrainConfig: the settings of one training run, around the ModelConfig it produces.

The model part (architecture, input, decision: ``models.config.ModelConfig``) is what a
checkpoint stores; the rest (optimisation, sampling, split, devices) describes the run and is
saved beside it as config.json. ``from_dict`` rejects unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rsna_pkg.config_fields import FieldError, check_fields, option
from rsna_pkg.data.augment_config import AugmentConfig
from rsna_pkg.data.aux_targets import AUX_TARGETS, aux_heads, check_aux_weights
from rsna_pkg.data.sampling import positives_per_batch
from rsna_pkg.dataclass_io import PlainDict
from rsna_pkg.models.config import ModelConfig

Optimizer = Literal["adamw", "sgd"]
Monitor = Literal["auc", "pf1"]
Balance = Literal["oversample", "pos_weight", "none", "batch"]
Freeze = Literal["none", "features", "classifier", "top"]
Device = Literal["auto", "cpu", "cuda"]

# Largest lr taken. An SGD step over 1 (AdamW's is lr itself) throws weights past any
# useful region in one step; 1e6 or inf turned every prediction into NaN.
MAX_LR = 1.0


@dataclass(frozen=True)
class TrainConfig(PlainDict):
    """Fields made with ``option`` are also the options of `rsna train` and `rsna compare`
    (``cli_options``): a new setting is one field here. The rest a command sets from its
    own options (the model from --backbone and --size, ``freeze`` from --freeze auto ...)."""

    WHAT = "train config"

    model: ModelConfig = field(default_factory=ModelConfig)
    # initial weights and what trains
    freeze: Freeze = option(
        "none", cli=False, help="what stays frozen (--freeze auto: a command's)"
    )
    pretrained: str | None = option(None, cli=False, help="initial weights file (None: random)")
    # optimisation
    epochs: int = option(12, help="training epochs", bounds=(1, 10_000))
    batch_size: int = option(32, help="images per optimizer micro-step", bounds=(1, 4096))
    lr: float = option(1e-3, help="peak learning rate (cosine schedule after warm-up)",
                       bounds=(0, MAX_LR), lo_open=True)  # fmt: skip
    weight_decay: float = option(1e-4, help="decoupled weight decay", bounds=(0, 1))
    optimizer: Optimizer = option("adamw", help="optimizer")
    momentum: float = option(0.9, help="SGD momentum (--optimizer sgd)", bounds=(0, 1),
                             hi_open=True)  # fmt: skip
    warmup_epochs: float = option(1.0, help="linear warm-up, in epochs", bounds=(0, 10_000))
    accumulate: int = option(1, help="gradient accumulation steps", bounds=(1, 1024))
    ema: float = option(0.0, help="EMA decay of weights (0: off)", bounds=(0, 1), hi_open=True)
    balance: Balance = option(
        "oversample",
        help="oversample: repeat positives to --pos-fraction of an epoch; batch: every batch "
        "holds round(pos-fraction x batch-size) positives (cycled), the rest negatives",
    )
    pos_fraction: float = option(0.25, help="positive share (--balance)", bounds=(0, 1),
                                 lo_open=True)  # fmt: skip
    neg_fraction: float = option(
        1.0, help="each epoch keeps a fresh random share of the negatives (1: all)",
        bounds=(0, 1), lo_open=True,
    )  # fmt: skip
    aux: dict[str, float] = option(default_factory=dict, cli=False,
                                   help="loss weight per model.aux_heads name")  # fmt: skip
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    monitor: Monitor = option("auc", help="validation metric that picks the best epoch")
    patience: int = option(0, help="early stopping (0: off)", bounds=(0, 10_000))
    amp: bool = option(True, help="no mixed precision on CUDA")
    channels_last: bool = option(True, help="no channels-last memory format on CUDA")
    grad_checkpoint: bool = option(
        False,
        help="recompute the backbone's activations in backward: less memory per image "
        "(`rsna bench memory`) for one more forward pass of the backbone",
    )
    # data and run
    seed: int = option(0, help="seed of the split, the initial weights and the sampling",
                       bounds=(0, 2**32 - 1))  # fmt: skip
    val_frac: float = option(0.25, help="validation share of the patients", bounds=(0, 1),
                             lo_open=True, hi_open=True, group="split")  # fmt: skip
    folds: int = option(
        0, bounds=(0, 100), group="split",
        help="K-fold patient split: rsna train trains every fold (OUT/fold_<i>/) and writes "
        "out-of-fold predictions (OUT/oof.csv), unless --fold I picks one",
    )  # fmt: skip
    fold: int = option(0, cli=False, help="with folds K: the fold this run trains")
    workers: int = option(2, cli=False, help="loader processes")
    threads: int = option(0, help="CPU threads (0: all cores)", bounds=(0, 4096))
    device: Device = option("auto", help="where to train")

    def __post_init__(self) -> None:
        """FieldError for a value outside its field's declaration or inconsistent with
        another (every config validates on construction)."""
        check_fields(self)
        if min(self.model.height, self.model.width) < 32:
            raise FieldError("model", f"input size {self.model.height}x{self.model.width}: "
                             "each side must be at least 32", self.WHAT)  # fmt: skip
        if self.workers < 0:
            raise FieldError("workers", f"must be >= 0, got {self.workers}", self.WHAT)
        if self.folds == 1:
            raise FieldError("folds", "must be at least 2 (0: one validation split)", self.WHAT)
        if self.folds and not 0 <= self.fold < self.folds:
            raise FieldError("fold", f"must be in [0, {self.folds}), got {self.fold}", self.WHAT)
        self._check_sampling_and_aux()

    def _check_sampling_and_aux(self) -> None:
        n_pos = positives_per_batch(self.pos_fraction, self.batch_size)
        if self.balance == "batch" and not 0 < n_pos < self.batch_size:
            raise FieldError("pos_fraction", f"{self.pos_fraction} gives {n_pos} positive(s) "
                             f"per batch of {self.batch_size}; balance 'batch' needs 1 to "
                             f"{self.batch_size - 1}", self.WHAT)  # fmt: skip
        check_aux_weights(self.aux)
        if self.model.aux_heads != aux_heads([n for n in AUX_TARGETS if n in self.aux]):
            raise FieldError("aux", f"{sorted(self.aux)} does not match the model's auxiliary "
                             f"heads {self.model.aux_heads}", self.WHAT)  # fmt: skip

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def with_model(self, **changes: Any) -> TrainConfig:
        return replace(self, model=replace(self.model, **changes))
