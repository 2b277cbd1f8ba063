"""ModelConfig: what a checkpoint stores, and all inference needs to rebuild a model.

The architecture (backbone, metadata branch, dropout), its input (the PreprocessConfig the
images were made with: the one source of the input size; the normalisation; the fitted
metadata encoder) and its decision (aggregation, threshold, prevalence, the metadata-only
fallback). Nothing about how it was trained: renaming an optimiser flag can never break
loading a model. Saved as a dict of primitives so ``torch.load(weights_only=True)`` reads it;
``from_dict`` rejects unknown keys. Training-only auxiliary heads are part of the
architecture (the state_dict must rebuild), never of a prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rsna_pkg.config_fields import check_fields, option
from rsna_pkg.data.metadata_encoder import MetadataEncoder
from rsna_pkg.dataclass_io import PlainDict, from_plain
from rsna_pkg.errors import InputError
from rsna_pkg.metrics import Aggregation
from rsna_pkg.preprocess.config import PreprocessConfig

# ImageNet's RGB mean/std averaged over channels: right for a gray image fed to
# pretrained weights, harmless for random init.
GRAY_MEAN, GRAY_STD = 0.449, 0.226


@dataclass(frozen=True)
class PretrainedConfig(PlainDict):
    """What a timm backbone was pretrained on (timm's ``pretrained_cfg`` as
    ``timm.data.resolve_data_config`` reads it): the timm name, the RGB mean/std and
    input size. Kept so a checkpoint says how its weights expect to be fed; the gray
    normalisation is the channel mean of mean and std (``gray_norm``)."""

    WHAT = "pretrained config"

    name: str  # timm model name with its pretrained tag, e.g. "convnext_small.fb_in22k_ft_in1k"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, ...]  # (C, H, W) of pretraining; the model's own size is preprocess's
    interpolation: str = ""

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise InputError(
                f"pretrained config {self.name!r}: bad mean/std {self.mean}/{self.std}"
            )

    def gray_norm(self) -> tuple[float, float]:
        """(mean, std) for a gray image fed through a stem whose RGB kernels were summed."""
        return sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PretrainedConfig:
        # a config missing mean/std is refused by __post_init__, naming them
        return from_plain(cls, {"mean": (), "std": (), "input_size": (), **d}, cls.WHAT)


def decision_problem(config: ModelConfig) -> str:
    """Why the stored numbers cannot be used ('' when they can): a NaN threshold turned
    every breast to 0, and nothing downstream would have said so."""
    if not (math.isfinite(config.norm_mean) and math.isfinite(config.norm_std)
            and config.norm_std > 0):  # fmt: skip
        return f"norm_mean/norm_std {config.norm_mean}/{config.norm_std}: not finite and positive"
    for name in ("threshold", "prevalence"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:  # False for NaN too
            return f"{name} {value} is not a number in [0, 1]"
    coefs = (*config.fallback_coef, config.fallback_intercept)
    if not all(math.isfinite(c) for c in coefs):
        return "fallback_coef/fallback_intercept hold a non-finite value"
    return ""


@dataclass(frozen=True)
class InitWeights(PlainDict):
    """The weights file a model started from (``--pretrained``): its name and sha256, and
    for a converted file (``rsna weights convert``) the source file's, so a checkpoint says
    which ImageNet weights it was fine-tuned from. Provenance only: nothing reads the file
    again (the checkpoint holds every trained weight)."""

    WHAT = "init weights"

    file: str
    sha256: str
    source_file: str = ""
    source_sha256: str = ""


@dataclass(frozen=True)
class ModelConfig(PlainDict):
    WHAT = "model config"

    backbone: str = "resnet18"
    preprocess: PreprocessConfig = field(
        default_factory=lambda: PreprocessConfig(height=512, width=256)
    )
    use_metadata: bool = option(True, flag="--no-metadata", help="image-only model")
    dropout: float = option(0.2, help="dropout before the classifier", bounds=(0, 1),
                            hi_open=True)  # fmt: skip
    norm_mean: float = GRAY_MEAN
    norm_std: float = GRAY_STD
    metadata: MetadataEncoder = field(default_factory=MetadataEncoder)
    # decision, fitted at train time
    aggregation: Aggregation = option("mean", help="a breast's score from its images' scores")
    threshold: float = 0.5
    prevalence: float = 0.0
    fallback_coef: tuple[float, ...] = ()
    fallback_intercept: float = 0.0
    # training-only heads (name, logits) on the image features; inference never calls them
    aux_heads: tuple[tuple[str, int], ...] = ()
    # timm backbones: the pretrained data config (None: torchvision, ImageNet's gray norm)
    pretrained_cfg: PretrainedConfig | None = None
    # the weights file training started from (None: random initialisation)
    init_weights: InitWeights | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        problem = decision_problem(self)
        if problem:
            raise InputError(problem)
        names = [name for name, _ in self.aux_heads]
        for name, outputs in self.aux_heads:
            if not name.isidentifier() or outputs < 1 or names.count(name) > 1:
                raise InputError(f"aux_heads: bad head {name!r} with {outputs} output(s)")

    @property
    def height(self) -> int:
        return self.preprocess.height

    @property
    def width(self) -> int:
        return self.preprocess.width

    @property
    def meta_dim(self) -> int:
        """Width of the metadata input (0 for an image-only model)."""
        return self.metadata.width if self.use_metadata else 0

    @classmethod
    def from_train_config_v1(cls, d: dict[str, Any]) -> ModelConfig:
        """The model part of a format-1 checkpoint's flat TrainConfig dict (training-only
        keys are ignored). One without its preprocess config cannot be fed faithfully."""
        kw: dict[str, Any] = {k: d[k] for k in ("backbone", "use_metadata", "dropout", "norm_mean", "norm_std",
                                "aggregation", "threshold", "prevalence", "fallback_coef",
                                "fallback_intercept") if k in d}  # fmt: skip
        if d.get("preprocess") is None:
            raise InputError("checkpoint stores no preprocess config")
        kw["preprocess"] = d["preprocess"]
        kw["metadata"] = d.get("metadata_encoder") or {}
        return cls.from_dict(kw)

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)
