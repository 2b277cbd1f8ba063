"""Augmentation: shape-preserving, seeded per sample, breast-box crop; the Dataset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from rsna_pkg.data.augment import AugmentConfig, build_augment, content_box
from rsna_pkg.data.dataset import MammoDataset, image_to_tensor


def _breast() -> torch.Tensor:
    img = torch.zeros(1, 64, 32)
    img[:, 8:56, :20] = torch.linspace(0.2, 0.9, 20)
    return img


def test_content_box_finds_the_bright_region() -> None:
    assert content_box(_breast()) == (8, 0, 48, 20)
    assert content_box(torch.zeros(1, 10, 6)) == (0, 0, 10, 6)


def test_off_switches_every_step_off() -> None:
    """Before: --no-augment listed the fields to zero by hand, so a new step stayed on under
    it. off() takes every switch's declared off value; a step whose switch declares none, or
    a wrong one, draws something here."""
    off = AugmentConfig.off()
    # what --no-augment wrote into config.json before off() existed (same values)
    assert off.to_dict() == {**AugmentConfig().to_dict(), "vflip": 0, "hflip": 0,
                             "affine_p": 0, "brightness": 0, "contrast": 0, "gamma_min": 1,
                             "gamma_max": 1, "crop_p": 0, "erase_p": 0}  # fmt: skip
    aug, img = build_augment(off), _breast()
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        params = aug.draw(img, g)
        assert params == type(params)(), (seed, params)  # no step drawn
        # nothing taken from the generator either
        assert torch.equal(g.get_state(), torch.Generator().manual_seed(seed).get_state())
        assert torch.equal(aug(img.clone(), torch.Generator().manual_seed(seed)), img)


def test_breast_crop_stays_inside_the_breast() -> None:
    only_crop = replace(AugmentConfig.off(), crop_p=1.0, crop_scale_min=0.5)
    out = build_augment(only_crop)(_breast(), torch.Generator().manual_seed(0))
    assert out.shape == (1, 64, 32)
    # the crop lies within the breast box, so (almost) no black padding remains
    assert (out > 0.05).float().mean() > 0.9


def test_augment_is_deterministic_per_seed_and_changes_pixels() -> None:
    aug = build_augment(AugmentConfig(crop_p=1.0, erase_p=1.0))
    x = _breast()
    before = torch.get_rng_state()
    a = aug(x.clone(), torch.Generator().manual_seed(5))
    b = aug(x.clone(), torch.Generator().manual_seed(5))
    c = aug(x.clone(), torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is never drawn from
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_dataset_augments_by_seed_epoch_row_and_leaves_global_rng(tmp_path) -> None:
    from PIL import Image

    paths = []
    for i in range(2):
        arr = (np.arange(64 * 32).reshape(64, 32) % 200 + i).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    meta = np.array([[1.0, 2.0], [3.0, 4.0]])
    ds = MammoDataset(paths, np.array([0, 1]), meta, 0.5, 0.25,
                      augment=build_augment(AugmentConfig()), seed=1)  # fmt: skip
    torch.manual_seed(123)
    before = torch.get_rng_state()
    x0, m, y, row = ds[1]  # epoch 0, row 1
    assert torch.equal(torch.get_rng_state(), before)
    assert x0.shape == (1, 64, 32) and y == 1.0 and row == 1
    assert torch.equal(m, torch.tensor([3.0, 4.0]))
    assert torch.equal(ds[1][0], x0)  # same (seed, epoch, row) -> same pixels
    assert not torch.equal(ds[1 + len(ds)][0], x0)  # next epoch -> new draw
    plain = MammoDataset(paths, np.array([0, 1]), None, 0.5, 0.25)
    expected = image_to_tensor(np.asarray(Image.open(paths[1])), 0.5, 0.25)
    assert torch.equal(plain[1][0], expected) and plain[1][1].numel() == 0


def _torchvision_pipeline(cfg: AugmentConfig):  # type: ignore[no-untyped-def]
    """The pipeline as it was built from torchvision v2 transforms on the global RNG."""
    from torchvision.transforms.v2 import functional as F

    class Crop(torch.nn.Module):  # the old BreastResizedCrop, global RNG
        def forward(self, img: torch.Tensor) -> torch.Tensor:
            if cfg.crop_p <= 0 or float(torch.rand(())) >= cfg.crop_p:
                return img
            top, left, h, w = content_box(img)
            frac = float(torch.empty(()).uniform_(cfg.crop_scale_min, 1.0)) ** 0.5
            ch, cw = max(8, round(h * frac)), max(8, round(w * frac))
            ch, cw = min(ch, img.shape[-2]), min(cw, img.shape[-1])
            t = top + int(torch.randint(0, max(1, h - ch + 1), ()))
            lf = left + int(torch.randint(0, max(1, w - cw + 1), ()))
            t, lf = min(t, img.shape[-2] - ch), min(lf, img.shape[-1] - cw)
            return F.resized_crop(img, t, lf, ch, cw, size=list(img.shape[-2:]), antialias=True)

    class Gamma(torch.nn.Module):
        def forward(self, img: torch.Tensor) -> torch.Tensor:
            u = float(torch.rand(()))
            lo, hi = np.log(cfg.gamma_min), np.log(cfg.gamma_max)
            return img.clamp(0.0, 1.0).pow(float(np.exp(lo + u * (hi - lo))))

    affine = v2.RandomAffine(degrees=cfg.degrees, translate=(cfg.translate, cfg.translate),
                             scale=(cfg.scale_min, cfg.scale_max))  # fmt: skip
    return v2.Compose([
        Crop(), v2.RandomVerticalFlip(cfg.vflip), v2.RandomApply([affine], p=cfg.affine_p),
        v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast), Gamma(),
        v2.RandomErasing(p=cfg.erase_p, scale=(0.01, 0.03), value=0.0),
    ])  # fmt: skip


@pytest.mark.parametrize("cfg", [AugmentConfig(), AugmentConfig(crop_p=0.7, erase_p=0.8)])
def test_owned_generator_gives_torchvisions_pixels(cfg: AugmentConfig) -> None:
    """Seeded alike, the generator-drawn pipeline equals torchvision's transforms on the
    global RNG pixel for pixel: moving off the global RNG changed no training input."""
    aug, reference = build_augment(cfg), _torchvision_pipeline(cfg)
    img = torch.rand(1, 96, 48) * 0.8
    img[:, :, 36:] = 0.0  # black padding beside the breast, as preprocessing leaves it
    for seed in range(120):
        torch.manual_seed(seed)
        expected = reference(img.clone())
        got = aug(img.clone(), torch.Generator().manual_seed(seed))
        assert torch.equal(got, expected), seed
