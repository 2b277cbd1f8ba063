"""TrainConfig: every setting a run used, and everything inference needs to
rebuild the model (backbone, input size, preprocessing, normalisation, metadata
encoding, threshold, prevalence, metadata-only fallback).

It is saved inside the checkpoint as a dict of primitives (``to_dict``), so the
checkpoint loads with ``torch.load(weights_only=True)``, and beside every run as
config.json. ``from_dict`` rejects unknown keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from rsna_pkg.errors import InputError

if TYPE_CHECKING:
    from rsna_pkg.preprocess import PreprocessConfig

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
MONITORS: tuple[str, ...] = ("auc", "pf1")
BALANCE: tuple[str, ...] = ("oversample", "pos_weight", "none")
# ImageNet's RGB mean/std averaged over channels: right for a gray image fed to
# pretrained weights, harmless for random init.
GRAY_MEAN, GRAY_STD = 0.449, 0.226


@dataclass(frozen=True)
class TrainConfig:
    # model
    backbone: str = "resnet18"
    height: int = 512
    width: int = 256
    use_metadata: bool = True
    freeze: str = "none"
    pretrained: str | None = None
    dropout: float = 0.2
    # input pipeline (inference rebuilds it from these)
    preprocess: PreprocessConfig | None = None
    norm_mean: float = GRAY_MEAN
    norm_std: float = GRAY_STD
    metadata_encoder: dict[str, Any] = field(default_factory=dict)
    # decision, fitted at train time
    aggregation: str = "mean"
    threshold: float = 0.5
    prevalence: float = 0.0
    fallback_coef: list[float] = field(default_factory=list)
    fallback_intercept: float = 0.0
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
    augment: dict[str, Any] = field(default_factory=dict)
    monitor: str = "auc"
    patience: int = 0
    amp: bool = True
    channels_last: bool = True
    # data and run
    seed: int = 0
    val_frac: float = 0.25
    folds: int = 0
    fold: int = 0
    workers: int = 2
    threads: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["preprocess"] = None if self.preprocess is None else self.preprocess.to_dict()
        return {k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"train config: unknown key(s) {sorted(unknown)}")
        kw = dict(d)
        if kw.get("preprocess") is not None:
            from rsna_pkg.preprocess import PreprocessConfig

            kw["preprocess"] = PreprocessConfig.from_dict(kw["preprocess"])
        return cls(**kw)

    def validated(self) -> TrainConfig:
        """Raise InputError for inconsistent settings; return self."""
        checks = [
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
            (self.monitor in MONITORS, f"--monitor must be one of {MONITORS}"),
            (self.balance in BALANCE, f"--balance must be one of {BALANCE}"),
            (self.aggregation in ("mean", "max"), "--aggregation must be mean or max"),
            (self.height >= 32 and self.width >= 32, "--size must be at least 32 32"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.accumulate >= 1, "--accumulate must be >= 1"),
            (0.0 <= self.ema < 1.0, "--ema must be in [0, 1)"),
            (self.lr > 0, "--lr must be positive"),
            (0 < self.val_frac < 1 or self.folds > 1, "--val-frac must be in (0, 1)"),
            (self.folds == 0 or 0 <= self.fold < self.folds, "--fold must be in [0, folds)"),
            (self.folds != 1, "--folds must be at least 2"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
