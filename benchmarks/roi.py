"""Crop quality: the breast box against the generator's truth, on images with every
artefact real mammograms carry (burned-in labels, edge bands, a chest-wall strip, a faint
skin line and nipple), across every machine profile, for the earlier threshold crop and the
segmentation side by side, in one run.

Each image goes through what ``rsna preprocess`` does to find the box: stored values in the
machine's encoding and header (VOI tags, MONOCHROME1), an area-mean probe of about 256 px
(``preprocess_stored``'s route), ``locate``. The codec is left out: J2K's resolution levels
give nearly the same probe. Figures: the share of true breast pixels inside the box (goal:
mean >= 99.9 %, worst >= 99 %), box area over true-box area (goal: mean <= 1.10), label
pixels inside the box (goal: 0 on every image), and milliseconds per image for ``locate``
on the probe (windowing, the mask or threshold, the box; not the probe's decode).

rsna bench roi [--images 500] [--scale small|full] [--seed 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

METHODS: dict[str, tuple[Literal["segment", "threshold"], float]] = {
    "threshold (before)": ("threshold", 0.02),
    "segment (now)": ("segment", 0.005),
}
VIEWS = ("CC", "MLO", "CC", "MLO", "CC", "MLO", "ML", "AT")
DENSITIES = ("A", "B", "C", "D")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=500, help="generated images (>= 10)")
    parser.add_argument("--scale", default="small", choices=("small", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


@dataclass(frozen=True)
class Case:
    machine_id: int
    laterality: str
    view: str
    density: str
    implant: bool


def cases(n: int) -> list[Case]:
    """Every machine in turn, both sides, the views in their rough real mix."""
    from rsna_pkg.data.synth.machines import MACHINES

    machines = sorted(MACHINES)
    return [
        Case(machines[i % len(machines)], "LR"[(i // len(machines)) % 2], VIEWS[i % len(VIEWS)],
             DENSITIES[(i // 3) % 4], i % 9 == 4)
        for i in range(n)
    ]  # fmt: skip


def scene_and_header(case: Case, scale: str, seed: int) -> tuple[Any, np.ndarray, Any]:
    """(truth Scene, stored values, DicomHeader) of one generated image, through the
    synthetic writer's own encoding of values and header tags (no codestream)."""
    from rsna_pkg.data.synth.artefacts import ARTEFACT_RATES
    from rsna_pkg.data.synth.machines import MACHINES
    from rsna_pkg.data.synth.phantom import render_scene
    from rsna_pkg.data.synth.writer import ImageIds, build_dataset, to_stored, voi_for
    from rsna_pkg.dicom.header import header_from_dataset

    profile = MACHINES[case.machine_id]
    scene = render_scene(profile.shape(scale), case.laterality, case.view, case.density,
                         case.implant, None, np.random.default_rng(seed),
                         profile.mm_per_pixel(scale), ARTEFACT_RATES[case.machine_id])  # fmt: skip
    stored = to_stored(scene.image, profile)
    ids = ImageIds(1, seed, case.laterality, case.view, 0)
    ds = build_dataset(stored, b"\x00\x00", voi_for(stored, scene.image, profile), ids, profile)
    return scene, stored, header_from_dataset(ds, f"generated_{seed}.dcm")


def score(scene: Any, box: tuple[int, int, int, int]) -> dict[str, float]:
    """Truth masks live on the drawing canvas: a canvas pixel is inside the box when its
    centre, in image pixels, is."""
    rows, cols = scene.image.shape
    sy, sx = rows / scene.breast.shape[0], cols / scene.breast.shape[1]
    cy = (np.arange(scene.breast.shape[0]) + 0.5) * sy
    cx = (np.arange(scene.breast.shape[1]) + 0.5) * sx
    inside = ((cy >= box[0]) & (cy < box[2]))[:, None] & ((cx >= box[1]) & (cx < box[3]))[None, :]
    ty0, tx0, ty1, tx1 = scene.breast_box()
    return {
        "share": float((scene.breast & inside).sum() / scene.breast.sum()),
        "area_ratio": (box[2] - box[0]) * (box[3] - box[1]) / ((ty1 - ty0) * (tx1 - tx0)),
        "label_px": float((scene.labels & inside).sum() * sy * sx),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from rsna_pkg.dicom import area_downsample
    from rsna_pkg.preprocess import PreprocessConfig
    from rsna_pkg.preprocess.pipeline import locate, probe_level

    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    for i, case in enumerate(cases(args.images)):
        scene, stored, header = scene_and_header(case, args.scale, args.seed * 100_003 + i)
        for name, (roi, margin) in METHODS.items():
            cfg = PreprocessConfig(roi=roi, margin=margin)
            level = probe_level(header.rows, header.columns, cfg.probe_size)
            probe = area_downsample(stored, level)
            t = time.perf_counter()  # the box finding alone: the probe's cost is the codec's
            probe_box, _ = locate(probe, header, cfg)
            seconds = time.perf_counter() - t
            box = probe_box.scaled(2**level, header.rows, header.columns).as_tuple()
            rows[name].append({"machine_id": case.machine_id, "view": case.view,
                               "ms": 1000 * seconds, **score(scene, box)})  # fmt: skip
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    share = np.array([r["share"] for r in rows])
    labels = np.array([r["label_px"] for r in rows])
    return {
        "images": len(rows),
        "share_mean": float(share.mean()),
        "share_worst": float(share.min()),
        "area_ratio_mean": float(np.mean([r["area_ratio"] for r in rows])),
        "images_with_label_px": int((labels > 0).sum()),
        "label_px_total": float(labels.sum()),
        "ms_per_image": float(np.mean([r["ms"] for r in rows])),
    }


def meets_goals(s: dict[str, float]) -> bool:
    return (
        s["share_mean"] >= 0.999
        and s["share_worst"] >= 0.99
        and s["area_ratio_mean"] <= 1.10
        and s["images_with_label_px"] == 0
    )


def print_table(results: dict[str, dict[str, float]]) -> None:
    print(f"{'method':<20} {'breast in box mean':>18} {'worst':>8} {'area/true':>10} "
          f"{'imgs w/ label px':>16} {'ms/img':>7}  goals")  # fmt: skip
    for name, s in results.items():
        print(
            f"{name:<20} {100 * s['share_mean']:>17.3f}% {100 * s['share_worst']:>7.2f}% "
            f"{s['area_ratio_mean']:>10.3f} {s['images_with_label_px']:>16d} "
            f"{s['ms_per_image']:>7.1f}  {'met' if meets_goals(s) else 'not met'}"
        )


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.errors import InputError

    if args.images < 10:
        raise InputError(f"--images must be at least 10, got {args.images}")
    start = time.perf_counter()
    rows = measure(args)
    results = {name: summary(r) for name, r in rows.items()}
    print(f"{args.images} generated images, --scale {args.scale}, every machine profile")
    print_table(results)
    worst = min(rows["segment (now)"], key=lambda r: r["share"])
    print(f"segment's worst image: machine {worst['machine_id']} {worst['view']} "
          f"share {100 * worst['share']:.2f}%; {time.perf_counter() - start:.0f} s in all")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"summary": results, "images": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
