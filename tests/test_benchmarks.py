"""The benchmarks live outside the wheel but run through `rsna bench` and time the real code."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from rsna_pkg.cli import main


def test_bench_train_times_the_real_trainer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.json"
    code = main(["bench", "train", "--size", "64", "32", "--batch-size", "4", "--batches", "2",
                 "--workers", "0", "--accumulate", "2", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["step_images_per_s"] > 0 and result["loader_images_per_s"] > 0
    assert result["accumulate"] == 2 and result["amp"] is False  # AMP is CUDA-only
    assert "step_images_per_s" in capsys.readouterr().out


def test_benchmarks_are_not_in_the_wheel(tmp_path: Path) -> None:
    """Built as the wheel dataset builds it; a stale build/lib must not leak into it."""
    from rsna_pkg.kaggle.build import build_own_wheel

    repo = Path(__file__).resolve().parents[1]
    wheel = build_own_wheel(repo, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "bench" in n and n != "rsna_pkg/bench_command.py"]
    assert not [n for n in names if n.startswith("benchmarks/")]
