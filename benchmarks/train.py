"""Data loader vs training step throughput (images/s), measured in one run.

The loader figure is the training DataLoader alone (PNG read + augmentation +
normalisation, N workers); the step figure is the real ``Trainer.train_epoch`` (the
optimiser, schedule, AMP on CUDA, gradient accumulation and pos_weight loss that
``rsna train`` runs) over fixed batches. The loader should outrun the step (target: >= 2x)
so training is compute-bound. Without --images, random PNGs are written to a temporary
folder first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Literal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images", type=Path, default=None, help="`rsna preprocess` folder (default: random)"
    )
    parser.add_argument("--size", nargs=2, type=int, default=[512, 256], metavar=("H", "W"))
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.train.history import write_json

    result = bench_train(
        images=args.images, size=tuple(args.size), backbone=args.backbone,
        batch_size=args.batch_size, workers=args.workers, batches=args.batches, device=args.device,
        accumulate=args.accumulate, amp=not args.no_amp,
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
    from rsna_pkg.outputs import MANIFEST_NAME

    manifest = images / MANIFEST_NAME
    if not manifest.is_file():
        raise InputError(f"{manifest}: not found; --images must be an `rsna preprocess` output")
    df = pd.read_csv(manifest)
    paths = [str(images / p) for p in df.loc[df["status"] == "ok", "png"].head(n)]
    if not paths:
        raise InputError(f"{manifest}: no image with status ok")
    return paths


def bench_train(
    images: Path | None,
    size: tuple[int, ...],
    backbone: str,
    batch_size: int,
    workers: int,
    batches: int,
    device: Literal["auto", "cpu", "cuda"],
    accumulate: int = 1,
    amp: bool = True,
) -> dict[str, Any]:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from rsna_pkg.data.augment import AugmentConfig, build_augment
    from rsna_pkg.data.dataset import EpochSampler, MammoDataset
    from rsna_pkg.models.checkpoint import build_model
    from rsna_pkg.models.config import GRAY_MEAN, GRAY_STD, ModelConfig
    from rsna_pkg.preprocess import PreprocessConfig
    from rsna_pkg.train.config import TrainConfig
    from rsna_pkg.train.ddp import setup
    from rsna_pkg.train.loop import worker_init
    from rsna_pkg.train.trainer import Trainer

    h, w = int(size[0]), int(size[1])
    n = batch_size * (batches + 1)
    ctx = setup(device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _listed_pngs(images, n) if images else _random_pngs(Path(tmp), n, (h, w))
        labels = np.zeros(len(paths))
        ds = MammoDataset(paths, labels, None, GRAY_MEAN, GRAY_STD,
                          augment=build_augment(AugmentConfig()), seed=0)  # fmt: skip
        loader = DataLoader(
            ds, batch_size=batch_size, sampler=EpochSampler(labels, train=True),
            num_workers=workers, worker_init_fn=worker_init if workers else None,
            persistent_workers=False,
        )  # fmt: skip
        loader_rate, _ = _time_batches(iter(loader), batch_size, batches=batches)

    model_cfg = ModelConfig(backbone, PreprocessConfig(height=h, width=w), use_metadata=False)
    cfg = TrainConfig(model=model_cfg, batch_size=batch_size, accumulate=accumulate, amp=amp,
                      balance="pos_weight", device=device)  # fmt: skip
    model = build_model(model_cfg).to(ctx.device)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    steps = max(2, batches // 2)
    trainer = Trainer(model, cfg, ctx, steps_per_epoch=steps, pos_weight=9.0)
    x = torch.randn(batch_size, 1, h, w)
    y = (torch.arange(batch_size) % 10 == 0).float()  # a positive in ten, as pos_weight 9 says
    batch = (x, torch.zeros(batch_size, 0), y, torch.arange(batch_size))
    trainer.train_epoch([batch], show=False)  # type: ignore[arg-type]  # warm-up
    start = time.perf_counter()
    trainer.train_epoch([batch] * steps, show=False)  # type: ignore[arg-type]
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    step_rate = steps * batch_size / max(time.perf_counter() - start, 1e-9)
    return {
        "size": f"{h}x{w}",
        "backbone": backbone,
        "device": str(ctx.device),
        "batch_size": batch_size,
        "accumulate": accumulate,
        "amp": trainer.amp,
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


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["train", *sys.argv[1:]]))
