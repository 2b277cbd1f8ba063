"""Checkpoint I/O: weights + TrainConfig, and the inference-side ``LoadedModel``.

A checkpoint is a dict ``{"format", "config": TrainConfig.to_dict(),
"state_dict": ...}`` (plus optimiser state etc. for resumable ones) made only of
primitives and tensors, so ``torch.load(weights_only=True)`` reads it and
inference rebuilds the model from it alone. Files are written atomically (temp
file + rename) so a killed run never leaves a truncated model.pt.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsna_pkg.data.dataset import image_to_tensor
from rsna_pkg.data.metadata import MetadataEncoder
from rsna_pkg.errors import InputError
from rsna_pkg.models.fusion import CancerClassifier, apply_freeze
from rsna_pkg.train.config import TrainConfig

FORMAT = "rsna_pkg.checkpoint/1"


def build_model(config: TrainConfig, pretrained: str | Path | None = None) -> CancerClassifier:
    """The architecture a config describes (random init unless ``pretrained``)."""
    meta_dim = 0
    if config.use_metadata:
        meta_dim = MetadataEncoder.from_dict(config.metadata_encoder).width
    model = CancerClassifier(config.backbone, meta_dim, pretrained, config.dropout)
    apply_freeze(model, config.freeze)
    return model


def save_checkpoint(
    path: str | Path, model: torch.nn.Module, config: TrainConfig, **extra: Any
) -> None:
    """Atomically write weights (moved to CPU) and config; ``extra`` must be
    primitives/tensors (optimizer state, epoch, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": config.to_dict(), "state_dict": state, **extra}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, loaded with weights_only=True; InputError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt/foreign files raise assorted types
        raise InputError(f"{path}: not a loadable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an rsna_pkg checkpoint (format {FORMAT} expected)")
    return payload


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    return torch.device(device)


@dataclass
class LoadedModel:
    """A trained model in eval mode plus everything needed to feed it."""

    model: CancerClassifier
    config: TrainConfig
    device: torch.device
    encoder: MetadataEncoder

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

    def predict_proba(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> np.ndarray:
        return torch.sigmoid(self.forward(images, meta)).numpy()

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
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match the stored config ({exc})") from exc
    dev = resolve_device(device)
    model.to(dev).eval()
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return LoadedModel(model, config, dev, MetadataEncoder.from_dict(config.metadata_encoder))
