"""Replay the four Kaggle kernels locally, as Kaggle would run them (``rsna replicate``).

Steps: a competition dataset (synthetic by default), the wheel dataset (build.py) for the
interpreter that runs the replay, checked against the image's pins (bundle_check.py), the
ImageNet weights dataset (weights.py, from the installed registry packages), the
Kaggle image built from its manifest and cached (sandbox.py), then each kernel's pushed ``kernel.py`` in its own process
and its own simulated /kaggle: the competition, the datasets and the outputs of the kernels
it names in ``kernel_sources`` mounted under input/, cwd = working/, internet off when its
metadata says so. Small sizes come in through $RSNA_<KERNEL>_ARGS. A kernel that writes
into input/ fails the replay. It ends by checking working/submission.csv against test.csv.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rsna_pkg.config_fields import FieldError, check_fields, option
from rsna_pkg.errors import InputError, RsnaError
from rsna_pkg.kaggle import sandbox
from rsna_pkg.kaggle.build import BuildOptions, build_dataset
from rsna_pkg.kaggle.bundle_check import check_bundle
from rsna_pkg.kaggle.paths import KERNEL_METADATA, KERNEL_ORDER, KaggleConfig, kernel_dir
from rsna_pkg.kaggle.weights import build_weights

log = logging.getLogger(__name__)

MARKER = ".rsna_replay"  # a work folder holding this may be wiped by the next replay

# Sizes that keep a replay on 2 CPU cores to a few minutes; Kaggle runs use the defaults
# written in each kernel.py. Training takes its input size from the preprocess output.
SMALL_SETTINGS: dict[str, str] = {
    "eda": "--sample 2 --max-headers 40 --workers 2 --no-progress",
    "preprocess": "--size 256 128 --workers 2 --quiet",
    "train": "--backbone timm:efficientnet_lite0 --freeze none --balance batch --pos-fraction 0.5 "
    "--epochs 3 --batch-size 16 "
    "--workers 0 --threads 2 --device cpu --val-frac 0.3",
    "inference": "--tta hflip --batch-size 8 --workers 1 --device cpu",
}


# SynthConfig's difficulties, repeated here (not imported: rsna_pkg.data.synth loads the
# DICOM writers, 1.2 s, for `rsna replicate --help`); a test checks the two agree.
Difficulty = Literal["easy", "realistic"]
Layout = Literal["new", "old"]
LAYOUTS: tuple[str, ...] = typing.get_args(Layout)


@dataclass(frozen=True)
class ReplayOptions:
    """Fields made with ``option`` are `rsna replicate`'s options too (``cli_options``)."""

    work: Path
    data: Path | None = None  # a real competition download; None: synthetic
    patients: int = option(60, help="synthetic patients", bounds=(2, 100_000))
    seed: int = option(0, help="synthetic data seed", bounds=(0, 2**32 - 1))
    difficulty: Difficulty = option("easy", help="synthetic difficulty (SynthConfig.difficulty)")
    layout: Layout = option(
        "new",
        help="new: input/competitions/<slug>, input/datasets/<owner>/<slug>, "
        "input/notebooks/<owner>/<slug>; old: input/<slug> (mount_point)",
    )
    kernels: tuple[str, ...] = KERNEL_ORDER
    settings: dict[str, str] = field(default_factory=lambda: dict(SMALL_SETTINGS))
    build: BuildOptions = BuildOptions()  # replicate sets python to the running interpreter's
    timeout: float = option(1800.0, help="seconds per kernel", bounds=(1, 7 * 86400))
    image_cache: Path | None = None  # default ~/.cache/rsna_pkg/kaggle-image

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class KernelRun:
    name: str
    seconds: float
    working: Path
    log: Path


@dataclass
class ReplayResult:
    work: Path
    runs: list[KernelRun]
    seconds: dict[str, float]  # setup steps: data, wheels, image
    submission: Path | None
    breasts: int = 0
    image: Path | None = None  # the cached image venv the kernels were copied from

    def summary(self) -> str:
        lines = [f"replay in {self.work}"]
        lines += [f"  {k:<11} {v:7.1f} s  (setup)" for k, v in self.seconds.items()]
        lines += [f"  {r.name:<11} {r.seconds:7.1f} s  -> {r.working}" for r in self.runs]
        total = sum(self.seconds.values()) + sum(r.seconds for r in self.runs)
        lines.append(f"  {'total':<11} {total:7.1f} s")
        if self.submission:
            lines.append(f"submission OK: {self.submission} ({self.breasts} breasts)")
        return "\n".join(lines)


def prepare_work(work: Path) -> None:
    """Create ``work``; an earlier replay's folder is wiped, any other non-empty one refused."""
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).is_file():
            raise InputError(f"{work}: not empty and not an earlier replay; choose another --work")
        make_writable(work)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("rsna replicate work folder; safe to delete\n")


def replay(repo: Path, cfg: KaggleConfig, opts: ReplayOptions) -> ReplayResult:
    from rsna_pkg.kaggle.check import check_repo

    problems = check_repo(repo, cfg)  # replay only what would pass `kaggle kernels push`
    if problems:
        raise RsnaError("rsna kaggle check failed:\n" + "\n".join(map(str, problems)))
    prepare_work(opts.work)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    data = opts.data or _synthetic(opts.work / "competition", opts)
    if not (data / "test.csv").is_file():
        raise InputError(f"{data}: no test.csv (expected a competition download)")
    seconds["data"] = time.perf_counter() - start
    start = time.perf_counter()
    image = opts.build.image()
    wheels = opts.work / "datasets" / cfg.datasets["wheels"].slug
    log.info(build_dataset(wheels, cfg, opts.build, repo=repo).summary())
    unmet = check_bundle(wheels, image, opts.build.target(image))
    if unmet:
        raise RsnaError(f"{wheels} would not install on the image:\n" + "\n".join(map(str, unmet)))
    seconds["wheels"] = time.perf_counter() - start
    start = time.perf_counter()
    weights = opts.work / "datasets" / cfg.datasets["weights"].slug
    log.info(build_weights(weights, cfg).summary())
    seconds["weights"] = time.perf_counter() - start
    start = time.perf_counter()
    venv = sandbox.make_image_env(image, opts.image_cache)
    seconds["image env"] = time.perf_counter() - start
    mounts = {"competition": data, f"dataset:{cfg.datasets['wheels'].slug}": wheels,
              f"dataset:{cfg.datasets['weights'].slug}": weights}  # fmt: skip
    _read_only([wheels, weights] if opts.data else [wheels, weights, data])
    runs: list[KernelRun] = []
    for name in opts.kernels:
        run = run_kernel(repo, cfg, name, opts, venv, mounts)
        runs.append(run)
        mounts[f"kernel:{cfg.kernels[name].slug}"] = run.working
        _read_only([run.working])
    result = ReplayResult(opts.work, runs, seconds, None, image=venv)
    if "inference" in opts.kernels:
        sub = runs[-1].working / "submission.csv"
        rejected = check_submission(sub, data / "test.csv")
        if rejected:
            raise RsnaError(f"{sub}: " + "; ".join(rejected))
        result.submission, result.breasts = sub, sum(1 for _ in sub.open()) - 1
    (opts.work / "replay.json").write_text(json.dumps(_as_json(result), indent=2))
    return result


def mount_point(kind: str, ref: str, layout: str) -> str:
    """Where Kaggle mounts a source under /kaggle/input: ``new`` is the 2026 layout
    (competitions/<slug>, datasets/<owner>/<slug>, notebooks/<owner>/<slug>), ``old`` the
    flat input/<slug> that some sessions still get."""
    if layout not in LAYOUTS:
        raise FieldError("layout", f"choose from {', '.join(LAYOUTS)}", value=repr(layout))
    if layout == "old":
        return ref.split("/")[-1]
    folder = {"competition": "competitions", "dataset": "datasets", "kernel": "notebooks"}[kind]
    return f"{folder}/{ref}"  # ref: <slug> for a competition, else <owner>/<slug>


def mount(root: Path, cfg: KaggleConfig, mounts: dict[str, Path], meta: dict, layout: str) -> None:
    """Lay out ROOT/input/ for one kernel from its metadata's sources (symlinks)."""
    inp = root / "input"
    links: dict[Path, Path] = {}
    for comp in meta.get("competition_sources", []):
        links[inp / mount_point("competition", comp, layout)] = mounts["competition"]
    for ref in meta.get("dataset_sources", []):
        slug = ref.split("/")[-1]
        if f"dataset:{slug}" not in mounts:
            raise InputError(f"replay: dataset {ref} has no local stand-in")
        links[inp / mount_point("dataset", ref, layout)] = mounts[f"dataset:{slug}"]
    for ref in meta.get("kernel_sources", []):
        slug = ref.split("/")[-1]
        if f"kernel:{slug}" not in mounts:
            raise InputError(f"replay: kernel {ref} must run before this one")
        links[inp / mount_point("kernel", ref, layout)] = mounts[f"kernel:{slug}"]
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)
    (root / "working").mkdir(parents=True)


def run_kernel(
    repo: Path,
    cfg: KaggleConfig,
    name: str,
    opts: ReplayOptions,
    venv: Path,
    mounts: dict[str, Path],
) -> KernelRun:
    """Run one kernel's code file in a fresh image venv and its own /kaggle."""
    folder = kernel_dir(repo, name)
    meta = json.loads((folder / KERNEL_METADATA).read_text())
    base = opts.work / "kernels" / name
    root = base / "kaggle"
    mount(root, cfg, mounts, meta, opts.layout)
    kernel_venv = sandbox.fresh_copy(venv, base / "image")
    env = sandbox.kernel_env(
        kernel_venv,
        root,
        internet=bool(meta.get("enable_internet", True)),
        netblock=kernel_venv.parent / "netblock",
    )
    env[f"RSNA_{name.upper()}_ARGS"] = opts.settings.get(name, "")
    before = {src: _snapshot(src) for src in mounts.values()}
    log_path = base / "log.txt"
    log.info(
        f"== kernel {name}: {folder / meta['code_file']} (internet {meta.get('enable_internet')})"
    )
    start = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(
            [str(sandbox.python(kernel_venv)), str(folder / meta["code_file"])],
            cwd=root / "working", env=env, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            code = -1
        finally:  # timeout or Ctrl-C: stop the kernel and the rsna process it started
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    seconds = time.perf_counter() - start
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
    if code != 0:
        raise RsnaError(
            f"kernel {name} failed (exit {code}) after {seconds:.0f} s; log {log_path}:\n{tail}"
        )
    for src, snap in before.items():
        if _snapshot(src) != snap:
            raise RsnaError(f"kernel {name} changed its read-only input {src}")
    log.info(f"   {name} done in {seconds:.1f} s")
    return KernelRun(name, seconds, root / "working", log_path)


def check_submission(path: Path, test_csv: Path) -> list[str]:
    """What Kaggle's scorer would reject: header, one row per prediction_id it scores (those
    of sample_submission.csv beside test.csv, else test.csv's), values in [0, 1]."""
    import pandas as pd

    if not path.is_file():
        return ["Submission CSV Not Found"]
    sample = test_csv.with_name("sample_submission.csv")
    scored = pd.read_csv(sample if sample.is_file() else test_csv, dtype={"prediction_id": str})
    sub = pd.read_csv(path, dtype={"prediction_id": str})
    problems = []
    if list(sub.columns) != ["prediction_id", "cancer"]:
        problems.append(f"header {list(sub.columns)} is not prediction_id,cancer")
        return problems
    expected = set(scored["prediction_id"].astype(str))
    ids = sub["prediction_id"].astype(str)
    if ids.duplicated().any():
        problems.append(f"duplicated prediction_id {sorted(ids[ids.duplicated()])[:3]}")
    if missing := sorted(expected - set(ids)):
        problems.append(f"missing prediction_id {missing[:3]} ({len(missing)} in all)")
    if extra := sorted(set(ids) - expected):
        problems.append(f"unknown prediction_id {extra[:3]}")
    values = pd.to_numeric(sub["cancer"], errors="coerce")
    if values.isna().any():
        problems.append(f"{int(values.isna().sum())} empty or non-numeric cancer values")
    elif not values.between(0, 1).all():
        problems.append("cancer values outside [0, 1]")
    return problems


def _synthetic(out: Path, opts: ReplayOptions) -> Path:
    from rsna_pkg.data.synth import SynthConfig, generate

    workers = max(1, min(4, os.cpu_count() or 1))
    cfg = SynthConfig(patients=opts.patients, seed=opts.seed, scale="small", workers=workers,
                      difficulty=opts.difficulty)  # fmt: skip
    summary = generate(out, cfg)
    log.info("\n".join(summary.lines()))
    return out


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``root``: root ignores chmod, so compare instead."""
    snap = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            snap[os.path.join(dirpath, f)] = (st.st_size, st.st_mtime_ns)
    return snap


def _read_only(paths: list[Path]) -> None:
    """chmod a-w, as /kaggle/input is mounted (effective for non-root users)."""
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o444)
            os.chmod(dirpath, 0o555)


def make_writable(root: Path) -> None:
    """Undo ``_read_only`` on folders under ``root`` (symlinked mounts are not followed)."""
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)


def _as_json(result: ReplayResult) -> dict:
    return {
        "setup_seconds": result.seconds,
        "kernels": [
            {
                "name": r.name,
                "seconds": round(r.seconds, 1),
                "working": str(r.working),
                "log": str(r.log),
            }
            for r in result.runs
        ],  # fmt: skip
        "submission": str(result.submission) if result.submission else None,
        "breasts": result.breasts,
    }
