"""Backbone factory over torchvision: one place that knows each family's layout.

Every backbone is built with ``weights=None`` (nothing is ever downloaded);
ImageNet weights come only from a local state_dict file. The torchvision model
is split into ``body`` (convolutions + global pooling -> [B, D]) and ``neck``
(the pre-logit classifier layers VGG/AlexNet/ConvNeXt keep, else Identity); the
1000-class layer is dropped. Mammograms are grayscale, so the first 3-channel
convolution is replaced by a 1-channel one whose kernel is the sum of the RGB
kernels: identical output to feeding the gray image repeated 3 times, at a third
of the first layer's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import InputError, one_line
from rsna_pkg.models import timm_zoo

BACKBONES: tuple[str, ...] = (
    "resnet18", "resnet50", "alexnet", "vgg11", "vgg16", "vgg19", "squeezenet1_1",
    "densenet121", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_v2_s", "convnext_tiny", "convnext_small",
)  # fmt: skip


@dataclass
class Backbone:
    body: nn.Module  # [B, 1, H, W] -> [B, body_dim]
    neck: nn.Module  # [B, body_dim] -> [B, dim]; the part "features" freezing leaves trainable
    dim: int


def build_backbone(name: str, pretrained: str | Path | None = None) -> Backbone:
    """Build a 1-channel backbone; ``pretrained`` is a local torchvision state_dict file
    (for ``timm:NAME``, a timm .safetensors/.pth file)."""
    if timm_zoo.is_timm(name):
        model, dim = timm_zoo.build_timm(name, pretrained)
        return Backbone(body=model, neck=nn.Identity(), dim=dim)  # pooled by timm itself
    check_backbone(name)
    model = getattr(tvm, name)(weights=None)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    _to_grayscale(model)
    return _SPLITTERS[_family(name)](model)


def check_backbone(name: str) -> None:
    """InputError unless ``name`` is a torchvision backbone of BACKBONES or a timm model."""
    if timm_zoo.is_timm(name):
        timm_zoo.timm_name(name)
    elif name not in BACKBONES:
        raise InputError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)} or timm:NAME"
        )


def check_input_size(name: str, height: int, width: int) -> None:
    """InputError when backbone ``name`` cannot take HxW images (alexnet below 64 px a
    side, a ViT of fixed size ...): a forward on the meta device, shapes only, no compute."""
    with torch.device("meta"):
        bb = build_backbone(name)
        body, neck = bb.body.eval(), bb.neck.eval()
        try:
            neck(body(torch.zeros(1, 1, height, width)))
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise FieldError(
                "size",
                f"{name} cannot take {height}x{width} images ({one_line(exc)})",
                value=f"{height} {width}",
            ) from exc


def backbone_model_fields(name: str) -> dict[str, Any]:
    """ModelConfig fields a backbone implies: for timm, its pretrained data config and
    the gray normalisation derived from it; torchvision keeps the ModelConfig defaults."""
    if not timm_zoo.is_timm(name):
        return {}
    cfg = timm_zoo.pretrained_config(name)
    mean, std = cfg.gray_norm()
    return {"pretrained_cfg": cfg, "norm_mean": mean, "norm_std": std}


def body_segments(body: nn.Module) -> list[nn.Sequential]:
    """A torchvision body cut into the segments gradient checkpointing recomputes one by
    one; applying them in order is ``body(x)``. Plain Sequentials are opened up to their
    blocks (a ResNet/MBConv/CNBlock/Fire/dense block is one segment); runs of plain layers
    (conv, norm, activation) stay together up to a pooling layer, so a segment boundary
    is a small tensor and no segment starts with an in-place activation of the previous
    one's output. ResNet's forward is spelled out (its body keeps torchvision's attribute
    names, and so its checkpoint keys)."""
    if isinstance(body, tvm.ResNet):
        top: list[nn.Module] = [body.conv1, body.bn1, body.relu, body.maxpool, body.layer1,
                                body.layer2, body.layer3, body.layer4, body.avgpool,
                                nn.Flatten(1), body.fc]  # fmt: skip
    else:
        top = [body]
    segments: list[nn.Sequential] = []
    layers: list[nn.Module] = []
    for module in (m for t in top for m in _opened(t)):
        if next(module.children(), None) is not None:  # a block
            segments += [nn.Sequential(*layers)] if layers else []
            segments.append(nn.Sequential(module))
            layers = []
            continue
        layers.append(module)
        if isinstance(module, _POOLS):
            segments.append(nn.Sequential(*layers))
            layers = []
    return segments + ([nn.Sequential(*layers)] if layers else [])


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _opened(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [m for child in module for m in _opened(child)]
    return [module]


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load ImageNet weights saved with ``torch.save(model.state_dict())``."""
    path = Path(path)
    if not path.is_file():
        raise FieldError("pretrained", "file not found (weights are never downloaded)", value=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt file
        raise FieldError("pretrained", f"not a loadable state_dict ({exc})", value=path) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0]
        raise FieldError(
            "pretrained", f"does not match the backbone ({first})", value=path
        ) from exc


def _family(name: str) -> str:
    for fam in ("resnet", "vgg", "efficientnet", "convnext", "densenet", "squeezenet", "alexnet"):
        if name.startswith(fam):
            return fam
    raise InputError(f"no layout known for backbone {name!r}")


def _to_grayscale(model: nn.Module) -> None:
    """Replace the first 3-channel Conv2d by a 1-channel conv with summed kernels."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                gray = nn.Conv2d(
                    1,
                    child.out_channels,
                    kernel_size=child.kernel_size,  # type: ignore[arg-type]
                    stride=child.stride,  # type: ignore[arg-type]
                    padding=child.padding,  # type: ignore[arg-type]
                    dilation=child.dilation,  # type: ignore[arg-type]
                    groups=child.groups,
                    bias=child.bias is not None,
                )
                with torch.no_grad():
                    gray.weight.copy_(child.weight.sum(dim=1, keepdim=True))
                    if child.bias is not None and gray.bias is not None:
                        gray.bias.copy_(child.bias)
                setattr(parent, child_name, gray)
                return
    raise InputError(f"{type(model).__name__}: no 3-channel input convolution found")


def _pooled(features: nn.Module, *extra: nn.Module) -> nn.Module:
    return nn.Sequential(features, *extra, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _split_resnet(m: Any) -> Backbone:
    dim = m.fc.in_features
    m.fc = nn.Identity()  # torchvision's resnet already pools and flattens
    return Backbone(body=m, neck=nn.Identity(), dim=dim)


def _split_vgg_like(m: Any) -> Backbone:
    # alexnet / vgg: conv features, adaptive pool to a fixed grid, FC layers (the "classifier").
    body = nn.Sequential(m.features, m.avgpool, nn.Flatten(1))
    neck = nn.Sequential(*list(m.classifier.children())[:-1])
    return Backbone(body=body, neck=neck, dim=m.classifier[-1].in_features)


def _split_efficientnet(m: Any) -> Backbone:
    return Backbone(body=_pooled(m.features), neck=nn.Identity(), dim=m.classifier[-1].in_features)


def _split_convnext(m: Any) -> Backbone:
    neck = nn.Sequential(*list(m.classifier.children())[:-1])  # LayerNorm2d + Flatten
    body = nn.Sequential(m.features, m.avgpool)
    return Backbone(body=body, neck=neck, dim=m.classifier[-1].in_features)


def _split_densenet(m: Any) -> Backbone:
    return Backbone(
        body=_pooled(m.features, nn.ReLU()), neck=nn.Identity(), dim=m.classifier.in_features
    )


def _split_squeezenet(m: Any) -> Backbone:
    # The 1x1 "classifier" conv maps to 1000 classes; keep the 512-channel features.
    return Backbone(body=_pooled(m.features), neck=nn.Identity(), dim=512)


_SPLITTERS: dict[str, Callable[[Any], Backbone]] = {
    "resnet": _split_resnet,
    "vgg": _split_vgg_like,
    "alexnet": _split_vgg_like,
    "efficientnet": _split_efficientnet,
    "convnext": _split_convnext,
    "densenet": _split_densenet,
    "squeezenet": _split_squeezenet,
}
