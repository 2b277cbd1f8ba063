"""Checkpoint I/O: weights + ModelConfig, and the inference-side ``LoadedModel``.

A checkpoint is a dict ``{"format", "model": ModelConfig.to_dict(), "state_dict": ...}``
(plus, for a resumable one, ``"train"``: the run's TrainConfig and optimiser state etc.) made
only of primitives and tensors, so ``torch.load(weights_only=True)`` reads it and inference
rebuilds the model from it alone. Format 1 (a flat TrainConfig under ``"config"``) still
loads. Files are written atomically, so a killed run never leaves a truncated model.pt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsna_pkg.config_fields import FieldError
from rsna_pkg.data.dataset import image_to_tensor
from rsna_pkg.data.metadata_encoder import MetadataEncoder
from rsna_pkg.errors import InputError, describe
from rsna_pkg.models.config import ModelConfig
from rsna_pkg.models.fusion import CancerClassifier
from rsna_pkg.outputs import LAST_NAME, MODEL_NAME, atomic_path

FORMAT_NAME = "rsna_pkg.checkpoint"
FORMAT_VERSION = 2  # 1: a flat TrainConfig under "config" (still read); 2: ModelConfig
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
CONFIG_KEY = {1: "config", 2: "model"}


def format_problem(tag: object) -> str:
    """Why a checkpoint's ``format`` tag is not one this version reads ('' when it is)."""
    name, _, version = str(tag).partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        return f"not an rsna_pkg checkpoint (format {tag!r}, expected {FORMAT!r})"
    if int(version) > FORMAT_VERSION:
        return (f"checkpoint format version {version} is newer than this rsna_pkg reads "
                f"({FORMAT_VERSION}): upgrade rsna_pkg")  # fmt: skip
    if int(version) not in CONFIG_KEY:
        return f"checkpoint format version {version} is not one this rsna_pkg reads"
    return ""


def build_model(config: ModelConfig, pretrained: str | Path | None = None) -> CancerClassifier:
    """The architecture a config describes (random init unless ``pretrained``)."""
    return CancerClassifier(
        config.backbone, config.meta_dim, pretrained, config.dropout, config.aux_heads
    )


def save_checkpoint(
    path: str | Path, model: torch.nn.Module, config: ModelConfig, **extra: Any
) -> None:
    """Atomically write weights (moved to CPU) and config; ``extra`` must be
    primitives/tensors (the run's config, optimizer state, epoch, ...)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "model": config.to_dict(), "state_dict": state, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, loaded with weights_only=True; InputError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        # weights_only=True: tensors and primitives only; a pickle that would run code
        # (a __reduce__ calling os.system, ...) is refused before anything runs.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, foreign or malicious files
        raise InputError(f"{path}: not a loadable checkpoint ({describe(exc)})") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not an rsna_pkg checkpoint (holds {type(payload).__name__})")
    problem = format_problem(payload.get("format"))
    if problem:
        raise InputError(f"{path}: {problem}")
    key = CONFIG_KEY[int(str(payload["format"]).rpartition("/")[2])]
    if not isinstance(payload.get(key), dict) or not isinstance(payload.get("state_dict"), dict):
        raise InputError(f"{path}: checkpoint lacks its {key} or state_dict")
    return payload


def update_config(path: str | Path, **changes: Any) -> ModelConfig:
    """Atomically rewrite a checkpoint with ModelConfig fields changed (weights and any
    training state untouched; a format-1 file comes back as format 2); the new config."""
    payload = read_checkpoint(path)
    config = model_config(payload, path).with_(**changes)
    payload.pop("config", None)
    payload.update(format=FORMAT, model=config.to_dict())
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return config


def checkpoint_files(path: str | Path) -> list[Path]:
    """The checkpoints one ``--model`` argument names. A file is itself. A folder is every
    ``model.pt`` under it at any depth (a training output; a K-fold one holds
    ``fold_<i>/model.pt``), or, holding none, the ``*.pt`` files directly in it except
    ``last.pt`` (a run's resumable state, not its best model); sorted by path. A folder with
    neither is an InputError."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob(MODEL_NAME) if p.is_file()) or sorted(
        p for p in path.glob("*.pt") if p.name != LAST_NAME and p.is_file()
    )
    if not found:
        raise InputError(f"{path}: folder holds no model.pt (at any depth) and no *.pt checkpoint")
    return found


def model_config(payload: dict[str, Any], path: str | Path) -> ModelConfig:
    """The ModelConfig of a checkpoint dict (from read_checkpoint), whichever format wrote it."""
    try:
        if payload["format"] == f"{FORMAT_NAME}/1":
            return ModelConfig.from_train_config_v1(payload["config"])
        return ModelConfig.from_dict(payload["model"])
    except KeyError as exc:
        raise InputError(f"{path}: checkpoint config is incomplete (no {exc})") from exc


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FieldError("device", "CUDA is not available on this machine", value=device)
    return torch.device(device)


@dataclass
class LoadedModel:
    """A trained model in eval mode plus everything needed to feed it."""

    model: CancerClassifier
    config: ModelConfig
    device: torch.device

    @property
    def encoder(self) -> MetadataEncoder:
        return self.config.metadata

    def image_tensor(self, img: np.ndarray) -> torch.Tensor:
        """Preprocessed (H, W) uint8/uint16 image -> [1, H, W] float32, as in training."""
        return image_to_tensor(img, self.config.norm_mean, self.config.norm_std)

    def encode_metadata(self, df: pd.DataFrame) -> torch.Tensor | None:
        """[N, F] metadata features, or None for a model trained without metadata."""
        if not self.config.use_metadata:
            return None
        return torch.from_numpy(self.encoder.transform(df))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 1, H, W], meta [B, F] or None -> logits [B] (float32, on CPU)."""
        x = images.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        m = meta.to(self.device) if (meta is not None and self.config.use_metadata) else None
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            logits = self.model(x, m)
        return logits.float().cpu()

    def metadata_only_proba(self, df: pd.DataFrame) -> np.ndarray | None:
        """Cancer probability from metadata alone (logistic regression fitted on the
        training split), for breasts without a decodable image; None if absent."""
        coef = np.asarray(self.config.fallback_coef, dtype=np.float64)
        if coef.size == 0:
            return None
        z = self.encoder.transform(df).astype(np.float64) @ coef + self.config.fallback_intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the model from a checkpoint alone (no network, no other files)."""
    payload = read_checkpoint(path)
    try:
        config = model_config(payload, path)
        model = build_model(config)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:  # a config value of the wrong type
        raise InputError(f"{path}: unusable stored config ({describe(exc)})") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError) as exc:  # another backbone, size of head, dtype
        raise InputError(
            f"{path}: weights do not match the stored config ({config.backbone}): {describe(exc)}"
        ) from exc
    dev = resolve_device(device)
    model.to(dev).eval()
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return LoadedModel(model, config, dev)
