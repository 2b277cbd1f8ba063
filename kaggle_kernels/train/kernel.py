"""Kaggle kernel: train on the preprocess kernel's PNGs from the ImageNet weights dataset;
writes /kaggle/working/model.pt.

Installs rsna_pkg offline from the wheel dataset, then calls the library; extra arguments
come from $RSNA_TRAIN_ARGS when set (the local replay's small sizes).
"""

import json

# >>> bootstrap: copied from rsna_pkg/kaggle/bootstrap.py by `rsna kaggle render`; edit there.
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

KAGGLE = Path(os.environ.get("KAGGLE_ROOT", "/kaggle"))
INPUT, WORKING = KAGGLE / "input", KAGGLE / "working"


def find_input(pattern: str) -> Path:
    """The folder under /kaggle/input holding a file matching ``pattern``, whatever the mount
    layout: input/<slug>/, input/competitions/<slug>/, input/datasets/<owner>/<slug>/."""
    for depth in range(1, 5):
        hits = sorted(INPUT.glob("*/" * depth + pattern))
        if hits:
            return hits[0].parent
    raise SystemExit(f"no {pattern} under {INPUT}")


def settings(name: str, default: str) -> list[str]:
    """Extra CLI arguments: $RSNA_<NAME>_ARGS if set (the replay's small sizes), else ``default``."""
    return shlex.split(os.environ.get(f"RSNA_{name.upper()}_ARGS", default))


def install(gpu: bool = False) -> None:
    """pip install rsna_pkg offline from the wheel dataset, exactly as a Kaggle rerun must;
    with ``gpu`` also the GPU decoder the dataset bundles: DALI, else nvImageCodec."""
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

install()
data = find_input("train.csv")
images = find_input("manifest.csv")
# ImageNet weights dataset: <timm name>.safetensors per backbone; the checkpoint records
# the file's name and sha256, so inference needs no weights dataset.
weights = find_input("weights.json")
# Train at the size the preprocess kernel wrote (recorded beside its PNGs).
pre = json.loads((images / "preprocess_config.json").read_text())
size = [str(pre["height"]), str(pre["width"])]
# The best measured recipe: efficientnet_lite0 from ImageNet, fully fine-tuned (issue 21).
recipe = "--backbone timm:efficientnet_lite0 --freeze none --epochs 12 --workers 4"
args = settings("train", recipe)
paths = ["--data", str(data), "--images", str(images), "--out", str(WORKING)]
rsna("train", *paths, "--size", *size, "--pretrained-dir", str(weights), *args)
