"""`rsna compare`: same split for every backbone, ranked outputs with the best marked."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from train_data import make_dataset

from rsna_pkg.errors import InputError
from rsna_pkg.train import compare_command


def test_compare_two_backbones_on_one_split(tmp_path) -> None:
    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=2)
    out = tmp_path / "cmp"
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    args = parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "64", "32",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1",
        "--backbones", "squeezenet1_1,resnet18",
    ])  # fmt: skip
    assert compare_command.run(args) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert sorted(table["backbone"]) == ["resnet18", "squeezenet1_1"]
    assert table["best"].sum() == 1
    assert table.loc[table["best"], "val_auc"].iloc[0] == table["val_auc"].max()
    assert table["params_m"].min() > 0
    md = (out / "comparison.md").read_text()
    assert "(best)" in md and "squeezenet1_1" in md
    assert (out / "comparison.png").stat().st_size > 1000
    a = pd.read_csv(out / "resnet18" / "split.csv")
    b = pd.read_csv(out / "squeezenet1_1" / "split.csv")
    pd.testing.assert_frame_equal(a, b)  # same budget, same split


def test_write_comparison_marks_best_by_key(tmp_path) -> None:
    table = pd.DataFrame({c: [0.0, 0.0] for c in compare_command.COLUMNS})
    table["backbone"] = ["a", "b"]
    table["val_auc"] = [0.7, 0.9]
    table["val_pf1_best"] = [0.6, 0.2]
    assert compare_command.write_comparison(tmp_path, table, "val_auc") == "b"
    assert compare_command.write_comparison(tmp_path, table, "val_pf1_best") == "a"
    assert pd.read_csv(tmp_path / "comparison.csv")["backbone"].tolist() == ["a", "b"]


def test_backbone_list_is_checked() -> None:
    assert compare_command.parse_backbones(" vgg11, resnet18 ") == ["vgg11", "resnet18"]
    with pytest.raises(InputError):
        compare_command.parse_backbones(",")
    with pytest.raises(InputError, match="twice"):
        compare_command.parse_backbones("vgg11,vgg11")
