"""Data loader vs training step throughput (images/s), measured in one run.

The loader figure is the training DataLoader alone (PNG read + augmentation +
normalisation, N workers); the step figure is forward + backward + optimiser
step on a fixed batch. The loader should outrun the step (target: >= 2x) so
training is compute-bound. Without --images, random PNGs are written to a
temporary folder first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", default=None, help="`rsna preprocess` folder (default: random)")
    parser.add_argument("--size", nargs=2, type=int, default=[512, 256], metavar=("H", "W"))
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--json", default=None, help="also write the figures here")


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.train.report import write_json

    result = bench_train(
        images=args.images, size=tuple(args.size), backbone=args.backbone,
        batch_size=args.batch_size, workers=args.workers, batches=args.batches, device=args.device,
    )  # fmt: skip
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.json:
        write_json(args.json, result)
    return 0


def _random_pngs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = np.zeros(size, dtype=np.uint8)
        img[:, : size[1] * 3 // 4] = rng.integers(40, 200, (size[0], size[1] * 3 // 4))
        path = folder / f"{i}.png"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    return paths


def _listed_pngs(images: Path, n: int) -> list[str]:
    import pandas as pd

    from rsna_pkg.errors import InputError

    manifest = images / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{manifest}: not found; --images must be an `rsna preprocess` output")
    df = pd.read_csv(manifest)
    paths = [str(images / p) for p in df.loc[df["status"] == "ok", "png"].head(n)]
    if not paths:
        raise InputError(f"{manifest}: no image with status ok")
    return paths


def bench_train(
    images: str | None,
    size: tuple[int, ...],
    backbone: str,
    batch_size: int,
    workers: int,
    batches: int,
    device: str,
) -> dict[str, Any]:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from rsna_pkg.data.augment import AugmentConfig, build_augment
    from rsna_pkg.data.dataset import EpochSampler, MammoDataset
    from rsna_pkg.models.checkpoint import resolve_device
    from rsna_pkg.models.fusion import CancerClassifier
    from rsna_pkg.train.config import GRAY_MEAN, GRAY_STD
    from rsna_pkg.train.loop import worker_init

    h, w = int(size[0]), int(size[1])
    n = batch_size * (batches + 1)
    dev = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _listed_pngs(Path(images), n) if images else _random_pngs(Path(tmp), n, (h, w))
        labels = np.zeros(len(paths))
        ds = MammoDataset(paths, labels, None, GRAY_MEAN, GRAY_STD,
                          augment=build_augment(AugmentConfig()), seed=0)  # fmt: skip
        loader = DataLoader(
            ds, batch_size=batch_size, sampler=EpochSampler(labels, train=True),
            num_workers=workers, worker_init_fn=worker_init if workers else None,
            persistent_workers=False,
        )  # fmt: skip
        loader_rate, _ = _time_batches(iter(loader), batch_size, batches=batches)

    model = CancerClassifier(backbone, meta_dim=0).to(dev).train()
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 1, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch_size, device=dev)

    def steps() -> Any:
        while True:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            yield None

    step_rate, _ = _time_batches(steps(), batch_size, batches=max(2, batches // 2))
    return {
        "size": f"{h}x{w}",
        "backbone": backbone,
        "device": str(dev),
        "batch_size": batch_size,
        "workers": workers,
        "threads": torch.get_num_threads(),
        "loader_images_per_s": round(loader_rate, 1),
        "step_images_per_s": round(step_rate, 1),
        "loader_to_step_ratio": round(loader_rate / step_rate, 2),
        "loader_meets_2x": loader_rate >= 2 * step_rate,
    }


def _time_batches(it: Any, batch_size: int, batches: int = 6) -> tuple[float, float]:
    """(images/s, seconds) over ``batches`` items after one warm-up item."""
    next(it)
    t0 = time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        done += 1
    seconds = time.perf_counter() - t0
    return done * batch_size / max(seconds, 1e-9), seconds
