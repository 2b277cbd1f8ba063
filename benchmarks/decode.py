"""Decode and preprocess throughput per decoder, reduce on/off and worker count.

Measures, on the DICOMs of a synthetic dataset (``rsna synth --scale full`` for the real
figures; files taken round-robin over the machine profiles): header read ms/file;
full-decode images/s per decoder; preprocess_file images/s to HxW with reduce on and off for
1 and 2 workers; the baseline "dicomsdl full decode + window + resize" (dicomsdl called
directly, as competitors do) per transfer syntax against the package at model resolution,
file by file with the two run side by side (each file's fastest of ``--repeats`` runs in a
row, with the minor page faults of those runs);
what the J2K decoders cost at each resolution level, and what OpenJPEG costs decoding only
the crop's window of the needed level (the package's route) or the whole level; the
whole-train-set projection (54,706 images in the machine profiles' mix on a 4-core CPU) with
the per-image cost it rests on; the share of preprocess time that is not decoding; how much
the output changes between reduce on and off. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
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
    parser.add_argument("--patients", type=int, default=11,
                        help="synth patients when generating (11: a train patient on each of "
                             "the 10 machines, and the one test patient)")  # fmt: skip
    parser.add_argument("--files", type=int, default=12, help="DICOMs to time")
    parser.add_argument("--size", nargs=2, type=int, default=(1024, 512), metavar=("H", "W"))
    parser.add_argument("--workers", nargs="+", type=int, default=(1, 2))
    parser.add_argument("--decoders", "--backends", dest="backends", nargs="*", default=None,
                        help="registered decoders to time (default: all available; "
                             "--backends: deprecated spelling)")  # fmt: skip
    parser.add_argument("--rle", type=int, default=2, metavar="N",
                        help="also time the N smallest files re-encoded as RLE Lossless, which "
                             "no competition machine writes (in a temporary folder)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed passes per setting; the fastest is reported")  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=Path("bench_decode.json"), help="where to write results"
    )


TRAIN_IMAGES = 54_706  # the competition's train set
KAGGLE_CORES = 4  # a Kaggle CPU session
GOALS = {"1.2.840.10008.1.2.4.70": 1.5, "1.2.840.10008.1.2.4.90": 7.5, "1.2.840.10008.1.2.5": 1.0}


def machine_ids(data: Path) -> dict[str, int]:
    """image_id -> machine_id from the data's CSVs ({} when they carry none)."""
    import csv

    out: dict[str, int] = {}
    for name in ("train.csv", "test.csv"):
        table = data / name
        if table.is_file():
            with table.open(newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("machine_id"):
                        out[row["image_id"]] = int(row["machine_id"])
    return out


def list_files(data: Path, count: int) -> list[Path]:
    """Up to ``count`` DICOMs, round-robin over machines (else (syntax, photometric, size)
    kinds when the CSVs name no machine)."""
    from rsna_pkg.dicom import read_header

    machines = machine_ids(data)
    groups: dict[tuple, list[Path]] = {}
    for path in sorted(data.glob("*_images/*/*.dcm")):
        if path.stem in machines:
            key: tuple = (machines[path.stem],)
        else:
            h = read_header(path)
            key = (h.transfer_syntax_uid, h.photometric, h.rows, h.columns)
        groups.setdefault(key, []).append(path)
    files: list[Path] = []
    while len(files) < count and any(groups.values()):
        for paths in groups.values():
            if paths and len(files) < count:
                files.append(paths.pop(0))
    return files


def rle_copies(files: Sequence[Path], folder: Path) -> list[Path]:
    """Each file re-encoded as RLE Lossless (pixels unchanged) into ``folder``, unless already
    there: pydicom's encoder takes tens of seconds for a full-size image. Named ``<image>_rle.dcm`` so that the
    projection, which weighs machines by image id, leaves these extra files out."""
    import pydicom
    from pydicom.uid import RLELossless

    copies = []
    for path in files:
        target = folder / path.parent.name / f"{path.stem}_rle.dcm"
        if not target.is_file():
            ds = pydicom.dcmread(path)
            ds.compress(RLELossless, ds.pixel_array)
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target.with_suffix(".tmp"))
            target.with_suffix(".tmp").replace(target)
        copies.append(target)
    return copies


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
    from rsna_pkg.dicom.backend import get_decoder

    by_syntax: dict[str, list[Path]] = {}
    for f in files:
        by_syntax.setdefault(read_header(f).transfer_syntax_uid, []).append(f)
    out: dict[str, dict[str, Any]] = {}
    for name in backends:
        backend = get_decoder(name)
        for uid, mine in sorted(by_syntax.items()):
            if uid not in backend.capabilities().syntaxes:
                continue
            row: dict[str, Any] = {}
            if backend.capabilities().batch:
                dec = backend.batch_decoder(batch_size=4)  # type: ignore[attr-defined]
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


def minor_faults() -> int:
    """Minor page faults of this process so far (first touches of memory it was given)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _baseline_one(path: Path, height: int, width: int) -> tuple[float, float, float, int]:
    """dicomsdl full decode (called directly, no checks) + window + resize (no crop):
    (total s, decode s, CPU s, minor page faults)."""
    import dicomsdl

    from rsna_pkg.dicom import apply_voi, read_header
    from rsna_pkg.dicom.pixels import to_stored
    from rsna_pkg.preprocess.resize import quantize, resize_pad

    faults = minor_faults()
    start, cpu = time.perf_counter(), time.process_time()
    header = read_header(path)
    stored = to_stored(dicomsdl.open(str(path)).pixelData(storedvalue=True), header)
    decoded = time.perf_counter() - start
    quantize(resize_pad(apply_voi(stored, header), height, width), 8)
    return (time.perf_counter() - start, decoded, time.process_time() - cpu,
            minor_faults() - faults)  # fmt: skip


def _preprocess_one(path: Path, cfg_dict: dict[str, Any]) -> tuple[Any, ...]:
    """(wall s, decode s, image, reduce level, CPU s, full-resolution box, seconds per
    step, minor page faults) of one preprocess_file call."""
    from rsna_pkg.preprocess import PreprocessConfig, preprocess_file

    faults = minor_faults()
    start, cpu = time.perf_counter(), time.process_time()
    res = preprocess_file(path, PreprocessConfig.from_dict(cfg_dict))
    wall = time.perf_counter() - start
    return (wall, res.decode_seconds, res.image, res.reduce, time.process_time() - cpu, res.box,
            res.timings, minor_faults() - faults)  # fmt: skip


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


def paired_best(files: Sequence[Path], configs: Sequence[dict[str, Any]], height: int,
                width: int, repeats: int) -> tuple[list[list[Any]], list[Any]]:  # fmt: skip
    """Per file, ``preprocess_file`` under each config, then the baseline, each run
    ``repeats`` times in a row after one warm-up run, keeping each one's fastest run
    (``_preprocess_one`` / ``_baseline_one`` results).

    Side by side, file by file: every per-syntax ratio compares runs made seconds apart on
    the same machine state, and a stall of a shared machine costs one run, not a whole pass
    of one side (passes of one side after the other moved .70's ratio between 1.36x and
    1.63x over three runs of the same code). Each side's runs in a row: a pipeline run
    right after the other one first faults in the memory that one's frees left unmapped
    (an RLE file here: the package 2,200-2,600 minor faults and 22-25 ms right after the
    baseline, 0 and 18.5-20 ms after itself; the baseline 1,500-1,900 after the package,
    5,100 after itself), a switch no real run makes; the warm-up run absorbs it."""
    best: list[list[Any]] = [[None] * len(files) for _ in configs]
    base: list[Any] = [None] * len(files)
    for i, path in enumerate(files):
        sides: list[tuple[list[Any], Callable[[], Any]]] = [
            (best[k], partial(_preprocess_one, path, cfg)) for k, cfg in enumerate(configs)
        ]
        sides.append((base, partial(_baseline_one, path, height, width)))
        for kept, run_once in sides:
            run_once()  # warm-up
            kept[i] = min((run_once() for _ in range(max(1, repeats))), key=lambda r: r[0])
    return best, base


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
    result["preprocess"] = pre
    # the package (and its J2K route with levels that never enlarge, the route before
    # max_upscale) against the baseline, file by file, one worker
    on_cfg = PreprocessConfig(height=height, width=width).to_dict()
    exact_cfg = PreprocessConfig(height=height, width=width, max_upscale=1.0).to_dict()
    (on, exact), res = paired_best(files, [on_cfg, exact_cfg], height, width, repeats)
    result["baseline_dicomsdl_full_resize"] = {
        "images_per_s": n / sum(r[0] for r in res),
        "wall_s": sum(r[0] for r in res),
        "cpu_s_per_image": sum(r[2] for r in res) / n,
    }
    result["per_syntax"] = per_syntax(files, on, res)
    result["exact_levels"] = exact_levels(files, on, exact, res)
    result["j2k_levels"] = j2k_level_costs(files, on, PreprocessConfig().probe_size)
    result["projection"] = projection(files, on, res, result["j2k_levels"], exact)
    result["speedup_reduce_vs_baseline"] = sum(r[0] for r in res) / sum(r[0] for r in on)
    result["speedup_reduce_on_vs_off"] = (
        pre["reduce=on,workers=1"]["images_per_s"] / pre["reduce=off,workers=1"]["images_per_s"]
    )
    # CPU time is what an idle machine's wall time would be (all steps are single-threaded)
    result["speedup_reduce_vs_baseline_cpu"] = sum(r[2] for r in res) / sum(r[4] for r in on)
    if 1 in workers and 2 in workers:
        for mode in ("on", "off"):
            one = pre[f"reduce={mode},workers=1"]["images_per_s"]
            result[f"scaling_2_workers_reduce_{mode}"] = (
                pre[f"reduce={mode},workers=2"]["images_per_s"] / one
            )
    result["reduce_on_vs_off_uint8"] = uint8_differences(images[True], images[False])
    result["load_after"] = os.getloadavg()
    return result


def per_syntax(files: Sequence[Path], reduced: list[Any], baseline: list[Any]) -> dict[str, Any]:
    """Reduce-on preprocess vs the baseline, per transfer syntax (only J2K can reduce)."""
    from rsna_pkg.dicom import read_header

    groups: dict[str, dict[str, Any]] = {}
    for path, red, base in zip(files, reduced, baseline, strict=True):
        g = groups.setdefault(read_header(path).transfer_syntax_uid,
                              {"files": 0, "reduced_s": 0.0, "baseline_s": 0.0, "reduced_cpu_s": 0.0,
                               "baseline_cpu_s": 0.0, "reduced_faults": 0, "baseline_faults": 0,
                               "levels": {}})  # fmt: skip
        g["files"] += 1
        g["reduced_s"] += red[0]
        g["baseline_s"] += base[0]
        g["reduced_cpu_s"] += red[4]
        g["baseline_cpu_s"] += base[2]
        g["reduced_faults"] += red[7]
        g["baseline_faults"] += base[3]
        g["levels"][str(red[3])] = g["levels"].get(str(red[3]), 0) + 1
        steps = g.setdefault("steps_ms", {})
        for step, sec in red[6].items():
            if step != "total":
                steps[step] = steps.get(step, 0.0) + 1000 * sec
    for g in groups.values():
        g["speedup"] = g["baseline_s"] / g["reduced_s"]
        g["speedup_cpu"] = g["baseline_cpu_s"] / g["reduced_cpu_s"]
        g["steps_ms"] = {k: v / g["files"] for k, v in g["steps_ms"].items()}
        # the ratio were every step but reading and decoding free: what the decoders
        # alone allow against the baseline
        io_ms = sum(v for k, v in g["steps_ms"].items() if k in ("header", "read")
                    or k.startswith("decode"))  # fmt: skip
        g["decode_bound_ratio"] = 1000 * g["baseline_s"] / g["files"] / io_ms
    return groups


def exact_levels(files: Sequence[Path], reduced: list[Any], exact: list[Any],
                 baseline: list[Any]) -> dict[str, Any]:  # fmt: skip
    """The route with levels that never enlarge (``exact``, run with ``max_upscale=1.0``)
    against the default's (``reduced``): its per-syntax ratio, and how much the default's
    output differs from it."""
    from rsna_pkg.preprocess import PreprocessConfig

    return {
        "default_max_upscale": PreprocessConfig().max_upscale,
        "per_syntax": per_syntax(files, exact, baseline),
        **level_differences(reduced, exact),
    }


def level_differences(reduced: list[Any], exact: list[Any]) -> dict[str, Any]:
    """8-bit output differences on the files where ``reduced`` decoded another level than
    ``exact`` (results as ``_preprocess_one`` returns them)."""
    pairs = [(a[2], e[2]) for a, e in zip(reduced, exact, strict=True) if a[3] != e[3]]
    d = uint8_differences([a for a, _ in pairs], [e for _, e in pairs])
    return {
        "files_a_level_deeper": len(pairs),
        "changed_mean_abs_uint8": d["mean_abs"],
        "changed_p99_abs_uint8": d["p99_abs"],
        "changed_psnr_db": d["psnr_db"],
    }


def uint8_differences(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> dict[str, Any]:
    """|a - b| of pairs of 8-bit images: mean and 99th percentile (each averaged over the
    pairs), the largest, and each pair's PSNR in dB (inf where identical); zeros for none."""
    diffs = [np.abs(x.astype(np.int16) - y.astype(np.int16)) for x, y in zip(a, b, strict=True)]
    if not diffs:
        return {"mean_abs": 0.0, "p99_abs": 0.0, "max_abs": 0, "psnr_db": []}
    mse = [float(np.mean(d.astype(np.float64) ** 2)) for d in diffs]
    return {
        "mean_abs": float(np.mean([d.mean() for d in diffs])),
        "p99_abs": float(np.mean([np.percentile(d, 99) for d in diffs])),
        "max_abs": int(max(d.max() for d in diffs)),
        "psnr_db": [float("inf") if m == 0 else float(10 * np.log10(255**2 / m)) for m in mse],
    }


def _best_cpu_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, float] | None:
    """(CPU ms, wall ms) of the fastest of ``repeats`` calls; None when it raises OSError or
    ValueError (Pillow's "broken data stream" at some levels)."""
    best: tuple[float, float] | None = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            fn()
        except (OSError, ValueError):
            return None
        now = (1000 * (time.process_time() - cpu), 1000 * (time.perf_counter() - wall))
        best = now if best is None or now[0] < best[0] else best
    return best


def _pillow_level(frame: bytes, level: int) -> None:
    """Pillow's OpenJPEG decode of one level as the package calls it (sized by OpenJPEG's
    rule: ``openjpeg_backend.load_level``)."""
    import io

    from PIL import Image

    from rsna_pkg.dicom.openjpeg_backend import load_level

    with Image.open(io.BytesIO(frame)) as im:
        if level:
            load_level(im, level)
        else:
            im.load()


def region_costs(frame: bytes, h: Any, level: int, box: Sequence[int],
                 repeats: int) -> dict[str, Any] | None:  # fmt: skip
    """CPU ms (best of ``repeats``) of OpenJPEG decoding the crop's window of level ``level``
    alone, as the package does (``OpenjpegDecoder.decode_window``), and the whole level
    through the same call; whether the window equals the whole level's crop of ``box`` (in
    full-resolution pixels, scaled as the pipeline scales it). None where the decoder
    declines the file."""
    from rsna_pkg.dicom.backend import Declined
    from rsna_pkg.dicom.openjpeg_backend import DECODER
    from rsna_pkg.dicom.pixels import reduced_shape
    from rsna_pkg.preprocess.roi import Box

    rows, cols = reduced_shape(h.rows, h.columns, level)
    window = Box(*box).scaled(2.0**-level, rows, cols).as_tuple()
    try:
        part = DECODER.decode_window(frame, h, level, window).array
    except Declined:
        return None
    whole = DECODER.decode_window(frame, h, level, (0, 0, rows, cols)).array
    y0, x0, y1, x1 = window
    region = _best_cpu_ms(partial(DECODER.decode_window, frame, h, level, window), repeats)
    full = _best_cpu_ms(partial(DECODER.decode_window, frame, h, level, (0, 0, rows, cols)),
                        repeats)  # fmt: skip
    return {"window": list(window), "area_fraction": (y1 - y0) * (x1 - x0) / (rows * cols),
            "exact": bool(np.array_equal(part, whole[y0:y1, x0:x1])),
            "region_cpu_ms": region[0] if region else None,
            "level_cpu_ms": full[0] if full else None}  # fmt: skip


def _dicomsdl_full(path: Path) -> None:
    import dicomsdl

    dicomsdl.open(str(path)).pixelData(storedvalue=True)


def _plus_probe(final_ms: float | None, probe_ms: float | None, same: bool) -> float | None:
    if final_ms is None or probe_ms is None:
        return None
    return probe_ms if same else final_ms + probe_ms


def j2k_level_costs(files: Sequence[Path], reduced: list[Any], probe_size: int,
                    repeats: int = 3) -> list[dict[str, Any]]:  # fmt: skip
    """Per J2K file: what each decoder the package can use costs (CPU ms, best of
    ``repeats``): OpenJPEG through Pillow at resolution levels 0-4, through imagecodecs at
    full resolution with 1 and 2 threads (CPU and wall), dicomsdl; the levels the pipeline
    used (probe, final = the level the crop needs); the package's own CPU and decode time;
    OpenJPEG decoding only the crop's window of the final level (:func:`region_costs`); and
    the library floors: of the package's route (probe level by Pillow + the window), of the
    route before windows (probe + the whole final level) and of the window alone."""
    import imagecodecs

    from rsna_pkg.dicom import open_image
    from rsna_pkg.dicom.frames import J2K_SYNTAXES
    from rsna_pkg.preprocess.pipeline import probe_level

    machines = machine_ids(files[0].parents[2]) if files else {}
    rows = []
    for path, red in zip(files, reduced, strict=True):
        image = open_image(path)
        h = image.header
        if h.transfer_syntax_uid not in J2K_SYNTAXES:
            continue
        frame = image.frame
        levels = image.j2k_levels
        pillow = {r: _best_cpu_ms(partial(_pillow_level, frame, r), 2 if r == 0 else repeats)
                  for r in range(min(levels, 4) + 1)}  # fmt: skip
        ic = {t: _best_cpu_ms(partial(imagecodecs.jpeg2k_decode, frame, numthreads=t), 2)
              for t in (1, 2)}  # fmt: skip
        sdl = _best_cpu_ms(partial(_dicomsdl_full, path), 2)
        probe = min(levels, probe_level(h.rows, h.columns, probe_size))
        final = int(red[3])
        done = {r: v[0] for r, v in pillow.items() if v is not None}
        probe_ms = next((done[r] for r in range(probe, -1, -1) if r in done), None)
        final_ms = done.get(final)
        region = region_costs(frame, h, final, red[5], repeats)
        window_ms = region["region_cpu_ms"] if region else None
        rows.append({
            "file": path.name, "machine": machines.get(path.stem), "shape": [h.rows, h.columns],
            "levels": levels, "probe_level": probe, "final_level": final,
            "pillow_cpu_ms": {str(r): (v[0] if v else None) for r, v in pillow.items()},
            "imagecodecs_full": {str(t): (list(v) if v else None) for t, v in ic.items()},
            "dicomsdl_full_cpu_ms": sdl[0] if sdl else None,
            "package_cpu_ms": 1000 * red[4], "package_decode_ms": 1000 * red[1],
            # the probe level is decoded once when it is also the final level (then cropped)
            "floor_route_ms": _plus_probe(window_ms, probe_ms, final == probe),
            "floor_whole_level_ms": _plus_probe(final_ms, probe_ms, final == probe),
            "floor_window_only_ms": window_ms, "region": region,
        })  # fmt: skip
    return rows


def projection(files: Sequence[Path], reduced: list[Any], baseline: list[Any],
               levels: list[dict[str, Any]], exact: list[Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole train set (TRAIN_IMAGES images in the synthetic machine profiles' mix of
    syntaxes and sizes) on KAGGLE_CORES cores, from the measured CPU s per image of each
    machine's files (a machine without a measured file: its syntax's CPU s per Mpx times its
    size). Also the same with each J2K file's decoding at the library floors of
    ``j2k_level_costs``, and (``exact``) with levels that never enlarge."""
    from rsna_pkg.data.synth.machines import MACHINES
    from rsna_pkg.dicom import read_header

    machines = machine_ids(files[0].parents[2]) if files else {}
    floor = {row["file"]: row for row in levels}
    floors = [("floor_route", "floor_route_ms"), ("floor_whole_level", "floor_whole_level_ms"),
              ("floor_window", "floor_window_only_ms")]  # fmt: skip
    per: dict[int, dict[str, list[float]]] = {}
    per_mpx: dict[str, dict[str, list[float]]] = {}
    for i, (path, red, base) in enumerate(zip(files, reduced, baseline, strict=True)):
        h = read_header(path)
        mpx = h.rows * h.columns / 1e6
        costs = {"package": red[4], "baseline": base[2]}
        if exact is not None:
            costs["exact_levels"] = exact[i][4]
        row = floor.get(path.name)
        for key, field_ in floors:
            if row and row.get(field_) is not None:  # J2K: the decode at the library floor
                costs[key] = red[4] - red[1] + row[field_] / 1000
            else:
                costs[key] = red[4]
        m = machines.get(path.stem, -1)
        for key, value in costs.items():
            per.setdefault(m, {}).setdefault(key, []).append(value)
            per_mpx.setdefault(h.transfer_syntax_uid, {}).setdefault(key, []).append(value / mpx)
    shapes = {tuple(p.full_shape) for p in MACHINES.values()}
    measured = {(read_header(f).rows, read_header(f).columns) for f in files}
    scale = "full" if measured & shapes else "small"  # the size of an unmeasured machine
    out: dict[str, Any] = {"images": TRAIN_IMAGES, "cores": KAGGLE_CORES, "scale": scale,
                           "machines": {}}  # fmt: skip
    totals: dict[str, float] = {}
    by_syntax: dict[str, dict[str, float]] = {}
    for mid, prof in MACHINES.items():
        rows, cols = prof.shape(scale)
        mpx = rows * cols / 1e6
        if mid in per:
            costs = {k: statistics.mean(v) for k, v in per[mid].items()}
            source = f"{len(per[mid]['package'])} file(s)"
        elif prof.transfer_syntax in per_mpx:
            costs = {k: mpx * statistics.mean(v) for k, v in per_mpx[prof.transfer_syntax].items()}
            source = "syntax CPU s/Mpx x size"
        else:
            continue
        out["machines"][str(mid)] = {"weight": prof.weight, "syntax": prof.transfer_syntax,
                                     "shape": list(prof.full_shape), "source": source,
                                     "cpu_s": costs}  # fmt: skip
        for k, v in costs.items():
            totals[k] = totals.get(k, 0.0) + prof.weight * v
            syn = by_syntax.setdefault(prof.transfer_syntax, {"weight": 0.0})
            syn[k] = syn.get(k, 0.0) + prof.weight * v
        by_syntax[prof.transfer_syntax]["weight"] += prof.weight
    weight = sum(s["weight"] for s in by_syntax.values())
    out["cpu_s_per_image"] = {k: v / weight for k, v in totals.items()}
    out["minutes"] = {
        k: TRAIN_IMAGES * v / KAGGLE_CORES / 60 for k, v in out["cpu_s_per_image"].items()
    }
    out["by_syntax"] = {uid: {"share": s["weight"] / weight,
                              **{k: v / s["weight"] for k, v in s.items() if k != "weight"}}
                        for uid, s in by_syntax.items()}  # fmt: skip
    return out


def print_table(r: dict[str, Any]) -> None:
    print(f"files: {r['files']}  cpus: {r['cpu_count']}  fastest of {r['repeats']} passes "
          f"(package vs baseline: each file's fastest of {r['repeats']} runs in a row, side by "
          "side)  "
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
    print("per syntax, package at model resolution vs dicomsdl full decode + resize (1 worker)")
    print(
        "  syntax                   files  package s/img  baseline s/img  ratio wall  ratio CPU  "
        "page faults/img (package / baseline)  goal"
    )

    def row(uid: str, g: dict[str, Any], note: str) -> None:
        n = g["files"]
        print(f"  {uid:<24} {n:>5}  {g['reduced_s'] / n:13.3f}  {g['baseline_s'] / n:14.3f}  "
              f"{g['speedup']:9.2f}x  {g['speedup_cpu']:8.2f}x  "
              f"{g['reduced_faults'] / n:8.0f} / {g['baseline_faults'] / n:<8.0f}  {note}   "
              f"levels {g['levels']}")  # fmt: skip

    for uid, g in r["per_syntax"].items():
        goal = GOALS.get(uid)
        row(uid, g, "" if goal is None else
            f">= {goal}x {'met' if g['speedup'] >= goal else 'MISSED'}")  # fmt: skip
    from rsna_pkg.dicom.frames import J2K_SYNTAXES

    x = r["exact_levels"]
    for uid, g in x["per_syntax"].items():
        if uid in J2K_SYNTAXES:
            row(uid, g, "with levels that never enlarge (max_upscale 1.0)")
    print(f"  max_upscale {x['default_max_upscale']}: {x['files_a_level_deeper']} files a level "
          f"deeper; their output vs max_upscale 1.0 (uint8): mean |diff| "
          f"{x['changed_mean_abs_uint8']:.2f}, p99 {x['changed_p99_abs_uint8']:.0f}, PSNR "
          f"{' '.join(f'{v:.1f}' for v in x['changed_psnr_db'])} dB")  # fmt: skip
    print("  per step, ms/img (ratio bound: baseline / header + read + decode steps alone)")
    for uid, g in r["per_syntax"].items():
        steps = "  ".join(f"{k} {v:.1f}" for k, v in g["steps_ms"].items())
        print(f"  {uid:<24} {steps}   bound {g['decode_bound_ratio']:.2f}x")
    print_levels(r["j2k_levels"])
    print_projection(r["projection"])
    for key in ("scaling_2_workers_reduce_on", "scaling_2_workers_reduce_off"):
        if key in r:
            print(f"{key}: {r[key]:.2f}x")
    d = r["reduce_on_vs_off_uint8"]
    print(f"reduce on vs off (uint8): mean |diff| {d['mean_abs']:.2f}, p99 {d['p99_abs']:.1f}, "
          f"max {d['max_abs']}")  # fmt: skip


def print_levels(rows: list[dict[str, Any]]) -> None:
    def ms(v: float | None) -> str:
        return "fail" if v is None else f"{v:.0f}"

    print("J2K decoders, CPU ms (best of passes): OpenJPEG via Pillow at level L0-L4, via "
          "imagecodecs full (1 / 2 threads: CPU, wall), dicomsdl full")  # fmt: skip
    print("  machine shape      L0    L1    L2    L3    L4   ic1 cpu  ic2 cpu/wall  dicomsdl "
          " probe>final  package cpu (decode)  floor route / whole level")  # fmt: skip
    for row in rows:
        p = row["pillow_cpu_ms"]
        ic1, ic2 = row["imagecodecs_full"]["1"], row["imagecodecs_full"]["2"]
        lv = " ".join(f"{ms(p.get(str(r))):>5}" for r in range(5))
        print(f"  {str(row['machine']):>7} {row['shape'][0]}x{row['shape'][1]} {lv} "
              f"{ms(ic1[0] if ic1 else None):>8} {ms(ic2[0] if ic2 else None):>6}/"
              f"{ms(ic2[1] if ic2 else None):<6} {ms(row['dicomsdl_full_cpu_ms']):>8}   "
              f"L{row['probe_level']}>L{row['final_level']}   {row['package_cpu_ms']:8.0f} "
              f"({row['package_decode_ms']:.0f})  {ms(row['floor_route_ms']):>10} / "
              f"{ms(row['floor_whole_level_ms'])}")  # fmt: skip
    regions = [row for row in rows if row.get("region")]
    print("J2K crop window at the final level (OpenJPEG's decode area, CPU ms): window share "
          "of the level, whole level, window alone, window + probe, exact vs the whole "
          "level's crop")  # fmt: skip
    for row in regions:
        g = row["region"]
        print(f"  {str(row['machine']):>7} {row['shape'][0]}x{row['shape'][1]} "
              f"L{row['final_level']}  {100 * g['area_fraction']:4.0f} %  "
              f"{ms(g['level_cpu_ms']):>6}  {ms(g['region_cpu_ms']):>6}  "
              f"{ms(row['floor_route_ms']):>6}  {'exact' if g['exact'] else 'DIFFERS'}")  # fmt: skip


def print_projection(p: dict[str, Any]) -> None:
    print(f"projection: {p['images']} images at the machine profiles' mix on {p['cores']} cores")
    print("  syntax                   share  package  baseline  ratio  J2K at floor "
          "(route / window only), CPU s/img")  # fmt: skip
    for uid, s in p["by_syntax"].items():
        print(f"  {uid:<24} {100 * s['share']:4.0f} %  {s['package']:7.3f}  {s['baseline']:8.3f}"
              f"  {s['baseline'] / s['package']:4.2f}x  {s['floor_route']:10.3f} / "
              f"{s['floor_window']:.3f}")  # fmt: skip
    c, m = p["cpu_s_per_image"], p["minutes"]
    for key, label in (("package", "package (measured)"),
                       ("exact_levels", "package, levels that never enlarge (max_upscale 1.0)"),
                       ("baseline", "dicomsdl + resize"),
                       ("floor_route", "package, J2K at the library floor of its route"),
                       ("floor_whole_level", "J2K probe + whole final level (before windows)"),
                       ("floor_window", "J2K decoding the crop's window only (no probe)")):  # fmt: skip
        if key in c:
            print(f"  {label:<60} {c[key]:.3f} CPU s/img -> {m[key]:5.1f} min")


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.dicom import available_decoders
    from rsna_pkg.errors import InputError

    data = Path(args.data)
    if not (data / "train.csv").is_file():
        from rsna_pkg.data.synth import SynthConfig, generate

        print(f"generating a synthetic dataset ({args.patients} patients, {args.scale}) in {data}")
        generate(data, SynthConfig(patients=args.patients, scale=args.scale, seed=0, test_frac=0.0))
    files = largest_first(list_files(data, args.files))
    if not files:
        raise InputError(f"{data}: no DICOM files under *_images/")
    backends = args.backends if args.backends else available_decoders()
    # RLE copies of the smallest files (the encoder is slow), after the competition's files,
    # in a folder of their own: the data folder stays as it was
    with tempfile.TemporaryDirectory(prefix="rsna-bench-rle-") as rle_dir:
        if args.rle > 0:
            files += rle_copies(files[::-1][: args.rle], Path(rle_dir))
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
