"""Image (+ metadata) classifier: backbone features concatenated with a small
metadata MLP, then one linear layer to a single cancer logit.

Freeze modes (``apply_freeze``):
- ``none``: everything trains (the default without pretrained weights, since
  frozen random convolutions cannot learn anything useful);
- ``features``: the convolutional body is frozen, the backbone's own FC layers
  (VGG/AlexNet classifier, ConvNeXt norm) and the fusion head train -- the
  study's setting (frozen pretrained VGG11 features);
- ``classifier``: only the fusion head (and any auxiliary heads) trains (linear probe on
  frozen features);
- ``top``: a timm EfficientNet-like body (``conv_stem``, ``blocks`` stages, ``conv_head``)
  frozen up to its last stage; that stage, the head conv and the fusion head train -- the
  seed's "last blocks unfrozen" variant of frozen features.
Frozen parts are kept in eval mode so their BatchNorm statistics stay fixed.

Gradient checkpointing (``set_grad_checkpointing``, training only, never stored) keeps
only some of the body's activations and recomputes the rest during backward: timm
bodies by their own ``set_grad_checkpointing`` (per block), torchvision ones segment by
segment (``zoo.body_segments``: per block). Same gradients, one more forward of the body;
BatchNorm running statistics are updated again by the recomputation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rsna_pkg.config_fields import FieldError
from rsna_pkg.models.zoo import body_segments, build_backbone

FREEZE_MODES: tuple[str, ...] = ("none", "features", "classifier", "top")
META_HIDDEN = 32


class FusionHead(nn.Module):
    """[B, D] image features (+ [B, F] metadata) -> [B] logits."""

    def __init__(self, image_dim: int, meta_dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.meta_dim = meta_dim
        self.meta: nn.Module | None = None
        if meta_dim > 0:
            self.meta = nn.Sequential(
                nn.Linear(meta_dim, META_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(META_HIDDEN, META_HIDDEN),
                nn.ReLU(inplace=True),
            )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(image_dim + (META_HIDDEN if meta_dim > 0 else 0), 1)

    def forward(self, feats: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        x = self.dropout(feats)
        if self.meta is not None:
            if meta is None:
                raise ValueError("this model was trained with metadata; pass the meta tensor")
            x = torch.cat([x, self.meta(meta.to(x.dtype))], dim=1)
        return self.out(x).squeeze(1)


class CancerClassifier(nn.Module):
    """Backbone body -> neck -> fusion head; optional auxiliary heads on the same image
    features, for training only (``aux_heads``: (name, logits) pairs)."""

    def __init__(
        self,
        backbone: str,
        meta_dim: int = 0,
        pretrained: str | Path | None = None,
        dropout: float = 0.2,
        aux_heads: tuple[tuple[str, int], ...] = (),
    ) -> None:
        super().__init__()
        bb = build_backbone(backbone, pretrained)
        self.body = bb.body
        self.neck = bb.neck
        self.head = FusionHead(bb.dim, meta_dim, dropout)
        # built last, so every other layer's random init is the same with or without them
        self.aux_dropout = nn.Dropout(dropout)
        self.aux_heads = nn.ModuleDict({name: nn.Linear(bb.dim, n) for name, n in aux_heads})
        self.freeze = "none"
        self.grad_checkpointing = False  # torchvision bodies; timm ones keep their own flag

    def forward(
        self, images: torch.Tensor, meta: torch.Tensor | None = None, aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """images [B, 1, H, W] float, meta [B, F] or None -> logits [B]; with ``aux``
        (training: through DDP's forward, so the heads' gradients sync too) also
        {head name: logits [B, n]}. The cancer logits do not depend on the heads."""
        feats = images
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            for segment in body_segments(self.body):  # keeps each segment's input only
                feats = checkpoint(segment, feats, use_reentrant=False)
        else:
            feats = self.body(images)
        feats = self.neck(feats)  # [B, D]
        logits = self.head(feats, meta)
        if not aux:
            return logits
        x = self.aux_dropout(feats)
        return logits, {name: head(x) for name, head in self.aux_heads.items()}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade one extra body forward per step for most of its activation memory."""
        timm_switch = getattr(self.body, "set_grad_checkpointing", None)  # a timm model
        if callable(timm_switch):
            timm_switch(enable)
        else:
            self.grad_checkpointing = enable

    def train(self, mode: bool = True) -> CancerClassifier:
        super().train(mode)
        for part in self.frozen_parts():
            part.eval()
        return self

    def frozen_parts(self) -> list[nn.Module]:
        if self.freeze == "features":
            return [self.body]
        if self.freeze == "classifier":
            return [self.body, self.neck]
        if self.freeze == "top":
            return below_last_stage(self.body)
        return []


def below_last_stage(body: nn.Module) -> list[nn.Module]:
    """The layers of a timm EfficientNet-like body before its last stage (stem, its norm,
    every stage but the last); InputError for a body without that layout."""
    blocks = getattr(body, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not hasattr(body, "conv_stem") or len(blocks) < 2:
        raise FieldError("freeze", f"{type(body).__name__} has no conv_stem + blocks stages "
                         "(a timm EfficientNet/MobileNet does)", value="top")  # fmt: skip
    stem = [m for m in (body.conv_stem, getattr(body, "bn1", None)) if isinstance(m, nn.Module)]
    return [*stem, *list(blocks)[:-1]]


def apply_freeze(model: CancerClassifier, mode: str) -> None:
    """Set requires_grad according to the freeze mode (see module docstring)."""
    if mode not in FREEZE_MODES:
        raise FieldError("freeze", f"choose one of {', '.join(FREEZE_MODES)}", value=repr(mode))
    if mode == "top":
        below_last_stage(model.body)  # refuse a body without stages before training starts
    model.freeze = mode
    for p in model.parameters():
        p.requires_grad_(True)
    for part in model.frozen_parts():
        for p in part.parameters():
            p.requires_grad_(False)
    model.train(model.training)
