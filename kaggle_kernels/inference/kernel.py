"""Kaggle kernel: offline inference on test.csv with the train kernel's output folder (one
model.pt, or the K checkpoints of a `--folds K` run, ensembled); writes
/kaggle/working/submission.csv (internet off, as the competition requires).

Installs rsna_pkg offline from the wheel dataset, then calls the library; extra arguments
come from $RSNA_INFERENCE_ARGS when set (the local replay's small sizes).
"""

# >>> bootstrap: copied from rsna_pkg/kaggle/bootstrap.py by `rsna kaggle render`; edit there.
import fnmatch
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

KAGGLE = Path(os.environ.get("KAGGLE_ROOT", "/kaggle"))
INPUT, WORKING = KAGGLE / "input", KAGGLE / "working"


def find_inputs(pattern: str) -> list[Path]:
    """Every folder under /kaggle/input holding a file matching ``pattern``, at any depth and
    in any mount layout (input/<slug>/, input/competitions/<slug>/,
    input/datasets/<owner>/<slug>/, input/notebooks/<owner>/<slug>/), sorted."""
    found, seen = [], set()
    for folder, dirs, files in os.walk(INPUT, followlinks=True):  # mounts may be symlinks
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walk each folder once
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        if any(fnmatch.fnmatchcase(f, pattern) for f in files):
            found.append(Path(folder))
    return sorted(found)


def find_input(pattern: str) -> Path:
    """The one folder under /kaggle/input holding ``pattern``; two such folders are an error,
    never a guess (a stale output or a second dataset could hold the same file)."""
    found = find_inputs(pattern)
    if not found:
        raise SystemExit(f"no {pattern} under {INPUT}")
    if len(found) > 1:
        raise SystemExit(
            f"{pattern} is in {len(found)} folders under {INPUT}, expected one: "
            + ", ".join(str(f.relative_to(INPUT)) for f in found)
        )
    return found[0]


def find_output(pattern: str, marker: str) -> Path:
    """The folder holding ``marker`` when there is one (a K-fold output: oof.csv beside
    fold_<i>/model.pt), else the one holding ``pattern``; a ``pattern`` match outside the
    chosen folder (a second model source) is an error, never ignored."""
    chosen = find_input(marker) if find_inputs(marker) else find_input(pattern)
    stray = [f for f in find_inputs(pattern) if chosen not in (f, *f.parents)]
    if stray:
        raise SystemExit(
            f"{pattern} is in {chosen.relative_to(INPUT)} and also in "
            + ", ".join(str(f.relative_to(INPUT)) for f in stray)
            + f" under {INPUT}, expected one source"
        )
    return chosen


def settings(name: str, default: str) -> list[str]:
    """Extra CLI arguments: $RSNA_<NAME>_ARGS if set (the replay's small sizes), else ``default``."""
    return shlex.split(os.environ.get(f"RSNA_{name.upper()}_ARGS", default))


def install(gpu: bool = False) -> None:
    """pip install rsna_pkg offline from the wheel dataset, exactly as a Kaggle rerun must;
    with ``gpu`` also the GPU decoder the dataset bundles: DALI, else nvImageCodec. The
    dataset holds wheels for the image's Python and the next; pip takes those whose tags fit."""
    wheels = find_input("rsna_pkg-*.whl")
    extra = ""
    if gpu and any(wheels.glob("nvidia_dali*.whl")):
        extra = "[dali]"
    elif gpu and any(wheels.glob("nvidia_nvimgcodec*.whl")):
        extra = "[nvimgcodec]"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels)]
    start = time.perf_counter()
    subprocess.run([*pip, f"rsna_pkg{extra}"], check=True)
    print(f"installed rsna_pkg{extra} from {wheels} in {time.perf_counter() - start:.1f} s")


def rsna(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    """Run ``python -m rsna_pkg ARGS``; an exit code outside ``ok`` fails the kernel."""
    print("+ rsna", *args, flush=True)
    code = subprocess.run([sys.executable, "-m", "rsna_pkg", *args]).returncode
    if code not in ok:
        raise SystemExit(f"rsna {args[0]} failed with exit code {code}")


# <<< bootstrap

install(gpu=True)
data = find_input("test.csv")
# The train kernel's output (or the model dataset). `rsna infer --model FOLDER` ensembles every
# model.pt under FOLDER, so a K-fold output (fold_<i>/model.pt beside oof.csv) is passed whole.
models = find_output("model.pt", marker="oof.csv")
paths = ["--data", str(data), "--model", str(models), "--out", str(WORKING / "submission.csv")]
# hflip: each image scored as is and mirrored, the two averaged; part of the best measured
# recipe (docs/PRETRAINED_STUDY.md: +0.013 mean breast AUC on validation, +0.006 on the
# held-out test split, at twice the model time).
rsna("infer", *paths, *settings("inference", "--tta hflip"))
