"""The GPU path checked and timed on one machine, in one run (``rsna bench device``).

On a synthetic set of every machine kind (full size: 24 files): nvImageCodec decode on the
GPU against pydicom on the CPU, file by file, bit for bit (a file the GPU cannot take
says which CPU backend decoded it and why); ``apply_voi_torch`` on the device against
``apply_voi``; preprocessing images/s through the GPU route (nvImageCodec + the CPU
finishing steps) against the CPU path (``preprocess_file`` in worker processes) at each
size; CUDA AMP training steps (channels_last) per backbone with peak memory; ``rsna infer``
end to end against the model alone; and the time 35,000 hidden-test images would take,
scaled from this GPU to Kaggle's T4 and P100 by published fp16 throughput (FP16_TFLOPS).

``--dry-run``: tiny sizes, few files, the CPU, whatever backends exist: the same code runs
in CI so it cannot rot. Each section that fails is recorded under "errors" and the others
still run; writes OUT/gpu_report.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal

import numpy as np

HIDDEN_TEST_IMAGES = 35_000

# Published dense fp16 tensor throughput (TFLOP/s), from NVIDIA's data sheets: H200 SXM
# 1,979 with sparsity (989.5 dense); Tesla T4 65 (FP16/FP32 mixed precision); Tesla P100
# PCIe 16 GB 18.7 (FP16, no tensor cores; the SXM2 part is 21.2). H100 SXM is as the H200.
FP16_TFLOPS: dict[str, float] = {"H200": 989.5, "H100": 989.5, "T4": 65.0, "P100": 18.7}
KAGGLE_GPUS: tuple[str, ...] = ("T4", "P100")


@dataclass(frozen=True)
class CheckConfig:
    """What one run measures; ``for_run`` gives the full and the dry-run settings."""

    dry_run: bool
    device: str  # "cuda" | "cpu"
    files: int
    scale: Literal["small", "full"]  # synth scale of the files (SynthConfig.scale)
    sizes: tuple[tuple[int, int], ...]  # preprocess outputs (H, W)
    min_images: int  # preprocess images timed per route and size (files repeated)
    train_size: tuple[int, int]
    train_batch: int
    train_steps: int
    backbones: tuple[str, ...]
    infer_backbone: str
    infer_rows: int
    infer_batch: int
    workers: int  # CPU processes (CPU route) / finishing threads (GPU route)
    seed: int = 0

    @classmethod
    def for_run(cls, dry_run: bool, device: str = "auto") -> CheckConfig:
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() and not dry_run else "cpu"
        backbones = ("resnet18", "efficientnet_b0", "convnext_tiny")
        if dry_run:
            return cls(True, device, files=4, scale="small", sizes=((64, 32), (128, 64)),
                       min_images=4, train_size=(64, 32), train_batch=2, train_steps=2,
                       backbones=backbones, infer_backbone="resnet18", infer_rows=8,
                       infer_batch=4, workers=1)  # fmt: skip
        return cls(False, device, files=24, scale="full", sizes=((1024, 512), (2048, 1024)),
                   min_images=48, train_size=(1024, 512), train_batch=16, train_steps=10,
                   backbones=backbones, infer_backbone="efficientnet_b0", infer_rows=96,
                   infer_batch=16, workers=min(16, os.cpu_count() or 1))  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_report.json")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--files", type=int, default=None, help="synthetic files (default 24)")
    parser.add_argument("--workers", type=int, default=None, help="CPU processes")
    parser.add_argument("--keep", type=Path, default=None, help="keep the synthetic set here")


def run(args: argparse.Namespace) -> int:
    cfg = CheckConfig.for_run(args.dry_run, args.device)
    if args.files is not None:
        cfg = replace(cfg, files=args.files)
    if args.workers is not None:
        cfg = replace(cfg, workers=args.workers)
    report = device_check(cfg, Path(args.out), keep=args.keep)
    print(format_table(report))
    print(f"wrote {Path(args.out) / 'gpu_report.json'}")
    return 1 if report["errors"] else 0


# -- the run -------------------------------------------------------------------------------


class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        print(f"[device-check {time.perf_counter() - self.start:6.1f}s] {msg}",
              file=sys.stderr, flush=True)  # fmt: skip


def device_check(cfg: CheckConfig, out: Path, keep: Path | None = None) -> dict[str, Any]:
    """Run every section, write ``out/gpu_report.json`` after each one, return the report."""
    out.mkdir(parents=True, exist_ok=True)
    log = Progress()
    report: dict[str, Any] = {"config": asdict(cfg), "environment": environment(cfg),
                              "errors": {}, "seconds": {}}  # fmt: skip
    state: dict[str, Any] = {}

    def section(name: str, fn: Callable[[], Any]) -> None:
        log(f"{name} ...")
        t = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not cost the others
            report[name] = None
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            report["errors"][f"{name}_traceback"] = traceback.format_exc()[-3000:]
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
        report["seconds"][name] = round(time.perf_counter() - t, 2)
        (out / "gpu_report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    from rsna_pkg.infer.devices import torch_threads

    # the dry run shares a small CI machine: one model thread, no oversubscription
    threads = 1 if cfg.dry_run else None
    with tempfile.TemporaryDirectory(prefix="rsna_device_check_") as tmp_name:
        tmp = keep or Path(tmp_name)
        with worker_pool(cfg.workers) as pool, torch_threads(threads):
            state["pool"] = pool
            section("dataset", lambda: make_check_set(cfg, tmp / "data", state))
            section("decode", lambda: check_decode(cfg, state))
            section("voi", lambda: check_voi(cfg, state))
            for key in ("reference", "decoded"):  # full-size arrays, on the GPU too: free them
                state.pop(key, None)
            section("preprocess", lambda: check_preprocess(cfg, state))
            section("train", lambda: check_train(cfg))
            section("infer", lambda: check_infer(cfg, tmp / "infer", state))
            section("projection", lambda: projection(cfg, report))
    report["seconds"]["total"] = round(time.perf_counter() - log.start, 2)
    (out / "gpu_report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


class worker_pool:
    """A forkserver process pool (``workers`` > 1: its workers never inherit CUDA), or an
    in-process ``map`` (1 worker: the dry run, where starting processes costs the most)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> worker_pool:
        if self.workers > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("forkserver")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        if self.pool is None:
            return list(map(fn, *iterables))
        return list(self.pool.map(fn, *iterables))


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def environment(cfg: CheckConfig) -> dict[str, Any]:
    import torch

    from rsna_pkg.dicom import available_decoders

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": cfg.device,
        "cpu_count": os.cpu_count(),
        "decode_backends": available_decoders(),
    }
    if cfg.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported())  # fmt: skip
    try:
        import importlib.metadata as md

        env["nvimgcodec"] = md.version("nvidia-nvimgcodec-cu12")
    except Exception:  # noqa: BLE001 - not installed (or another CUDA build of it)
        env["nvimgcodec"] = None
    return env


# -- sections ------------------------------------------------------------------------------


def make_check_set(cfg: CheckConfig, out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """``cfg.files`` images spread over every machine profile (one test patient each), as
    a competition-shaped test split (test.csv, sample_submission.csv, test_images/)."""
    import pandas as pd

    from rsna_pkg.data.schema import image_path
    from rsna_pkg.data.synth import SynthConfig
    from rsna_pkg.data.synth.dataset import image_tasks, make_image
    from rsna_pkg.data.synth.machines import MACHINES
    from rsna_pkg.data.synth.tables import plan_patients, test_table

    # machines ordered so that the first few cover every codec (JP2, bare J2K, .70)
    by_codec: dict[str, list[int]] = {}
    for m in sorted(MACHINES):
        by_codec.setdefault(MACHINES[m].codec, []).append(m)
    machines = [m for group in zip_longest(*by_codec.values()) for m in group if m is not None]
    kinds = min(cfg.files, len(machines))
    patients = plan_patients(kinds + 1, cfg.seed, 0.5, test_frac=0.99)[1:]  # all test
    per = [cfg.files // kinds + (i < cfg.files % kinds) for i in range(kinds)]
    next_id = 1 + max(i for p in patients for i, _, _ in p.images)
    for p, machine, n in zip(patients, machines, per, strict=False):
        p.machine_id = machine
        while len(p.images) < n:  # another image of a view it has, under a new image id
            _, lat, view = p.images[len(p.images) % 4]
            p.images.append((next_id, lat, view))
            next_id += 1
        p.images = p.images[:n]
    t = time.perf_counter()
    synth = SynthConfig(patients=len(patients), seed=cfg.seed, scale=cfg.scale,
                        workers=max(1, cfg.workers))  # fmt: skip
    tasks = image_tasks(patients, synth)
    out.mkdir(parents=True, exist_ok=True)
    written = state["pool"].map(make_image, tasks, [str(out)] * len(tasks))
    table = test_table(patients)
    table.to_csv(out / "test.csv", index=False)
    ids = table["prediction_id"].drop_duplicates()
    pd.DataFrame({"prediction_id": ids, "cancer": 0.02}).to_csv(
        out / "sample_submission.csv", index=False
    )
    paths = [image_path(out, "test", p, i) for p, i in zip(table.patient_id, table.image_id,
                                                           strict=True)]  # fmt: skip
    state["data"], state["files"] = out, paths
    state["machine"] = dict(zip(paths, table.machine_id.astype(int), strict=True))
    return {
        "files": len(paths),
        "machines": sorted({int(r.machine_id) for r in written}),
        "bytes": int(sum(r.bytes for r in written)),
        "seconds": round(time.perf_counter() - t, 2),
    }


def _reference(path: Path) -> tuple[np.ndarray, float]:
    """pydicom's stored values (the reference decoder) and its decode seconds."""
    from rsna_pkg.dicom import decode_file

    d = decode_file(path, "pydicom")
    return d.array, d.seconds


def _describe(path: Path, machine: int) -> dict[str, Any]:
    from rsna_pkg.data.synth.machines import MACHINES
    from rsna_pkg.dicom import read_header

    h, p = read_header(path), MACHINES[machine]
    return {"file": path.name, "machine_id": machine, "codec": p.codec,
            "syntax": h.transfer_syntax_uid.rsplit(".", 1)[-1], "bits": h.bits_stored,
            "photometric": h.photometric, "shape": [h.rows, h.columns]}  # fmt: skip


def check_decode(cfg: CheckConfig, state: dict[str, Any]) -> dict[str, Any]:
    """nvImageCodec on the device vs pydicom, per file; both timed."""
    from rsna_pkg.dicom.nvimgcodec_backend import NvImageCodecDecoder

    files: list[Path] = state["files"]
    t = time.perf_counter()
    refs = state["pool"].map(_reference, files)
    cpu_wall = time.perf_counter() - t
    state["reference"] = [r for r, _ in refs]
    decoder = NvImageCodecDecoder(device=cfg.device, batch_size=8)
    decoder.decode_batch(files[:1])  # codec set-up and first probes, outside the timing
    t = time.perf_counter()
    arrays, _ = decoder.decode_items(files)
    sync(cfg.device)
    gpu_wall = time.perf_counter() - t
    sources = list(decoder.last_sources)
    state["decoded"] = arrays
    rows = []
    for path, arr, (ref, seconds), source in zip(files, arrays, refs, sources, strict=True):
        host = arr if isinstance(arr, np.ndarray) else arr.cpu().numpy()
        same_shape = host.shape == ref.shape
        diff = int(np.abs(host.astype(np.int64) - ref.astype(np.int64)).max()) if same_shape else -1
        rows.append({**_describe(path, state["machine"][path]), "source": source,
                     "bit_exact": bool(same_shape and diff == 0), "max_abs_diff": diff,
                     "pydicom_ms": round(seconds * 1e3, 1)})  # fmt: skip
    by_codec: dict[str, dict[str, int]] = {}
    for r in rows:
        c = by_codec.setdefault(r["codec"], {"files": 0, "gpu_decoded": 0, "bit_exact": 0})
        c["files"] += 1
        c["gpu_decoded"] += r["source"] == "nvimgcodec"
        c["bit_exact"] += r["bit_exact"]
    return {
        "decoder_device": decoder.device,
        "files": len(rows),
        "bit_exact": sum(r["bit_exact"] for r in rows),
        "decoded_by_nvimgcodec": sum(r["source"] == "nvimgcodec" for r in rows),
        "by_codec": by_codec,
        "probes": {"/".join(map(str, k)): v for k, v in decoder.probes.items()},
        "nvimgcodec_ms_per_image": round(gpu_wall / len(files) * 1e3, 1),
        "cpu_pydicom_ms_per_image_per_process": round(
            float(np.mean([s for _, s in refs])) * 1e3, 1
        ),
        "cpu_pydicom_images_per_s": round(len(files) / cpu_wall, 2),
        "cpu_processes": cfg.workers,
        "per_file": rows,
    }


def check_voi(cfg: CheckConfig, state: dict[str, Any]) -> dict[str, Any]:
    """apply_voi_torch on the decode device vs apply_voi on the reference values."""
    import torch

    from rsna_pkg.dicom import apply_voi, apply_voi_torch, read_header

    diffs = []
    for path, ref, arr in zip(state["files"], state["reference"], state["decoded"], strict=True):
        header = read_header(path)
        t = torch.from_numpy(arr.astype(np.int32)) if isinstance(arr, np.ndarray) else arr
        got = apply_voi_torch(t.to(cfg.device), header).cpu().numpy()
        want = apply_voi(ref, header)
        diffs.append({"file": path.name, "voi": header.voi_lut_function or "LINEAR",
                      "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max())})  # fmt: skip
    return {"device": cfg.device, "max_abs_diff": max(d["max_abs_diff"] for d in diffs),
            "per_file": diffs}  # fmt: skip


def check_preprocess(cfg: CheckConfig, state: dict[str, Any]) -> dict[str, Any]:
    """images/s: GPU route (nvImageCodec, full resolution, CPU finishing threads) vs the CPU
    path (preprocess_file with its reduced J2K decode, worker processes); and whether the
    GPU route gives exactly the CPU path's full-resolution images."""
    from rsna_pkg.dicom.nvimgcodec_backend import NvImageCodecDecoder
    from rsna_pkg.infer.gpu import iterate_decoder_batches
    from rsna_pkg.infer.stream import load_item
    from rsna_pkg.preprocess import PreprocessConfig

    files: list[Path] = state["files"]
    paths = files * max(1, -(-cfg.min_images // len(files)))
    out: dict[str, Any] = {"images_per_route": len(paths), "workers": cfg.workers}
    for h, w in cfg.sizes:
        full = PreprocessConfig(height=h, width=w, reduce=False)
        default = PreprocessConfig(height=h, width=w)
        decoder = NvImageCodecDecoder(device=cfg.device, batch_size=8)
        decoder.decode_batch(files)  # library set-up and every kind's probe, outside the timing
        t = time.perf_counter()
        gpu = list(iterate_decoder_batches(paths, full, 8, cfg.workers, decoder, prefetch=2))
        gpu_s = time.perf_counter() - t
        t = time.perf_counter()
        cpu = state["pool"].map(load_item, range(len(paths)), paths, [default] * len(paths))
        cpu_s = time.perf_counter() - t
        exact_ref = state["pool"].map(load_item, range(len(files)), files, [full] * len(files))
        by_row = {int(i): im for b in gpu for i, im in zip(b.indices, b.images, strict=True)}
        same = sum(
            it.image is not None and k in by_row and np.array_equal(it.image, by_row[k])
            for k, it in enumerate(exact_ref)
        )
        out[f"{h}x{w}"] = {
            "gpu_route_images_per_s": round(len(paths) / gpu_s, 2),
            "cpu_path_images_per_s": round(len(paths) / cpu_s, 2),
            "gpu_over_cpu": round(cpu_s / gpu_s, 2),
            "gpu_failed": sum(len(b.failures) for b in gpu),
            "cpu_failed": sum(it.image is None for it in cpu),
            "gpu_route_equals_cpu_full_resolution": f"{same}/{len(files)}",
        }
    return out


def train_rate(backbone: str, cfg: CheckConfig, amp_dtype: str | None) -> dict[str, Any]:
    """Training steps/s of CancerClassifier(backbone) as the Trainer runs it: channels_last,
    autocast in ``amp_dtype`` (GradScaler for float16) on CUDA, AdamW."""
    import torch

    from rsna_pkg.models.fusion import CancerClassifier

    dev = torch.device(cfg.device)
    h, w = cfg.train_size
    torch.manual_seed(cfg.seed)
    model = CancerClassifier(backbone, meta_dim=0).to(dev).train()
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(amp_dtype or "")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    x = torch.randn(cfg.train_batch, 1, h, w, device=dev)
    x = x.contiguous(memory_format=torch.channels_last)  # [B, 1, H, W]
    y = torch.zeros(cfg.train_batch, device=dev)

    def step() -> float:
        amp = torch.autocast(dev.type, dtype=dtype) if dtype is not None else nullcontext()
        with amp:
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    for _ in range(2):
        step()
    sync(cfg.device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = time.perf_counter()
    losses = [step() for _ in range(cfg.train_steps)]
    sync(cfg.device)
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return {
        "images_per_s": round(cfg.train_batch * cfg.train_steps / seconds, 1),
        "step_ms": round(seconds / cfg.train_steps * 1e3, 1),
        "peak_memory_gib": None if peak is None else round(peak, 2),
        "fits_16gb": None if peak is None else peak < 15.0,
        "loss_finite": bool(np.all(np.isfinite(losses))),
    }


def check_train(cfg: CheckConfig) -> dict[str, Any]:
    import torch

    if cfg.device == "cuda":
        # what the Trainer picks on this GPU, and float16 (what a T4 or P100 would run)
        picked = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        dtypes: tuple[str | None, ...] = tuple(dict.fromkeys((picked, "float16")))
    else:
        dtypes = (None,)  # the Trainer runs no AMP on the CPU
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        out: dict[str, Any] = {"size": list(cfg.train_size), "batch": cfg.train_batch,
                               "steps": cfg.train_steps, "channels_last": True}  # fmt: skip
        for backbone in cfg.backbones:
            out[backbone] = {}
            for d in dtypes:
                out[backbone][str(d or "float32")] = train_rate(backbone, cfg, d)
                if cfg.device == "cuda":
                    torch.cuda.empty_cache()  # the model of train_rate is gone: free its cache
    finally:
        torch.backends.cudnn.benchmark = before
    return out


def check_infer(cfg: CheckConfig, folder: Path, state: dict[str, Any]) -> dict[str, Any]:
    """``infer`` end to end through the nvImageCodec route and the CPU-decode route, and the
    model alone on pre-decoded batches, with one random-init checkpoint."""
    import torch

    from benchmarks.infer import build_checkpoint, repeat_test_set
    from rsna_pkg.infer.devices import Runtime
    from rsna_pkg.infer.inference import infer, model_probabilities
    from rsna_pkg.infer.options import InferOptions
    from rsna_pkg.infer.stream import load_item
    from rsna_pkg.models.checkpoint import load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    h, w = cfg.train_size
    ckpt = build_checkpoint(folder / "model.pt", cfg.infer_backbone, h, w)
    data = repeat_test_set(state["data"], cfg.infer_rows, folder)
    models = [load_checkpoint(ckpt, device=cfg.device)]
    out: dict[str, Any] = {"backbone": cfg.infer_backbone, "size": [h, w],
                           "rows": cfg.infer_rows, "batch": cfg.infer_batch}  # fmt: skip
    for backend in ("nvimgcodec", "cpu"):
        opts = InferOptions(data=data, models=(ckpt,), out=folder / f"{backend}.csv",
                            batch_size=cfg.infer_batch, workers=cfg.workers)  # fmt: skip
        t = time.perf_counter()
        result = infer(opts, Runtime(cfg.device, backend), models=models)
        wall = time.perf_counter() - t
        out[f"e2e_{backend}_decode"] = {
            "images_per_s": round(cfg.infer_rows / result.seconds["stream"], 2),
            "wall_s": round(wall, 2),
            "failed": len(result.failures),
            "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        }
    loaded = models[0]
    items = [load_item(i, p, loaded.config.preprocess) for i, p in enumerate(state["files"])]
    images = np.stack([it.image for it in items if it.image is not None])
    reps = -(-cfg.infer_batch // len(images))
    batch = np.concatenate([images] * reps)[: cfg.infer_batch]
    import pandas as pd

    rows = pd.read_csv(data / "test.csv").iloc[: len(batch)]
    model_probabilities(loaded, batch, rows, "none")  # warm-up (cudnn, autocast caches)
    n = max(2, cfg.infer_rows // cfg.infer_batch)
    t = time.perf_counter()
    with torch.inference_mode():
        for _ in range(n):
            model_probabilities(loaded, batch, rows, "none")  # returns on the host: synced
    alone = n * len(batch) / (time.perf_counter() - t)
    out["model_only_images_per_s"] = round(alone, 2)
    e2e = out["e2e_nvimgcodec_decode"]["images_per_s"]
    out["e2e_over_model_only"] = round(e2e / alone, 3)
    return out


def projection(cfg: CheckConfig, report: dict[str, Any]) -> dict[str, Any]:
    """Seconds for the hidden test set: measured here; on Kaggle's GPUs the model's share
    scaled by fp16 throughput, the decoding's not (it runs on the CPU cores and the GPU's
    codec units, not the tensor cores), overlapped as the pipeline streams them."""
    inf = report.get("infer") or {}
    if not inf:
        raise RuntimeError("no inference figures to project from")
    e2e = inf["e2e_nvimgcodec_decode"]["images_per_s"]
    model = inf["model_only_images_per_s"]
    key = f"{cfg.train_size[0]}x{cfg.train_size[1]}"
    prep = (report.get("preprocess") or {}).get(key, {})
    decode = prep.get("gpu_route_images_per_s") or e2e
    gpu = str(report["environment"].get("gpu") or "").upper()
    here = next((k for k in FP16_TFLOPS if k in gpu), None)
    assumed = here is None and cfg.dry_run  # the dry run exercises the scaling as if on H200
    here = "H200" if assumed else here
    out: dict[str, Any] = {
        "images": HIDDEN_TEST_IMAGES,
        "measured_on": report["environment"].get("gpu") or cfg.device,
        "scaled_from": f"{here} (assumed: dry run on the CPU)" if assumed else here,
        "here_seconds": round(HIDDEN_TEST_IMAGES / e2e, 1),
        "model_only_seconds_here": round(HIDDEN_TEST_IMAGES / model, 1),
        "fp16_tflops": FP16_TFLOPS,
        "assumption": "model time / (fp16 TFLOPS ratio); decode+preprocess time as measured "
        "here (GPU route at the model's size); the two overlap (max), not overlapped (sum)",
    }
    if here is None:
        out["note"] = "this device is not in FP16_TFLOPS: no Kaggle scaling"
        return out
    for name in KAGGLE_GPUS:
        factor = FP16_TFLOPS[name] / FP16_TFLOPS[here]
        model_s = HIDDEN_TEST_IMAGES / (model * factor)
        decode_s = HIDDEN_TEST_IMAGES / decode
        out[name] = {
            "fp16_factor_vs_here": round(factor, 4),
            "model_seconds": round(model_s, 1),
            "decode_seconds": round(decode_s, 1),
            "overlapped_seconds": round(max(model_s, decode_s), 1),
            "sequential_seconds": round(model_s + decode_s, 1),
            "within_9h": max(model_s, decode_s) < 9 * 3600,
        }
    return out


# -- the table -----------------------------------------------------------------------------


def format_table(report: dict[str, Any]) -> str:
    """The figures that matter, one per line."""
    lines: list[tuple[str, str]] = []
    env = report["environment"]
    lines.append(("device", f"{env.get('gpu') or env['device']} (torch {env['torch']}, "
                            f"nvimgcodec {env.get('nvimgcodec')})"))  # fmt: skip
    dec = report.get("decode")
    if dec:
        lines.append(
            (
                "decode bit-exact vs pydicom",
                f"{dec['bit_exact']}/{dec['files']} "
                f"({dec['decoded_by_nvimgcodec']} by nvimgcodec on {dec['decoder_device']})",
            )
        )
        for codec, c in sorted(dec["by_codec"].items()):
            lines.append((f"  {codec}", f"{c['gpu_decoded']}/{c['files']} by nvimgcodec, "
                                        f"{c['bit_exact']} bit-exact"))  # fmt: skip
        fallbacks = sorted(
            {r["source"][:90] for r in dec["per_file"] if r["source"] != "nvimgcodec"}
        )
        lines += [("  fallback", s) for s in fallbacks]
        lines.append(("decode ms/image", f"nvimgcodec {dec['nvimgcodec_ms_per_image']}, pydicom "
                      f"{dec['cpu_pydicom_ms_per_image_per_process']} per process"))  # fmt: skip
    voi = report.get("voi")
    if voi:
        lines.append(("apply_voi_torch vs apply_voi", f"max |diff| {voi['max_abs_diff']:.2e}"))
    prep = report.get("preprocess") or {}
    for key, p in prep.items():
        if isinstance(p, dict):
            lines.append(
                (
                    f"preprocess {key} img/s",
                    f"GPU route {p['gpu_route_images_per_s']}, "
                    f"CPU path {p['cpu_path_images_per_s']} (x{p['gpu_over_cpu']}); "
                    f"GPU = CPU full-res {p['gpu_route_equals_cpu_full_resolution']}",
                )
            )
    train = report.get("train") or {}
    for name, per in train.items():
        if isinstance(per, dict):
            for dtype, r in per.items():
                lines.append((f"train {name} {dtype}", f"{r['images_per_s']} img/s, peak "
                              f"{r['peak_memory_gib']} GiB"))  # fmt: skip
    inf = report.get("infer")
    if inf:
        lines.append(("infer e2e img/s", f"nvimgcodec {inf['e2e_nvimgcodec_decode']['images_per_s']}"
                      f", CPU decode {inf['e2e_cpu_decode']['images_per_s']}, model alone "
                      f"{inf['model_only_images_per_s']}"))  # fmt: skip
    proj = report.get("projection")
    if proj:
        lines.append(("35,000 images here", f"{proj['here_seconds'] / 60:.1f} min"))
        for name in KAGGLE_GPUS:
            if name in proj:
                g = proj[name]
                lines.append((f"35,000 images on {name}", f"{g['overlapped_seconds'] / 60:.1f} min "
                              f"(fp16 x{g['fp16_factor_vs_here']})"))  # fmt: skip
    for name, err in report["errors"].items():
        if not name.endswith("_traceback"):
            lines.append((f"ERROR {name}", err[:100]))
    lines.append(("total", f"{report['seconds'].get('total', 0)} s"))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["device", *sys.argv[1:]]))
