"""Training-time augmentation on [1, H, W] float images in [0, 1] (torchvision functionals).

``Augmenter.draw`` works out one sample's parameters from a ``torch.Generator`` it is handed
(the Dataset seeds one per sample from (seed, epoch, index)), ``Augmenter.apply`` applies
them: the same run therefore sees the same augmented pixels regardless of worker count or
resume, and nobody's global RNG is touched. The draws follow torchvision v2's own
RandomVerticalFlip / RandomAffine / ColorJitter / RandomErasing sampling, in the same order,
so a sample gets the very pixels those transforms gave under the same seed.
Defaults are mild: a crop or an erased patch can hide a small lesion and turn a
positive into label noise. Horizontal flips are off by default: preprocessing
always puts the breast on the left, and inference never flips, so a flipped
breast would be out of distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from rsna_pkg.data.augment_config import AugmentConfig

ERASE_SCALE = (0.01, 0.03)
ERASE_RATIO = (0.3, 3.3)  # torchvision's default aspect-ratio range


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw; None means the step is skipped."""

    crop: tuple[int, int, int, int] | None = None  # top, left, height, width
    vflip: bool = False
    hflip: bool = False
    affine: tuple[float, tuple[int, int], float] | None = None  # angle, (tx, ty), scale
    jitter_order: tuple[int, ...] = ()  # torchvision's fn_idx: 0 brightness, 1 contrast
    brightness: float | None = None
    contrast: float | None = None
    gamma: float | None = None
    erase: tuple[int, int, int, int] | None = None  # top, left, height, width


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


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return float(torch.empty(1).uniform_(lo, hi, generator=g).item())


def _chance(p: float, g: torch.Generator) -> bool:
    """True with probability p (one draw, as torchvision's ``torch.rand(1) < p``)."""
    return bool(torch.rand(1, generator=g) < p)


class Augmenter:
    """The training pipeline: geometry first, then intensity, then erasing."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self._log_ratio = torch.log(torch.tensor(ERASE_RATIO))  # float32, as torchvision's

    def __call__(self, img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(img, self.draw(img, generator))

    def draw(self, img: torch.Tensor, g: torch.Generator) -> AugmentParams:
        """Every random choice for ``img`` [1, H, W], from ``g`` alone."""
        c = self.cfg
        height, width = img.shape[-2:]
        out: dict[str, Any] = {}
        if c.crop_p > 0 and _chance(c.crop_p, g):
            out["crop"] = self._crop_box(img, g)
        if c.vflip > 0:
            out["vflip"] = _chance(c.vflip, g)
        if c.hflip > 0:
            out["hflip"] = _chance(c.hflip, g)
        if c.affine_p > 0 and _chance(c.affine_p, g):
            angle = _uniform(-c.degrees, c.degrees, g)
            max_dx, max_dy = float(c.translate * width), float(c.translate * height)
            tx = int(round(_uniform(-max_dx, max_dx, g)))
            ty = int(round(_uniform(-max_dy, max_dy, g)))
            out["affine"] = (angle, (tx, ty), _uniform(c.scale_min, c.scale_max, g))
        if c.brightness > 0 or c.contrast > 0:
            out["jitter_order"] = tuple(int(i) for i in torch.randperm(4, generator=g))
            if c.brightness > 0:
                out["brightness"] = _uniform(max(0.0, 1 - c.brightness), 1 + c.brightness, g)
            if c.contrast > 0:
                out["contrast"] = _uniform(max(0.0, 1 - c.contrast), 1 + c.contrast, g)
        if not c.gamma_min == c.gamma_max == 1.0:
            u = float(torch.rand((), generator=g))
            lo, hi = math.log(c.gamma_min), math.log(c.gamma_max)
            out["gamma"] = math.exp(lo + u * (hi - lo))
        if c.erase_p > 0 and _chance(c.erase_p, g):
            out["erase"] = self._erase_box(height, width, g)
        return AugmentParams(**out)

    def _crop_box(self, img: torch.Tensor, g: torch.Generator) -> tuple[int, int, int, int]:
        """A sub-box covering [crop_scale_min, 1] of the breast box's area, inside it."""
        top, left, h, w = content_box(img)
        frac = _uniform(self.cfg.crop_scale_min, 1.0, g) ** 0.5
        ch, cw = max(8, round(h * frac)), max(8, round(w * frac))
        ch, cw = min(ch, img.shape[-2]), min(cw, img.shape[-1])
        t = top + int(torch.randint(0, max(1, h - ch + 1), (), generator=g))
        lf = left + int(torch.randint(0, max(1, w - cw + 1), (), generator=g))
        return min(t, img.shape[-2] - ch), min(lf, img.shape[-1] - cw), ch, cw

    def _erase_box(self, height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
        """torchvision RandomErasing's box: up to 10 tries, else the whole image (a no-op)."""
        area = height * width
        for _ in range(10):
            erase_area = area * _uniform(*ERASE_SCALE, g)
            lr = self._log_ratio
            ratio = torch.exp(torch.empty(1).uniform_(lr[0], lr[1], generator=g)).item()  # type: ignore[arg-type]
            h = int(round(math.sqrt(erase_area * ratio)))
            w = int(round(math.sqrt(erase_area / ratio)))
            if h < height and w < width:
                i = int(torch.randint(0, height - h + 1, size=(1,), generator=g).item())
                j = int(torch.randint(0, width - w + 1, size=(1,), generator=g).item())
                return i, j, h, w
        return 0, 0, height, width

    @staticmethod
    def apply(img: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """The deterministic half: ``img`` transformed by the drawn parameters."""
        if p.crop is not None:
            t, lf, ch, cw = p.crop
            img = F.resized_crop(img, t, lf, ch, cw, size=list(img.shape[-2:]), antialias=True)
        if p.vflip:
            img = F.vertical_flip(img)
        if p.hflip:
            img = F.horizontal_flip(img)
        if p.affine is not None:
            angle, (tx, ty), scale = p.affine
            img = F.affine(img, angle=angle, translate=[tx, ty], scale=scale, shear=[0.0, 0.0],
                           interpolation=InterpolationMode.NEAREST, fill=0)  # fmt: skip
        for fn in p.jitter_order:
            if fn == 0 and p.brightness is not None:
                img = F.adjust_brightness(img, brightness_factor=p.brightness)
            elif fn == 1 and p.contrast is not None:
                img = F.adjust_contrast(img, contrast_factor=p.contrast)
        if p.gamma is not None:
            img = img.clamp(0.0, 1.0).pow(p.gamma)
        if p.erase is not None and p.erase[2:] != tuple(img.shape[-2:]):
            i, j, h, w = p.erase
            img = F.erase(img, i, j, h, w, torch.tensor([0.0])[:, None, None])
        return img


def build_augment(cfg: AugmentConfig) -> Augmenter:
    return Augmenter(cfg)
