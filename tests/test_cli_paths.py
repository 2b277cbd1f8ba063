"""Every path option accepts a relative path, resolved once at the CLI edge against the cwd the
user typed it in (a relative --work once broke the replay: kernels run in another folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import pytest

from rsna_pkg.cli import absolute_paths, main

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_absolute_paths_resolves_paths_and_lists_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(
        out=Path("a/../b"), models=[Path("m1.pt"), Path("/abs/m2.pt")], size=[64, 32], name="x"
    )
    absolute_paths(args)
    assert args.out == tmp_path / "b"
    assert args.models == [tmp_path / "m1.pt", Path("/abs/m2.pt")]
    assert args.size == [64, 32] and args.name == "x"


@pytest.mark.slow
def test_every_subcommand_takes_relative_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RSNA_KAGGLE_OWNER", raising=False)
    assert main(["synth", "data", "--patients", "12", "--seed", "4"]) == 0
    assert main(["preprocess", "--data", "data", "--out", "imgs", "--size", "64", "32",
                 "--quiet", "--preview", "0"]) == 0  # fmt: skip
    assert main(["train", "--data", "data", "--images", "imgs", "--out", "model",
                 "--size", "64", "32", "--backbone", "resnet18", "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu",
                 "--val-frac", "0.3"]) == 0  # fmt: skip
    assert main(["infer", "--data", "data", "--model", "model/model.pt", "--out",
                 "sub/submission.csv", "--device", "cpu", "--report", "sub/report.json"]) == 0  # fmt: skip
    assert main(["eda", "--data", "data", "--out", "eda", "--sample", "1",
                 "--max-headers", "10", "--no-progress"]) == 0  # fmt: skip
    assert main(["kaggle", "build-dataset", "wheels", "--no-dali", "--python", PY]) == 0
    assert main(["replicate", "--work", "replay", "--data", "data", "--kernels", "eda",
                 "--no-dali", "--set", "eda=--sample 1 --max-headers 10 --workers 1 --no-progress"
                 ]) == 0  # fmt: skip
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    sub = pd.read_csv(tmp_path / "sub" / "submission.csv")
    assert sorted(sub["prediction_id"]) == sorted(set(test["prediction_id"]))
    assert (tmp_path / "imgs" / "manifest.csv").is_file()
    assert (tmp_path / "model" / "model.pt").is_file()
    assert (tmp_path / "eda" / "report.md").is_file()
    assert any((tmp_path / "wheels").glob("rsna_pkg-*.whl"))
    assert (tmp_path / "replay" / "kernels" / "eda" / "log.txt").is_file()
    assert (tmp_path / "replay" / "replay.json").is_file()
