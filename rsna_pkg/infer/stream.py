"""Decode test images ahead of the model, in parallel, with bounded memory.

A map-style Dataset over test rows calls the one preprocessing function
(``rsna_pkg.preprocess.preprocess_file``) with the checkpoint's config; a torch
DataLoader runs it in worker processes and keeps ``workers * prefetch`` batches in
flight, so memory does not grow with the test set. Workers return numpy arrays (uint8 or
uint16), not tensors: they pickle through the worker pipe, need no shared-memory file
descriptors (which torch passes over sockets), and are 4x smaller than float32. A
failed image is returned as a reason, never raised, so one bad file costs one image.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rsna_pkg.errors import DicomError, describe


@dataclass(frozen=True)
class ImageItem:
    """One test row after preprocessing: an image, or the reason there is none."""

    index: int
    image: np.ndarray | None  # (H, W) uint8 | uint16
    reason: str
    seconds: float


@dataclass
class Batch:
    """Collated items: the decoded images of a batch and the rows that failed."""

    indices: np.ndarray  # (B,) int64, test rows of ``images``
    images: np.ndarray  # (B, H, W) uint8 | uint16; B may be 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    decode_seconds: float = 0.0


def preprocess_row(path: Path, config: Any) -> np.ndarray:
    """Decode + preprocess one file exactly as training did (the checkpoint's config)."""
    from rsna_pkg.preprocess import preprocess_file

    return np.ascontiguousarray(preprocess_file(path, config).image)


def load_item(index: int, path: Path, config: Any) -> ImageItem:
    """Never raises for a bad image: missing, zero-byte and undecodable files become reasons."""
    start = time.perf_counter()
    image: np.ndarray | None = None
    try:
        if not path.is_file():
            reason = "missing file"
        elif path.stat().st_size == 0:
            reason = "zero-byte file"
        else:
            image = preprocess_row(path, config)
            reason = ""
    except DicomError as exc:
        reason = exc.reason
    except Exception as exc:  # noqa: BLE001 - a hidden-test file may fail in any library
        reason = describe(exc)
    if image is not None and image.ndim != 2:
        reason = f"preprocessed image has shape {image.shape}, expected (H, W)"
        image = None
    return ImageItem(index, image, reason, time.perf_counter() - start)


class RowImages(Dataset):
    """Test rows ``paths[i]`` preprocessed with one PreprocessConfig."""

    def __init__(self, paths: Sequence[Path], config: Any) -> None:
        self.paths = list(paths)
        self.config = config

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> ImageItem:
        return load_item(index, self.paths[index], self.config)


def collate_items(items: list[ImageItem]) -> Batch:
    """Stack the decoded images (all one size: one config per loader) and list the failures."""
    ok = [it for it in items if it.image is not None]
    failures = [(it.index, it.reason) for it in items if it.image is None]
    if ok:
        images = np.stack([it.image for it in ok if it.image is not None])
    else:
        images = np.zeros((0, 0, 0), dtype=np.uint8)
    return Batch(
        indices=np.asarray([it.index for it in ok], dtype=np.int64),
        images=images,
        failures=failures,
        decode_seconds=float(sum(it.seconds for it in items)),
    )


def iterate_batches(
    paths: Sequence[Path], config: Any, batch_size: int, workers: int, prefetch: int = 2
) -> Iterator[Batch]:
    """Batches in test-row order; decoding runs ``workers`` processes ahead of the caller."""
    dataset = RowImages(paths, config)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs = {"prefetch_factor": prefetch, "persistent_workers": False}
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_items,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    yield from loader
