"""Peak CPU memory per image of one training step, with and without gradient checkpointing.

Each (backbone, size, checkpointing) setting runs in a fresh process: the real
``Trainer.train_epoch`` (as ``rsna train`` runs it on the CPU, inside its CPU settings)
takes one warm-up step on a tiny batch, which allocates the weights, gradients and
optimiser state (the model-only baseline), then two steps on a batch at the full size
(the second timed: the first sets up the kernels). The figure is the process's peak RSS
(VmHWM, i.e. ``getrusage``'s ru_maxrss counted from the process's start) after them minus the
baseline, divided by the batch size: what
each image of a batch costs in activations, their gradients and its input tensor. The
allocator's transient blocks only ever raise a peak (at 512x256, batch 2, one setting read
143-202 MiB/image over four runs), so ``--repeats N`` keeps the least of N processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_BACKBONES = ("resnet18", "timm:efficientnet_b0")
DEFAULT_SIZES = ("1024x512", "2048x1024")
WARM_SIZE = (64, 64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES),
                        help="comma-separated (torchvision names or timm:NAME)")  # fmt: skip
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="HxW")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per setting; the least per-image figure is kept "
                             "(a transient allocation only ever adds to a peak)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def parse_size(text: str) -> tuple[int, int]:
    from rsna_pkg.errors import InputError

    h, _, w = text.lower().partition("x")
    if not (h.isdigit() and w.isdigit()) or int(h) < 32 or int(w) < 32:
        raise InputError(f"--sizes {text!r}: expected HxW with both at least 32, e.g. 1024x512")
    return int(h), int(w)


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.models.zoo import check_backbone
    from rsna_pkg.train.history import write_json

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    for name in backbones:
        check_backbone(name)
    sizes = [parse_size(s) for s in args.sizes]
    rows = []
    for backbone in backbones:
        for h, w in sizes:
            for ckpt in (False, True):
                runs = [measure_in_subprocess(backbone, (h, w), args.batch_size, ckpt,
                                              args.threads) for _ in range(max(1, args.repeats))]  # fmt: skip
                row = min(runs, key=lambda r: r["per_image_mib"])
                rows.append(row)
                print(
                    f"{backbone:>22} {h}x{w} grad_checkpoint={'on ' if ckpt else 'off'} "
                    f"{row['per_image_mib']:8.1f} MiB/image  (baseline {row['baseline_mib']:.0f}"
                    f" MiB, peak {row['peak_mib']:.0f} MiB, step {row['step_seconds']:.1f} s)"
                )
    result = {"batch_size": args.batch_size, "rows": rows, "saving": savings(rows)}
    for key, value in result["saving"].items():
        print(f"{key}: checkpointing keeps {value:.0%} of the per-image memory")
    if args.json:
        write_json(args.json, result)
    return 0


def savings(rows: list[dict[str, Any]]) -> dict[str, float]:
    """'backbone HxW' -> per-image memory with checkpointing / without."""
    plain = {(r["backbone"], r["size"]): r for r in rows if not r["grad_checkpoint"]}
    out = {}
    for r in rows:
        base = plain.get((r["backbone"], r["size"]))
        if r["grad_checkpoint"] and base and base["per_image_mib"] > 0:
            out[f"{r['backbone']} {r['size']}"] = round(
                r["per_image_mib"] / base["per_image_mib"], 3
            )
    return out


def measure_in_subprocess(
    backbone: str, size: tuple[int, int], batch_size: int, grad_checkpoint: bool, threads: int
) -> dict[str, Any]:
    """``measure`` in a fresh interpreter, so no earlier setting's peak is counted."""
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    spec = json.dumps([backbone, list(size), batch_size, grad_checkpoint, threads])
    code = "import json, sys; from benchmarks.memory import measure; print(json.dumps(measure(*json.loads(sys.argv[1]))))"
    done = subprocess.run([sys.executable, "-c", code, spec], env=env, capture_output=True,
                          text=True, cwd=repo)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {backbone} {size}: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def reset_peak_rss() -> bool:
    """Start this process's peak-RSS count afresh (Linux >= 4.0: /proc/self/clear_refs).
    Needed because a child's ``ru_maxrss`` starts at its parent's peak: Linux carries the
    high-water mark across fork + exec, so a big parent (pytest) would hide the child's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident memory of this process: VmHWM (reset by ``reset_peak_rss``) where
    /proc has it, else ``getrusage`` ru_maxrss (KiB on Linux)."""
    import resource

    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    backbone: str, size: list[int], batch_size: int, grad_checkpoint: bool, threads: int = 0
) -> dict[str, Any]:
    """One process's figures: baseline and peak RSS around one training step."""
    import time

    import torch

    from rsna_pkg.models.checkpoint import build_model
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.preprocess import PreprocessConfig
    from rsna_pkg.train.config import TrainConfig
    from rsna_pkg.train.cpu_tuning import cpu_training_settings
    from rsna_pkg.train.ddp import setup
    from rsna_pkg.train.trainer import Trainer

    reset_peak_rss()
    if threads:
        torch.set_num_threads(threads)
    h, w = size
    model_cfg = ModelConfig(backbone, PreprocessConfig(height=h, width=w), use_metadata=False)
    cfg = TrainConfig(model=model_cfg, batch_size=batch_size, balance="pos_weight", device="cpu",
                      grad_checkpoint=grad_checkpoint)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(model_cfg)
    model.set_grad_checkpointing(grad_checkpoint)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    trainer = Trainer(model, cfg, setup("cpu"), steps_per_epoch=2, pos_weight=1.0)

    def batch(hw: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        x = torch.randn(batch_size, 1, *hw)
        y = (torch.arange(batch_size) % 2).float()
        return x, torch.zeros(batch_size, 0), y, torch.arange(batch_size)

    with cpu_training_settings(True):
        trainer.train_epoch([batch(WARM_SIZE)], show=False)  # type: ignore[arg-type]
        baseline = peak_rss_mib()
        big = batch((h, w))
        trainer.train_epoch([big], show=False)  # type: ignore[arg-type]
        start = time.perf_counter()
        trainer.train_epoch([big], show=False)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
    return {
        "backbone": backbone,
        "size": f"{h}x{w}",
        "batch_size": batch_size,
        "grad_checkpoint": grad_checkpoint,
        "threads": torch.get_num_threads(),
        "baseline_mib": round(baseline, 1),
        "peak_mib": round(peak, 1),
        "per_image_mib": round((peak - baseline) / batch_size, 1),
        "step_seconds": round(seconds, 2),
    }


if __name__ == "__main__":
    from rsna_pkg.bench_command import main

    raise SystemExit(main(["memory", *sys.argv[1:]]))
