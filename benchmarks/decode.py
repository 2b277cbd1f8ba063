"""Decode and preprocess throughput per backend, reduce on/off and worker count.

Measures, on the DICOMs of a synthetic dataset (``rsna synth --scale full`` for the real
figures): header read ms/file; full-decode images/s per backend; preprocess_file images/s
to HxW with reduce on and off for 1 and 2 workers; the baseline "dicomsdl full decode +
window + resize" for the reduce speed-up; the share of preprocess time that is not decoding;
and how much the output changes between reduce on and off. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder (generated if empty)"
    )
    parser.add_argument("--scale", default="full", help="synth scale when generating --data")
    parser.add_argument("--patients", type=int, default=4, help="synth patients when generating")
    parser.add_argument("--files", type=int, default=12, help="DICOMs to time")
    parser.add_argument("--size", nargs=2, type=int, default=(1024, 512), metavar=("H", "W"))
    parser.add_argument("--workers", nargs="+", type=int, default=(1, 2))
    parser.add_argument("--backends", nargs="*", default=None, help="default: all available")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed passes per setting; the fastest is reported")  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=Path("bench_decode.json"), help="where to write results"
    )


def list_files(data: Path, count: int) -> list[Path]:
    """Up to ``count`` DICOMs, round-robin over (syntax, photometric, size) kinds."""
    from rsna_pkg.dicom import read_header

    groups: dict[tuple, list[Path]] = {}
    for path in sorted(data.glob("*_images/*/*.dcm")):
        h = read_header(path)
        groups.setdefault((h.transfer_syntax_uid, h.photometric, h.rows, h.columns), []).append(
            path
        )
    files: list[Path] = []
    while len(files) < count and any(groups.values()):
        for paths in groups.values():
            if paths and len(files) < count:
                files.append(paths.pop(0))
    return files


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def header_ms(files: Sequence[Path], repeat: int = 20) -> float:
    from rsna_pkg.dicom import read_header

    for f in files:
        read_header(f)  # warm the page cache
    per = [timed(partial(read_header, f)) for _ in range(repeat) for f in files]
    return 1000 * statistics.median(per)


def missing_file_us(repeat: int = 2000) -> float:
    """Median microseconds for ``preprocess_file`` to refuse a file that is not there (the
    README's "a missing file fails in microseconds": 10,000 such ids cost milliseconds)."""
    from rsna_pkg.errors import DicomError
    from rsna_pkg.preprocess import PreprocessConfig, preprocess_file

    cfg = PreprocessConfig(height=64, width=32)

    def refuse(path: Path) -> None:
        try:
            preprocess_file(path, cfg)
        except DicomError:
            return
        raise AssertionError(f"{path} was not refused")

    missing = Path("/nonexistent-rsna-bench") / "1" / "2.dcm"
    per = [timed(partial(refuse, missing)) for _ in range(repeat)]
    return 1e6 * statistics.median(per)


def decode_rates(files: Sequence[Path], backends: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Full-resolution images/s per backend and transfer syntax ("dicomsdl .90" ...)."""
    from rsna_pkg.dicom import decode, read_header
    from rsna_pkg.dicom.backend import get_backend

    by_syntax: dict[str, list[Path]] = {}
    for f in files:
        by_syntax.setdefault(read_header(f).transfer_syntax_uid, []).append(f)
    out: dict[str, dict[str, Any]] = {}
    for name in backends:
        backend = get_backend(name)
        for uid, mine in sorted(by_syntax.items()):
            if uid not in backend.syntaxes():
                continue
            row: dict[str, Any] = {}
            if name == "dali":
                from rsna_pkg.dicom.dali_backend import DaliDecoder

                dec = DaliDecoder(batch_size=4)
                dec.decode_batch(mine[:1])  # build the pipeline and probe outside the timing
                cpu0 = time.process_time()
                seconds = timed(partial(dec.decode_batch, mine))
                row = {"device": dec.device, "sources": sorted({s[:40] for s in dec.last_sources})}
            else:
                decode(mine[0], backend=name)  # imports and first-call set-up
                cpu0 = time.process_time()
                seconds = sum(timed(partial(decode, f, backend=name)) for f in mine)
            cpu = time.process_time() - cpu0
            row.update(files=len(mine), seconds=seconds, images_per_s=len(mine) / seconds,
                       cpu_s_per_image=cpu / len(mine))  # fmt: skip
            out[f"{name} .{uid.rsplit('.', 1)[-1]}"] = row
    return out


def _baseline_one(path: Path, height: int, width: int) -> tuple[float, float, float]:
    """dicomsdl full decode + window + resize (no crop): (total s, decode s)."""
    from rsna_pkg.dicom import apply_voi, decode_file
    from rsna_pkg.preprocess.resize import quantize, resize_pad

    start, cpu = time.perf_counter(), time.process_time()
    d = decode_file(path, "dicomsdl")
    quantize(resize_pad(apply_voi(d.array, d.header), height, width), 8)
    return time.perf_counter() - start, d.seconds, time.process_time() - cpu


def _preprocess_one(path: Path, cfg_dict: dict[str, Any]) -> tuple[Any, ...]:
    """(wall s, decode s, image, reduce level, CPU s) of one preprocess_file call."""
    from rsna_pkg.preprocess import PreprocessConfig, preprocess_file

    start, cpu = time.perf_counter(), time.process_time()
    res = preprocess_file(path, PreprocessConfig.from_dict(cfg_dict))
    wall = time.perf_counter() - start
    return wall, res.decode_seconds, res.image, res.reduce, time.process_time() - cpu


def largest_first(files: Sequence[Path]) -> list[Path]:
    """Biggest files first, so no long decode is left for the end while the other worker idles
    (the runner orders its jobs by the same size)."""
    from rsna_pkg.preprocess.runner import file_size

    return sorted(files, key=lambda f: -file_size(f))


def run_pool(fn: Callable[..., Any], files: Sequence[Path], workers: int, *args: Any,
             repeats: int = 1) -> tuple[float, list[Any]]:  # fmt: skip
    """Fastest wall seconds of ``repeats`` passes of fn(file, *args) over files with ``workers``
    processes (inline for one), and that pass's results. Every worker is warmed first
    (imports, allocator, page cache), so the figure is the steady state of a long run, not
    its start-up."""
    with ExitStack() as stack:
        mapper: Callable[..., Any] = map
        if workers > 1:
            mapper = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map
        warm = files[: 2 * max(1, workers)]
        list(mapper(fn, warm, *[[a] * len(warm) for a in args]))
        passes = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            results = list(mapper(fn, files, *[[a] * len(files) for a in args]))
            passes.append((time.perf_counter() - start, results))
        return min(passes, key=lambda p: p[0])


def measure(files: Sequence[Path], height: int, width: int, workers: Sequence[int],
            backends: Sequence[str], repeats: int = 2) -> dict[str, Any]:  # fmt: skip
    from rsna_pkg.preprocess import PreprocessConfig

    n = len(files)
    result: dict[str, Any] = {
        "files": n,
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "load_before": os.getloadavg(),
        "header_ms_per_file": header_ms(files),
        "missing_file_us": missing_file_us(),
        "decode": decode_rates(files, backends),
    }
    pre: dict[str, Any] = {}
    images: dict[bool, list[np.ndarray]] = {}
    per_file: dict[str, list[Any]] = {}
    for reduce in (True, False):
        cfg = PreprocessConfig(height=height, width=width, reduce=reduce).to_dict()
        for w in workers:
            wall, res = run_pool(_preprocess_one, files, w, cfg, repeats=repeats)
            total = sum(r[0] for r in res)
            decode_s = sum(r[1] for r in res)
            pre[f"reduce={'on' if reduce else 'off'},workers={w}"] = {
                "images_per_s": n / wall,
                "wall_s": wall,
                "non_decode_fraction": 1 - decode_s / total,
                "cpu_s_per_image": sum(r[4] for r in res) / n,
            }
            images[reduce] = [r[2] for r in res]
            if w == workers[0]:
                per_file[f"reduce_{'on' if reduce else 'off'}"] = res
    result["preprocess"] = pre
    wall, res = run_pool(_baseline_one, files, 1, height, width, repeats=repeats)
    result["baseline_dicomsdl_full_resize"] = {
        "images_per_s": n / wall,
        "wall_s": wall,
        "cpu_s_per_image": sum(r[2] for r in res) / n,
    }
    result["per_syntax"] = per_syntax(files, per_file["reduce_on"], res)
    on = pre["reduce=on,workers=1"]["images_per_s"]
    result["speedup_reduce_vs_baseline"] = (
        on / result["baseline_dicomsdl_full_resize"]["images_per_s"]
    )
    result["speedup_reduce_on_vs_off"] = on / pre["reduce=off,workers=1"]["images_per_s"]
    # CPU time is what an idle machine's wall time would be (all steps are single-threaded)
    result["speedup_reduce_vs_baseline_cpu"] = (
        result["baseline_dicomsdl_full_resize"]["cpu_s_per_image"]
        / pre[f"reduce=on,workers={workers[0]}"]["cpu_s_per_image"]
    )
    if 1 in workers and 2 in workers:
        for mode in ("on", "off"):
            one = pre[f"reduce={mode},workers=1"]["images_per_s"]
            result[f"scaling_2_workers_reduce_{mode}"] = (
                pre[f"reduce={mode},workers=2"]["images_per_s"] / one
            )
    diffs = [
        np.abs(a.astype(np.int16) - b.astype(np.int16))
        for a, b in zip(images[True], images[False], strict=True)
    ]
    result["reduce_on_vs_off_uint8"] = {
        "mean_abs": float(np.mean([d.mean() for d in diffs])),
        "p99_abs": float(np.mean([np.percentile(d, 99) for d in diffs])),
        "max_abs": int(max(d.max() for d in diffs)),
    }
    result["load_after"] = os.getloadavg()
    return result


def per_syntax(files: Sequence[Path], reduced: list[Any], baseline: list[Any]) -> dict[str, Any]:
    """Reduce-on preprocess vs the baseline, per transfer syntax (only J2K can reduce)."""
    from rsna_pkg.dicom import read_header

    groups: dict[str, dict[str, Any]] = {}
    for path, red, base in zip(files, reduced, baseline, strict=True):
        g = groups.setdefault(read_header(path).transfer_syntax_uid,
                              {"files": 0, "reduced_s": 0.0, "baseline_s": 0.0, "reduced_cpu_s": 0.0,
                               "baseline_cpu_s": 0.0, "levels": {}})  # fmt: skip
        g["files"] += 1
        g["reduced_s"] += red[0]
        g["baseline_s"] += base[0]
        g["reduced_cpu_s"] += red[4]
        g["baseline_cpu_s"] += base[2]
        g["levels"][str(red[3])] = g["levels"].get(str(red[3]), 0) + 1
    for g in groups.values():
        g["speedup"] = g["baseline_s"] / g["reduced_s"]
        g["speedup_cpu"] = g["baseline_cpu_s"] / g["reduced_cpu_s"]
    return groups


def print_table(r: dict[str, Any]) -> None:
    print(f"files: {r['files']}  cpus: {r['cpu_count']}  fastest of {r['repeats']} passes  "
          "load before/after: "
          f"{r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}")  # fmt: skip
    print(f"header read: {r['header_ms_per_file']:.2f} ms/file; a missing file refused in "
          f"{r['missing_file_us']:.0f} us")  # fmt: skip
    print("full decode            files   img/s  CPU s/img")
    for name, d in r["decode"].items():
        extra = f"  ({d['device']})" if "device" in d else ""
        print(f"  {name:<20} {d['files']:>5}  {d['images_per_s']:6.2f}  "
              f"{d['cpu_s_per_image']:6.3f}{extra}")  # fmt: skip
    print("preprocess                     img/s  CPU s/img  non-decode share")
    for key, d in r["preprocess"].items():
        print(f"  {key:<28} {d['images_per_s']:6.2f}  {d['cpu_s_per_image']:6.3f}     "
              f"{100 * d['non_decode_fraction']:5.1f} %")  # fmt: skip
    b = r["baseline_dicomsdl_full_resize"]
    print(f"  baseline dicomsdl full+resize {b['images_per_s']:6.2f}  {b['cpu_s_per_image']:6.3f}")
    print(f"speed-up reduce on vs baseline: {r['speedup_reduce_vs_baseline']:.2f}x wall, "
          f"{r['speedup_reduce_vs_baseline_cpu']:.2f}x CPU; "
          f"vs reduce off: {r['speedup_reduce_on_vs_off']:.2f}x")  # fmt: skip
    for uid, g in r["per_syntax"].items():
        print(f"  syntax {uid}: {g['files']} files, reduce levels {g['levels']}, "
              f"speed-up vs baseline {g['speedup']:.2f}x wall, {g['speedup_cpu']:.2f}x CPU")  # fmt: skip
    for key in ("scaling_2_workers_reduce_on", "scaling_2_workers_reduce_off"):
        if key in r:
            print(f"{key}: {r[key]:.2f}x")
    d = r["reduce_on_vs_off_uint8"]
    print(f"reduce on vs off (uint8): mean |diff| {d['mean_abs']:.2f}, p99 {d['p99_abs']:.1f}, "
          f"max {d['max_abs']}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.dicom import available_backends
    from rsna_pkg.errors import InputError

    data = Path(args.data)
    if not (data / "train.csv").is_file():
        from rsna_pkg.data.synth import SynthConfig, generate

        print(f"generating a synthetic dataset ({args.patients} patients, {args.scale}) in {data}")
        generate(data, SynthConfig(patients=args.patients, scale=args.scale, seed=0, test_frac=0.0))
    files = largest_first(list_files(data, args.files))
    if not files:
        raise InputError(f"{data}: no DICOM files under *_images/")
    backends = args.backends if args.backends else available_backends()
    result = measure(files, args.size[0], args.size[1], args.workers, backends, args.repeats)
    result["size"] = list(args.size)
    result["data"] = str(data)
    print_table(result)
    Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["decode", *sys.argv[1:]]))
