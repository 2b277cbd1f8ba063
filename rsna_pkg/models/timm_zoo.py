"""timm backbones (the optional ``rsna_pkg[timm]`` extra): ``--backbone timm:NAME[.TAG]``.

Any model timm knows, built by ``timm.create_model(NAME, pretrained=False, num_classes=0,
in_chans=1)``: random init, nothing downloaded, pooled features [B, D] out, a 1-channel stem.
ImageNet weights come only from a local ``.safetensors`` / ``.pth`` file (the form a Kaggle
dataset holds: timm's own state_dict, maybe under "state_dict" or "model"), read by timm's
``load_state_dict`` (safetensors, or ``torch.load(weights_only=True)``); the stem's RGB
kernels are summed with ``adapt_input_conv`` (identical output to the gray image fed 3
times), the classifier is dropped, and everything else must match exactly. The model's
pretrained data config (mean, std, input size) goes into the ModelConfig.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import describe, one_line
from rsna_pkg.models.config import PretrainedConfig

PREFIX = "timm:"


def is_timm(backbone: str) -> bool:
    return backbone.startswith(PREFIX)


def _timm(backbone: str) -> ModuleType:
    try:
        import timm
    except ImportError as exc:
        raise FieldError(
            "backbone", "timm is not installed (pip install 'rsna_pkg[timm]')", value=backbone
        ) from exc
    return timm


def timm_name(backbone: str) -> str:
    """The timm model name of ``timm:NAME``; InputError when timm does not know it."""
    timm = _timm(backbone)
    name = backbone[len(PREFIX) :]
    if not timm.is_model(name):
        raise FieldError(
            "backbone",
            f"timm {timm.__version__} has no model {name!r} (timm.list_models() lists them)",
            value=backbone,
        )
    return str(name)


def pretrained_config(backbone: str) -> PretrainedConfig:
    """The data config of ``timm:NAME[.TAG]`` from timm's registry (no model built)."""
    timm = _timm(backbone)
    name = timm_name(backbone)
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown pretrained tag
        raise FieldError("backbone", str(exc), value=backbone) from exc
    if cfg is None:
        raise FieldError(
            "backbone", f"timm {timm.__version__} has no config for it", value=backbone
        )
    data = resolve_data_config(pretrained_cfg=cfg.to_dict())
    full = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else str(cfg.architecture)
    return PretrainedConfig(
        name=full,
        mean=tuple(float(v) for v in data["mean"]),
        std=tuple(float(v) for v in data["std"]),
        input_size=tuple(int(v) for v in data["input_size"]),
        interpolation=str(data.get("interpolation", "")),
    )


def build_timm(backbone: str, pretrained: str | Path | None = None) -> tuple[nn.Module, int]:
    """(model [B, 1, H, W] -> [B, D], D) for ``timm:NAME``; weights from a local file."""
    timm = _timm(backbone)
    model = timm.create_model(timm_name(backbone), pretrained=False, num_classes=0, in_chans=1)
    if pretrained is not None:
        load_weights(model, pretrained)
    # head_hidden_size: the width after a pre-logits layer (MobileNetV3's conv_head ...)
    dim = getattr(model, "head_hidden_size", None) or model.num_features
    return model, int(dim)


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local 3-channel (ImageNet) timm state_dict into the 1-channel ``model``."""
    from timm.models import adapt_input_conv, load_state_dict

    path = Path(path)
    if not path.is_file():
        raise FieldError("pretrained", "file not found (weights are never downloaded)", value=path)
    try:
        state = dict(load_state_dict(str(path), device="cpu", weights_only=True))
    except Exception as exc:  # safetensors, torch and timm each raise their own types
        raise FieldError(
            "pretrained", f"not a loadable weights file ({describe(exc)})", value=path
        ) from exc
    cfg: dict[str, Any] = getattr(model, "pretrained_cfg", {}) or {}
    for head in _names(cfg.get("classifier")):  # the 1000-class layer num_classes=0 drops
        state.pop(f"{head}.weight", None)
        state.pop(f"{head}.bias", None)
    for conv in _names(cfg.get("first_conv")):
        key, stem = f"{conv}.weight", model.get_submodule(conv)
        weight, target = state.get(key), getattr(stem, "weight", None)
        if (
            weight is not None
            and target is not None
            and weight.ndim == 4
            and weight.shape[1] != target.shape[1]
        ):
            state[key] = adapt_input_conv(1, weight)  # sum of the RGB kernels
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise FieldError(
            "pretrained", f"does not match the backbone ({one_line(exc)})", value=path
        ) from exc
