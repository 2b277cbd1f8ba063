"""Inference benchmark: end-to-end images/s vs the model alone, and memory vs test size.

On a synthetic test set (``rsna synth`` unless --data is given) whose rows are repeated
to each size in --sizes (the same files, decoded again each time: no cache exists), every
size runs ``rsna infer`` in a fresh process, so its peak RSS is its own. The model alone
is timed on pre-decoded, pre-normalised tensors with the same batch size and TTA; the
ratio of the two throughputs says how much decoding still costs once it streams ahead
of the model. Without --model a random-init checkpoint of --backbone is built.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="dataset with test.csv")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: built)")
    parser.add_argument("--backbone", default="resnet18", help="backbone of the built model")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 128), metavar=("H", "W"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--tta", default="none", choices=("none", "vflip", "hflip"))
    parser.add_argument("--patients", type=int, default=12, help="synthetic patients")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")


def repeat_test_set(src: Path, n: int, dest: Path) -> Path:
    """dest/test.csv = the first n rows of src's test.csv cycled; dest/test_images links to
    src's images, so n can exceed the files on disk."""
    import pandas as pd

    table = pd.read_csv(src / "test.csv")
    reps = -(-n // len(table))
    pd.concat([table] * reps, ignore_index=True).iloc[:n].to_csv(dest / "test.csv", index=False)
    link = dest / "test_images"
    if not link.exists():
        link.symlink_to((src / "test_images").resolve(), target_is_directory=True)
    return dest


def build_checkpoint(path: Path, backbone: str, height: int, width: int) -> Path:
    """A random-init checkpoint through the training package's own config and save."""
    import pandas as pd

    from rsna_pkg.data.metadata_encoder import fit_metadata_encoder
    from rsna_pkg.models.checkpoint import build_model, save_checkpoint
    from rsna_pkg.models.config import ModelConfig
    from rsna_pkg.preprocess import PreprocessConfig

    rows = pd.DataFrame(
        {"age": [50.0, 70.0], "view": ["CC", "MLO"], "laterality": ["L", "R"],
         "implant": [0, 1], "site_id": [1, 2], "machine_id": [49, 21]}
    )  # fmt: skip
    encoder = fit_metadata_encoder(rows)
    config = ModelConfig(
        backbone=backbone,
        preprocess=PreprocessConfig(height=height, width=width),
        metadata=encoder,
        threshold=0.5,
        prevalence=0.02,
    )
    save_checkpoint(path, build_model(config).eval(), config)
    return path


def infer_in_subprocess(
    data: Path, model: Path, out_dir: Path, batch: int, workers: int, tta: str
) -> dict[str, Any]:
    """Run ``rsna infer`` in a fresh interpreter and return its --report."""
    report = out_dir / "report.json"
    cmd = [
        sys.executable, "-m", "rsna_pkg.infer.command", "--data", str(data), "--model", str(model),
        "--out", str(out_dir / "submission.csv"), "--report", str(report), "--device", "cpu",
        "--batch-size", str(batch), "--workers", str(workers), "--tta", tta,
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rsna infer failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(report.read_text())
    result["process_seconds"] = time.perf_counter() - start
    return result


def model_only(
    model: Path, data: Path, batch: int, tta: str, images: int, threads: int
) -> dict[str, Any]:
    """images/s of ``LoadedModel.forward`` alone on tensors decoded beforehand, with
    ``threads`` torch threads (the count ``rsna infer`` gives the model)."""
    import torch

    from rsna_pkg.data.schema import image_path
    from rsna_pkg.infer.devices import torch_threads
    from rsna_pkg.infer.inference import TTA_FLIP_DIM, read_test_table
    from rsna_pkg.infer.stream import load_item
    from rsna_pkg.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(model, device="cpu")
    table = read_test_table(data, "test").iloc[:batch]
    paths = [
        image_path(data, "test", p, i)
        for p, i in zip(table.patient_id, table.image_id, strict=True)
    ]
    items = [load_item(k, p, loaded.config.preprocess) for k, p in enumerate(paths)]
    ok = [it.image for it in items if it.image is not None]
    if not ok:
        raise RuntimeError(f"none of the first {batch} test images decoded: {items[0].reason}")
    x = torch.stack([loaded.image_tensor(im) for im in ok])  # (b, 1, H, W)
    reps = -(-batch // len(ok))
    x = x.repeat(reps, 1, 1, 1)[:batch]
    rows = table.iloc[[k % len(table) for k in range(batch)]]
    meta = loaded.encode_metadata(rows)
    if tta != "none":  # the same doubled batch inference runs (rsna_pkg.infer.inference)
        x = torch.cat([x, x.flip(TTA_FLIP_DIM[tta])])
        meta = None if meta is None else torch.cat([meta, meta])
    n_batches = max(1, images // batch)
    with torch.inference_mode(), torch_threads(threads):
        loaded.forward(x, meta)  # warm-up
        start = time.perf_counter()
        for _ in range(n_batches):
            loaded.forward(x, meta)
        seconds = time.perf_counter() - start
    return {
        "images": n_batches * batch,
        "seconds": seconds,
        "images_per_s": n_batches * batch / seconds,
        "torch_threads": threads,
    }


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.infer.devices import default_threads, default_workers

    workers = default_workers() if args.workers is None else args.workers
    threads = default_threads(workers)
    with tempfile.TemporaryDirectory(prefix="rsna_bench_infer_") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data
        if data is None:
            from rsna_pkg.data.synth import SynthConfig, generate

            data = tmp / "synth"
            generate(data, SynthConfig(patients=args.patients, seed=0, test_frac=0.5, workers=2))
        model = args.model or build_checkpoint(tmp / "model.pt", args.backbone, *args.size)
        n_alone = max(args.sizes[0], 64)
        before = model_only(model, data, args.batch_size, args.tta, n_alone, threads)
        runs = {}
        for n in args.sizes:
            folder = tmp / f"n{n}"
            folder.mkdir()
            repeat_test_set(data, n, folder)
            runs[n] = infer_in_subprocess(folder, model, folder, args.batch_size, workers, args.tta)
            print(f"bench infer: {n} images done", file=sys.stderr, flush=True)
        after = model_only(model, data, args.batch_size, args.tta, n_alone, threads)
        all_cores = model_only(model, data, args.batch_size, args.tta, n_alone, os.cpu_count() or 1)
    # Timed before and after the end-to-end runs: on a shared machine the load drifts.
    alone = {
        "images_per_s": (before["images_per_s"] + after["images_per_s"]) / 2,
        "before": before,
        "after": after,
        "torch_threads": threads,
    }
    results = summarise(runs, alone, args, workers)
    results["model_only_all_cores"] = all_cores
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def summarise(
    runs: dict[int, dict[str, Any]], alone: dict[str, Any], args: argparse.Namespace, workers: int
) -> dict[str, Any]:
    """The figures the issue asks for, measured in this run only."""
    per_size = {
        str(n): {
            "images_per_s": r["images_per_s"],
            "seconds": r["seconds"],
            "peak_rss_mb": r["peak_rss_mb"],
            "failed": r["images_failed"],
            "decode_cpu_s_per_image": r["seconds"]["decode_cpu"] / max(1, r["images"]),
            "projected_seconds_35000_images": r["projected_seconds_35000_images"],
        }
        for n, r in runs.items()
    }
    largest = runs[max(runs)]
    smallest = runs[min(runs)]
    return {
        "settings": {
            "backbone": args.backbone if args.model is None else str(args.model),
            "size": list(args.size),
            "batch_size": args.batch_size,
            "workers": workers,
            "model_threads": alone["torch_threads"],
            "cpu_count": os.cpu_count(),
            "tta": args.tta,
        },
        "end_to_end": per_size,
        "model_only": alone,
        "e2e_over_model_only": largest["images_per_s"] / alone["images_per_s"],
        # Share of the streaming time the model was busy (not waiting for decoded images).
        "model_busy_fraction": 1 - largest["seconds"]["decode_wait"] / largest["seconds"]["stream"],
        "rss_main_ratio_largest_vs_smallest": largest["peak_rss_mb"]["main"]
        / smallest["peak_rss_mb"]["main"],
        "projected_hours_35000_images_cpu": largest["projected_seconds_35000_images"] / 3600,
    }


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["infer", *sys.argv[1:]]))
