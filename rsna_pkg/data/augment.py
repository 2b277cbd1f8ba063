"""Training-time augmentation on [1, H, W] float images in [0, 1] (torchvision v2).

Randomness comes from torch's global generator, which the Dataset seeds per
sample from (seed, epoch, index) (restoring its state afterwards); the same run
therefore sees the same augmented pixels regardless of worker count or resume.
Defaults are mild: a crop or an erased patch can hide a small lesion and turn a
positive into label noise. Horizontal flips are off by default: preprocessing
always puts the breast on the left, and inference never flips, so a flipped
breast would be out of distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from rsna_pkg.errors import InputError

Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AugmentConfig:
    vflip: float = 0.5
    hflip: float = 0.0
    affine_p: float = 0.5
    degrees: float = 10.0
    translate: float = 0.05
    scale_min: float = 0.9
    scale_max: float = 1.1
    brightness: float = 0.15
    contrast: float = 0.15
    gamma_min: float = 0.8
    gamma_max: float = 1.25
    crop_p: float = 0.2
    crop_scale_min: float = 0.75
    erase_p: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"augment config: unknown key(s) {sorted(unknown)}")
        return cls(**d)


def content_box(img: torch.Tensor, level: float = 0.04) -> tuple[int, int, int, int]:
    """(top, left, height, width) of pixels brighter than ``level`` -- the breast,
    since preprocessing pads with black. The whole image when nothing is bright."""
    mask = img[0] > level
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0 or cols.numel() == 0:
        return 0, 0, img.shape[-2], img.shape[-1]
    top, left = int(rows[0]), int(cols[0])
    return top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1


class BreastResizedCrop(torch.nn.Module):
    """With probability p, crop a random sub-box covering ``scale`` of the breast
    box (area) and resize it back to the full image size."""

    def __init__(self, p: float, scale_min: float) -> None:
        super().__init__()
        self.p, self.scale_min = p, scale_min

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return img
        top, left, h, w = content_box(img)
        frac = float(torch.empty(()).uniform_(self.scale_min, 1.0)) ** 0.5
        ch, cw = max(8, round(h * frac)), max(8, round(w * frac))
        ch, cw = min(ch, img.shape[-2]), min(cw, img.shape[-1])
        t = top + int(torch.randint(0, max(1, h - ch + 1), ()))
        lf = left + int(torch.randint(0, max(1, w - cw + 1), ()))
        t, lf = min(t, img.shape[-2] - ch), min(lf, img.shape[-1] - cw)
        return F.resized_crop(img, t, lf, ch, cw, size=list(img.shape[-2:]), antialias=True)


class RandomGamma(torch.nn.Module):
    """x ** gamma with gamma drawn log-uniformly in [lo, hi] (lo <= 1 <= hi)."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.lo == self.hi == 1.0:
            return img
        u = float(torch.rand(()))
        gamma = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return img.clamp(0.0, 1.0).pow(gamma)


def build_augment(cfg: AugmentConfig) -> Augment:
    """The training pipeline: geometry first, then intensity, then erasing."""
    steps: list[torch.nn.Module] = [BreastResizedCrop(cfg.crop_p, cfg.crop_scale_min)]
    if cfg.vflip > 0:
        steps.append(v2.RandomVerticalFlip(cfg.vflip))
    if cfg.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.affine_p > 0:
        affine = v2.RandomAffine(
            degrees=cfg.degrees,
            translate=(cfg.translate, cfg.translate),
            scale=(cfg.scale_min, cfg.scale_max),
        )
        steps.append(v2.RandomApply([affine], p=cfg.affine_p))  # grid_sample is the costly step
    if cfg.brightness > 0 or cfg.contrast > 0:
        steps.append(v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast))
    steps.append(RandomGamma(cfg.gamma_min, cfg.gamma_max))
    if cfg.erase_p > 0:
        steps.append(v2.RandomErasing(p=cfg.erase_p, scale=(0.01, 0.03), value=0.0))
    return v2.Compose(steps)
