"""End-to-end replay of the four Kaggle kernels on a tiny synthetic dataset (CI runs it
without DALI). Slow: about a minute or two on 2 cores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rsna_pkg.kaggle.build import BuildOptions
from rsna_pkg.kaggle.paths import KERNEL_ORDER, find_repo, load_config
from rsna_pkg.kaggle.replay import SMALL_SETTINGS, ReplayOptions, check_submission, replay
from rsna_pkg.models.checkpoint import read_checkpoint

REPO = find_repo(Path(__file__).parent)
TINY = {
    **SMALL_SETTINGS,
    "eda": "--sample 1 --max-headers 20 --workers 1 --no-progress",
    "preprocess": "--size 128 64 --workers 2 --quiet",
    # two folds: the inference kernel must find and ensemble a K-fold output
    "train": "--backbone timm:efficientnet_lite0 --freeze none --epochs 1 --batch-size 16 "
    "--workers 0 --threads 2 --device cpu --folds 2",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replayed(synth_data: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("replay") / "work"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    opts = ReplayOptions(
        work=work, data=synth_data, settings=TINY, build=BuildOptions(python=py, decoder="cpu")
    )
    return replay(REPO, load_config(REPO), opts)


def test_replay_runs_every_kernel_and_writes_a_valid_submission(replayed, synth_data) -> None:
    assert [r.name for r in replayed.runs] == list(KERNEL_ORDER)
    assert replayed.submission is not None
    assert check_submission(replayed.submission, synth_data / "test.csv") == []
    for run in replayed.runs:
        print(f"replay kernel {run.name}: {run.seconds:.1f} s")
    report = json.loads((replayed.work / "replay.json").read_text())
    assert [k["name"] for k in report["kernels"]] == list(KERNEL_ORDER)


def test_kernels_installed_offline_and_chained(replayed) -> None:
    runs = {r.name: r for r in replayed.runs}
    train_out = runs["train"].working
    assert (train_out / "oof.csv").is_file()
    assert sorted(train_out.glob("fold_*/model.pt")) == [
        train_out / "fold_0" / "model.pt",
        train_out / "fold_1" / "model.pt",
    ]
    # the inference kernel passed the whole K-fold folder: both folds scored the test set
    assert "2 checkpoint(s): fold_0/model.pt, fold_1/model.pt" in runs["inference"].log.read_text()
    train_input = runs["train"].working.parent / "input"
    # kernel_sources mount, in the default (2026) layout
    assert (train_input / "notebooks" / "rsna-pkg" / "rsna-pkg-preprocess").is_symlink()
    # every fold started from the weights dataset's ImageNet file, and says so; inference
    # scores from the checkpoints alone, with no weights dataset mounted
    assert (train_input / "datasets/rsna-pkg/rsna-pkg-weights/weights.json").is_file()
    for fold in sorted(train_out.glob("fold_*/model.pt")):
        origin = read_checkpoint(fold)["model"]["init_weights"]
        assert origin["file"] == "efficientnet_lite0.safetensors", fold
    inference_input = runs["inference"].working.parent / "input"
    assert (train_input / "datasets/rsna-pkg/rsna-pkg-weights").is_symlink()
    assert not any(p.name == "rsna-pkg-weights" for p in inference_input.rglob("*"))
    for run in replayed.runs:
        log = run.log.read_text()
        assert "+ rsna" in log
        assert "Downloading" not in log  # pip found everything in the wheel dataset


def test_kernel_writing_into_input_fails(replayed, tmp_path: Path) -> None:
    """A kernel may not change /kaggle/input (root ignores chmod, so the replay compares)."""
    from rsna_pkg.errors import RsnaError
    from rsna_pkg.kaggle.replay import run_kernel

    bad = tmp_path / "repo"
    (bad / "kaggle_kernels" / "eda").mkdir(parents=True)
    meta = json.loads((REPO / "kaggle_kernels/eda/kernel-metadata.json").read_text())
    (bad / "kaggle_kernels/eda/kernel-metadata.json").write_text(json.dumps(meta))
    (bad / "kaggle_kernels/eda/kernel.py").write_text(
        "import os, pathlib\n"
        "root = pathlib.Path(os.environ['KAGGLE_ROOT'], 'input')\n"
        "next(root.glob('*/*/train.csv')).parent.joinpath('oops.txt').write_text('x')\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x\n")
    cfg = load_config(REPO)
    opts = ReplayOptions(work=tmp_path / "work")
    mounts = {"competition": data, f"dataset:{cfg.datasets['wheels'].slug}": tmp_path}
    venv = replayed.image
    with pytest.raises(RsnaError, match="changed its read-only input"):
        run_kernel(bad, cfg, "eda", opts, venv, mounts)
