"""Write a whole synthetic dataset in the competition's layout.

The folder is built under a temporary sibling and renamed into place at the end, so a
crash never leaves something that looks complete; a marker file identifies our output,
which is the only kind of non-empty folder ``generate`` agrees to replace.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_pkg.config_fields import check_fields, option
from rsna_pkg.data.schema import IMAGE_DIRS
from rsna_pkg.data.synth.artefacts import ARTEFACT_RATES
from rsna_pkg.data.synth.findings import REAL_BREAST_RATE, Difficulty, Finding, visible_in
from rsna_pkg.data.synth.machines import MACHINES, Scale
from rsna_pkg.data.synth.phantom import render_scene
from rsna_pkg.data.synth.tables import (
    Lesion,
    Patient,
    image_seed,
    plan_patients,
    test_solution,
    test_table,
    train_table,
)
from rsna_pkg.data.synth.writer import (
    ImageIds,
    build_dataset,
    encode_frame,
    to_stored,
    voi_for,
    write_dicom,
)
from rsna_pkg.errors import InputError

MARKER_FILE = "rsna_synth.json"
BREAST_BOXES_FILE = "breast_boxes.csv"
DEFAULT_CANCER_RATE = {"small": 0.2, "full": 0.02}


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of ``rsna synth`` (its options are these fields: ``cli_options``);
    ``cancer_rate=None`` picks the default: the real set's rate for
    ``difficulty="realistic"``, the scale's for ``easy``. Validated on construction."""

    patients: int = option(40, help="number of patients (>= 2)", bounds=(2, 10_000_000),
                           required=True)  # fmt: skip
    seed: int = option(0, help="random seed", bounds=(0, 2**32 - 1))
    scale: Scale = option("small", help="small: 512-800 px images; full: the vendors' real sizes")
    cancer_rate: float | None = option(
        None, bounds=(0, 1),
        help="fraction of positive breasts (default: easy 0.2 small, 0.02 full; realistic "
        "0.0206, the real set's)",
    )  # fmt: skip
    workers: int = option(1, help="processes rendering images (capped at the usable cores)",
                          bounds=(1, 1_000_000))  # fmt: skip
    test_frac: float = option(0.1, help="share of patients in test (>= 1 patient)",
                              bounds=(0, 1), hi_open=True)  # fmt: skip
    progress: bool = option(False, cli=False, help="draw a progress bar")
    difficulty: Difficulty = option(
        "easy", help="easy: large clear lesions; realistic: mm-sized findings, real rates, "
        "label noise (docs/SYNTH_DIFFICULTY.md)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_fields(self)

    def resolved_cancer_rate(self) -> float:
        if self.cancer_rate is not None:
            return self.cancer_rate
        if self.difficulty == "realistic":
            return REAL_BREAST_RATE
        return DEFAULT_CANCER_RATE[self.scale]


@dataclass
class SynthSummary:
    out_dir: str
    patients: dict[str, int]
    images: dict[str, int]
    positive_breasts: dict[str, int]
    transfer_syntaxes: dict[str, int] = field(default_factory=dict)
    codecs: dict[str, int] = field(default_factory=dict)
    photometric: dict[str, int] = field(default_factory=dict)
    voi: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0
    replaced: bool = False

    def lines(self) -> list[str]:
        n = sum(self.images.values())
        rate = n / self.seconds if self.seconds else float("nan")
        return [
            f"wrote {self.out_dir}{' (replaced the previous synth output)' if self.replaced else ''}",
            f"patients {self.patients}, images {self.images}, positive breasts {self.positive_breasts}",
            f"codecs {self.codecs}, transfer syntaxes {self.transfer_syntaxes}",
            f"photometric {self.photometric}, VOI {self.voi}",
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({rate:.1f} images/s)",
        ]


@dataclass(frozen=True)
class ImageTask:
    index: int
    rel_path: str
    ids: ImageIds
    machine_id: int
    density: str | None
    implant: bool
    lesion: Lesion | Finding | None
    scale: str
    threads: int


@dataclass(frozen=True)
class ImageResult:
    rel_path: str
    machine_id: int
    bytes: int
    breast_box: tuple[int, int, int, int]  # the true box (y0, x0, y1, x1) in stored pixels


def make_image(task: ImageTask, root: str) -> ImageResult:
    """Render (with the machine's artefacts), encode and write one image."""
    profile = MACHINES[task.machine_id]
    rng = np.random.default_rng(image_seed(task.ids.seed, task.index))
    scene = render_scene(profile.shape(task.scale), task.ids.laterality, task.ids.view,
                         task.density, task.implant, task.lesion, rng,
                         profile.mm_per_pixel(task.scale), ARTEFACT_RATES[task.machine_id])  # fmt: skip
    t = scene.image
    stored = to_stored(t, profile)
    frame = encode_frame(stored, profile, task.threads)
    ds = build_dataset(stored, frame, voi_for(stored, t, profile), task.ids, profile)
    size = write_dicom(Path(root) / task.rel_path, ds)
    return ImageResult(task.rel_path, task.machine_id, size, scene.breast_box())


def breast_box_table(tasks: list[ImageTask], results: list[ImageResult]) -> pd.DataFrame:
    """BREAST_BOXES_FILE: each image's true breast box, kept out of train.csv and test.csv
    (a competitor has no such column) for crop-quality checks."""
    rows = [
        {"patient_id": t.ids.patient_id, "image_id": t.ids.image_id,
         **dict(zip(("box_y0", "box_x0", "box_y1", "box_x1"), r.breast_box, strict=True))}
        for t, r in zip(tasks, results, strict=True)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def image_tasks(patients: list[Patient], cfg: SynthConfig) -> list[ImageTask]:
    threads = max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.scale == "full" else 1
    tasks: list[ImageTask] = []
    for p in patients:
        for image_id, lat, view in p.images:
            rel = f"{IMAGE_DIRS[p.split]}/{p.patient_id}/{image_id}.dcm"
            ids = ImageIds(p.patient_id, image_id, lat, view, cfg.seed)
            lesion = p.breasts[lat].lesion
            if isinstance(lesion, Finding) and not visible_in(lesion, view):
                lesion = None  # label noise: this view does not show the breast's cancer
            tasks.append(ImageTask(len(tasks), rel, ids, p.machine_id, p.density, bool(p.implant),
                                   lesion, cfg.scale, threads))  # fmt: skip
    return tasks


def check_out_dir(out: Path) -> bool:
    """True when ``out`` holds a previous synth output that may be replaced."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: OUT exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_FILE).is_file():
            raise InputError(
                f"{out}: OUT is not empty and is not a previous synth output ({MARKER_FILE} missing)"
            )
        return True
    return False


def _run_tasks(tasks: list[ImageTask], root: Path, cfg: SynthConfig) -> list[ImageResult]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="synth", unit="img", disable=not cfg.progress)
    results = []
    if cfg.workers == 1:
        for task in tasks:
            results.append(make_image(task, str(root)))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cfg.workers, mp_context=ctx) as pool:
            for res in pool.map(make_image, tasks, [str(root)] * len(tasks), chunksize=4):
                results.append(res)
                bar.update()
    bar.close()
    return results


def generate(out_dir: str | Path, cfg: SynthConfig) -> SynthSummary:
    """Write train.csv, test.csv, sample_submission.csv, test_solution.csv, the DICOMs and
    the marker file to ``out_dir``. Deterministic for a given config (worker count aside)."""
    out = Path(out_dir)
    replaced = check_out_dir(out)
    start = time.perf_counter()
    patients = plan_patients(
        cfg.patients, cfg.seed, cfg.resolved_cancer_rate(), cfg.test_frac, cfg.difficulty
    )
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        train, test = train_table(patients), test_table(patients)
        train.to_csv(tmp / "train.csv", index=False)
        test.to_csv(tmp / "test.csv", index=False)
        breasts = train.drop_duplicates(["patient_id", "laterality"])
        prior = round(float(breasts["cancer"].mean()), 4)
        sub_ids = test["prediction_id"].drop_duplicates().tolist()
        pd.DataFrame({"prediction_id": sub_ids, "cancer": prior}).to_csv(
            tmp / "sample_submission.csv", index=False
        )
        test_solution(patients).to_csv(tmp / "test_solution.csv", index=False)
        tasks = image_tasks(patients, cfg)
        results = _run_tasks(tasks, tmp, cfg)
        breast_box_table(tasks, results).to_csv(tmp / BREAST_BOXES_FILE, index=False)
        summary = _summarise(out, patients, results, time.perf_counter() - start, replaced)
        marker = {
            "generator": "rsna_pkg.data.synth",
            "config": asdict(cfg),
            "summary": asdict(summary),
        }
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        if replaced:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            if out.exists():
                out.rmdir()
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _summarise(out: Path, patients: list[Patient], results: list[ImageResult],
               seconds: float, replaced: bool) -> SynthSummary:  # fmt: skip
    machines = Counter(r.machine_id for r in results)
    split_count = Counter(p.split for p in patients)
    image_count = Counter(p.split for p in patients for _ in p.images)
    positives = Counter(p.split for p in patients for b in p.breasts.values() if b.cancer)

    def by(attr: str) -> dict[str, int]:
        c: Counter[str] = Counter()
        for m, n in machines.items():
            c[str(getattr(MACHINES[m], attr))] += n
        return dict(sorted(c.items()))

    return SynthSummary(
        out_dir=str(out), patients=dict(split_count), images=dict(image_count),
        positive_breasts={s: positives.get(s, 0) for s in split_count},
        transfer_syntaxes=by("transfer_syntax"), codecs=by("codec"), photometric=by("photometric"),
        voi=by("voi_kind"), bytes=sum(r.bytes for r in results), seconds=round(seconds, 2), replaced=replaced,
    )  # fmt: skip
