"""From preprocessed PNGs (``rsna preprocess`` output) to training batches.

``image_to_tensor`` is THE conversion from a preprocessed image array to the
model's input; the training Dataset and ``LoadedModel.image_tensor`` (inference)
both call it, so normalisation cannot drift between them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from rsna_pkg.data.augment import Augmenter
from rsna_pkg.data.sampling import balanced_batches, keep_negatives, negatives_kept
from rsna_pkg.data.schema import check_columns, prediction_ids, read_table
from rsna_pkg.errors import InputError
from rsna_pkg.outputs import MANIFEST_NAME, MANIFEST_REQUIRED

log = logging.getLogger(__name__)


def image_to_tensor(
    img: np.ndarray,
    mean: float,
    std: float,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(H, W) uint8/uint16 image -> [1, H, W] float32, scaled to [0, 1] by the
    dtype's range, optionally augmented (in [0, 1]), then (x - mean) / std."""
    if img.ndim != 2:
        raise InputError(f"expected a 2-D grayscale image, got shape {img.shape}")
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    else:
        raise InputError(f"expected a uint8 or uint16 image, got {img.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(img).astype(np.float32) / scale)[None]
    if augment is not None:
        x = augment(x)
    return (x - mean) / std


def read_png(path: str | Path) -> np.ndarray:
    """A grayscale PNG as uint8 (8-bit) or uint16 (16-bit) array."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        raise InputError(f"{path}: expected a grayscale PNG, got {arr.shape[2]} channels")
    if arr.dtype not in (np.uint8, np.uint16):
        arr = arr.astype(np.uint16)
    return arr


def load_image_table(data_dir: str | Path, images_dir: str | Path) -> pd.DataFrame:
    """train.csv joined with the preprocess manifest: one row per usable image.

    Rows whose manifest status is not ``ok``, whose PNG is missing on disk, or
    that have no manifest entry are dropped, and each count is printed.
    Adds ``path`` (absolute PNG path) and ``prediction_id``.
    """
    images_dir = Path(images_dir)
    table = read_table(Path(data_dir) / "train.csv", "train")
    manifest_path = images_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path}: not found; run `rsna preprocess` first")
    manifest = pd.read_csv(manifest_path)
    check_columns(manifest, MANIFEST_REQUIRED, manifest_path)
    ok = manifest["status"].astype(str) == "ok"
    if (~ok).sum():
        log.info(f"skipping {int((~ok).sum())} image(s) the manifest marks as errors")
    manifest = manifest.loc[ok, ["patient_id", "image_id", "png"]].drop_duplicates("image_id")
    df = table.merge(manifest, on=["patient_id", "image_id"], how="inner")
    if len(df) < len(table):
        log.info(f"skipping {len(table) - len(df)} train.csv image(s) without a usable PNG")
    df["path"] = [str(images_dir / p) for p in df["png"]]
    exists = np.array([Path(p).is_file() for p in df["path"]], dtype=bool)
    if (~exists).any():
        log.warning(
            f"skipping {int((~exists).sum())} image(s) listed in the manifest but missing on disk"
        )
        df = df.loc[exists]
    if df.empty:
        raise InputError(f"{images_dir}: no usable preprocessed image matches {data_dir}/train.csv")
    df = df.drop(columns=["png"]).reset_index(drop=True)
    df["prediction_id"] = prediction_ids(df)
    return df


class MammoDataset(Dataset):
    """Items are (image [1,H,W], meta [F] (F may be 0), label float, row index).

    Keys are ``epoch * len(self) + row`` (see EpochSampler) so that augmentation
    is seeded by (seed, epoch, row) even inside persistent worker processes.
    """

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray,
        meta: np.ndarray | None,
        mean: float,
        std: float,
        augment: Augmenter | None = None,
        seed: int = 0,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.meta = None if meta is None else torch.from_numpy(np.asarray(meta, np.float32))
        self.mean, self.std, self.augment, self.seed, self.size = mean, std, augment, seed, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor, float, int]:
        epoch, row = divmod(int(key), len(self.paths))
        img = read_png(self.paths[row])
        if self.size is not None and img.shape != self.size:
            raise InputError(
                f"{self.paths[row]}: image is {img.shape[0]}x{img.shape[1]}, "
                f"expected {self.size[0]}x{self.size[1]} (re-run rsna preprocess --size)"
            )
        if self.augment is None:
            x = image_to_tensor(img, self.mean, self.std)
        else:  # this sample's own generator: the same pixels in any worker, on any resume
            g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, row))
            x = image_to_tensor(img, self.mean, self.std, partial(self.augment, generator=g))
        meta = self.meta[row] if self.meta is not None else torch.zeros(0)
        return x, meta, float(self.labels[row]), row


def sample_seed(seed: int, epoch: int, row: int) -> int:
    """A distinct 63-bit seed per (seed, epoch, row)."""
    state = np.random.SeedSequence([seed, epoch, row]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


class EpochSampler(Sampler[int]):
    """Per-epoch index order, sharded over DDP ranks, yielding ``epoch * n + row``.

    ``oversample`` repeats positives so they make up about ``pos_fraction`` of an
    epoch (class balance); ``pos_per_batch`` > 0 instead makes every run of
    ``batch_size`` rows hold that many positives (``sampling.balanced_batches``).
    ``neg_fraction`` < 1 keeps a fresh random subset of the negatives each epoch, with
    either. Training shards are truncated to equal length so every rank runs the same
    number of steps (whole batches in batch mode); evaluation shards are not padded, so
    no image is counted twice when predictions are gathered.
    """

    def __init__(
        self,
        labels: np.ndarray,
        *,
        train: bool,
        oversample: bool = False,
        pos_fraction: float = 0.25,
        neg_fraction: float = 1.0,
        pos_per_batch: int = 0,
        batch_size: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = np.asarray(labels)
        self.train, self.oversample, self.pos_fraction = train, oversample, pos_fraction
        self.neg_fraction, self.pos_per_batch, self.batch_size = (
            neg_fraction,
            pos_per_batch,
            batch_size,
        )
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_rows(self) -> np.ndarray:
        n = len(self.labels)
        rows = np.arange(n)
        if not self.train:
            return rows[self.rank :: self.world_size]
        rng = np.random.default_rng([self.seed, self.epoch])
        pos = np.flatnonzero(self.labels > 0)
        if self.neg_fraction < 1 or self.pos_per_batch:  # else no draw: today's order exactly
            neg = keep_negatives(np.flatnonzero(self.labels <= 0), self.neg_fraction, rng)
            if self.pos_per_batch:  # shard whole batches, so each keeps its positives
                batches = balanced_batches(pos, neg, self.batch_size, self.pos_per_batch, rng)
                usable = len(batches) - len(batches) % self.world_size
                return batches[:usable][self.rank :: self.world_size].reshape(-1)
            rows = np.sort(np.concatenate([pos, neg]))
        if self.oversample:
            rows = np.concatenate([rows, *[pos] * self.extra_copies()])
        rows = rng.permutation(rows)
        usable = len(rows) - len(rows) % self.world_size
        return rows[:usable][self.rank :: self.world_size]

    def extra_copies(self) -> int:
        """Additional copies of each positive to reach ``pos_fraction`` (of the epoch's
        images: the kept negatives count)."""
        pos = int((self.labels > 0).sum())
        neg = negatives_kept(len(self.labels) - pos, self.neg_fraction)
        if pos == 0 or not 0 < self.pos_fraction < 1:
            return 0
        want = self.pos_fraction * neg / (1 - self.pos_fraction)
        return max(0, round(want / pos) - 1)

    def __iter__(self) -> Iterator[int]:
        n = len(self.labels)
        return iter((self.epoch * n + self.epoch_rows()).tolist())

    def __len__(self) -> int:
        return len(self.epoch_rows())
