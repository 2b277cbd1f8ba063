"""Augmentation: shape-preserving, seeded per sample, breast-box crop; the Dataset."""

from __future__ import annotations

import numpy as np
import torch

from rsna_pkg.data.augment import AugmentConfig, BreastResizedCrop, build_augment, content_box
from rsna_pkg.data.dataset import MammoDataset, image_to_tensor


def _breast() -> torch.Tensor:
    img = torch.zeros(1, 64, 32)
    img[:, 8:56, :20] = torch.linspace(0.2, 0.9, 20)
    return img


def test_content_box_finds_the_bright_region() -> None:
    assert content_box(_breast()) == (8, 0, 48, 20)
    assert content_box(torch.zeros(1, 10, 6)) == (0, 0, 10, 6)


def test_breast_crop_stays_inside_the_breast() -> None:
    torch.manual_seed(0)
    out = BreastResizedCrop(p=1.0, scale_min=0.5)(_breast())
    assert out.shape == (1, 64, 32)
    # the crop lies within the breast box, so (almost) no black padding remains
    assert (out > 0.05).float().mean() > 0.9


def test_augment_is_deterministic_per_seed_and_changes_pixels() -> None:
    aug = build_augment(AugmentConfig(crop_p=1.0, erase_p=1.0))
    x = _breast()
    torch.manual_seed(5)
    a = aug(x.clone())
    torch.manual_seed(5)
    b = aug(x.clone())
    torch.manual_seed(6)
    c = aug(x.clone())
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
