"""`rsna compare`: same split for every backbone, ranked outputs with the best marked."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest
from train_data import make_dataset

from rsna_pkg.errors import InputError
from rsna_pkg.train import compare_command


def run_compare(tmp_path: Path, name: str, backbones: str) -> tuple[Path, Path, Path]:
    """`rsna compare` of BACKBONES for one tiny epoch on a tiny dataset: (data, images, out)."""
    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=2)
    out = tmp_path / name
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    args = parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "64", "32",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1",
        "--backbones", backbones,
    ])  # fmt: skip
    assert compare_command.run(args) == 0
    return data, images, out


def test_compare_two_backbones_on_one_split(tmp_path) -> None:
    _, _, out = run_compare(tmp_path, "cmp", "squeezenet1_1,resnet18")
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


def test_seed_study_vgg11_variants_report_overfitting_columns(tmp_path) -> None:
    data, images, out = run_compare(
        tmp_path, "study", "squeezenet1_1,vgg11@classifier,vgg11@features"
    )
    table = pd.read_csv(out / "comparison.csv").set_index("backbone")
    assert sorted(table.index) == ["squeezenet1_1", "vgg11@classifier", "vgg11@features"]
    assert table.loc["vgg11@classifier", "freeze"] == "classifier"
    assert table.loc["vgg11@features", "freeze"] == "features"
    assert (table["weights"] == "random").all() and table["metadata"].all()
    # classifier: only the fusion head trains; features: vgg11's FC layers too (~119M)
    assert table.loc["vgg11@classifier", "trainable_m"] < 0.1
    assert table.loc["vgg11@features", "trainable_m"] > 100
    assert table.loc["squeezenet1_1", "trainable_m"] == table.loc["squeezenet1_1", "params_m"]
    assert table["train_auc"].between(0, 1).all() and table["train_loss"].gt(0).all()
    assert (table["auc_gap"] - (table["train_auc"] - table["val_auc"])).abs().max() < 1e-9
    md = (out / "comparison.md").read_text()
    assert "vgg11@classifier, vgg11@features: no pretrained file" in md
    assert (out / "comparison.png").stat().st_size > 1000
    assert (out / "vgg11@classifier" / "model.pt").is_file()
    # train_auc is the inference path's AUC on the training patients of the split
    assert table.loc["squeezenet1_1", "train_auc"] == pytest.approx(
        _inference_auc(out / "squeezenet1_1", data, images, "train"), abs=1e-6
    )


def _inference_auc(run, data, images, side: str) -> float:
    import torch

    from rsna_pkg.data.dataset import load_image_table, read_png
    from rsna_pkg.metrics import aggregate_per_breast, roc_auc
    from rsna_pkg.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(run / "model.pt")
    split = pd.read_csv(run / "split.csv")
    table = load_image_table(data, images)
    rows = table[table["patient_id"].isin(split.loc[split["split"] == side, "patient_id"])]
    x = torch.stack([loaded.image_tensor(read_png(p)) for p in rows["path"]])
    probs = torch.sigmoid(loaded.forward(x, loaded.encode_metadata(rows))).numpy()
    breast = aggregate_per_breast(rows["prediction_id"], probs)
    labels = rows.groupby("prediction_id", sort=False)["cancer"].max().reindex(breast.index)
    return roc_auc(labels, breast)


def test_variants_resolve_freeze_weights_and_study_preset(tmp_path) -> None:
    from rsna_pkg.train.study import STUDIES, resolve_variants, split_name

    assert split_name("vgg11@classifier") == ("vgg11", "classifier")
    assert split_name("timm:convnext_small") == ("timm:convnext_small", None)
    with pytest.raises(InputError, match="freeze mode"):
        split_name("vgg11@everything")
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "vgg11.pth").write_bytes(b"")
    (weights / "convnext_small.safetensors").write_bytes(b"")
    got = resolve_variants([*STUDIES["notebooks"], "timm:convnext_small"], "auto", None, weights)
    by_name = {v.name: v for v in got}
    # with a file, auto freezes features: plain vgg11 is the same run as vgg11@features
    assert "vgg11" not in by_name and by_name["vgg11@features"].freeze == "features"
    assert by_name["vgg11@classifier"].pretrained == str(weights / "vgg11.pth")
    assert by_name["timm:convnext_small"].pretrained == str(weights / "convnext_small.safetensors")
    assert by_name["timm:convnext_small"].folder == "timm_convnext_small"
    assert (by_name["resnet50"].freeze, by_name["resnet50"].pretrained) == ("none", None)
    plain = resolve_variants(list(STUDIES["notebooks"]), "auto", None, None)
    assert [v.name for v in plain] == list(STUDIES["notebooks"])  # nothing merged without weights
    assert [v.freeze for v in plain][-3:] == ["none", "classifier", "features"]


def test_bench_compare_prints_the_table_and_writes_json(tmp_path, capsys) -> None:
    import json

    from rsna_pkg.cli import main

    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=2)
    out, report = tmp_path / "bench", tmp_path / "compare.json"
    code = main(["bench", "compare", "--data", str(data), "--images", str(images),
                 "--out", str(out), "--size", "64", "32", "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--threads", "1", "--backbones", "squeezenet1_1",
                 "--json", str(report)])  # fmt: skip
    assert code == 0
    result = json.loads(report.read_text())
    assert result["size"] == "64x32" and result["seconds"] > 0
    assert [r["backbone"] for r in result["rows"]] == ["squeezenet1_1"]
    printed = capsys.readouterr().out
    assert "| **squeezenet1_1** (best) |" in printed and "study wall time" in printed


def test_compare_needs_a_list_or_a_study(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    base = ["--data", str(tmp_path), "--images", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(InputError, match="--study"):
        compare_command.run(parser.parse_args(base))
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--study", "notebooks", "--backbones", "vgg11"])
    with pytest.raises(InputError, match="cannot take 64x32"):
        compare_command.run(
            parser.parse_args([*base, "--study", "notebooks", "--size", "64", "32"])
        )


def test_the_old_study_name_still_works(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """--study seed (read like --seed's value) became --study notebooks; the old name runs
    the same list, with a note."""
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    base = ["--data", str(tmp_path), "--images", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(InputError, match="alexnet cannot take 64x32"):  # the same first check
        compare_command.run(parser.parse_args([*base, "--study", "seed", "--size", "64", "32"]))
    assert "--study seed is now --study notebooks" in capsys.readouterr().err


def test_wrong_file_in_pretrained_dir_fails_before_any_training(tmp_path) -> None:
    import torch
    import torchvision.models as tvm

    data, images = make_dataset(tmp_path, patients=8, size=(64, 32), seed=2)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(tvm.resnet18(weights=None).state_dict(), weights / "squeezenet1_1.pth")
    out = tmp_path / "cmp"
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    args = parser.parse_args([
        "--data", str(data), "--images", str(images), "--out", str(out), "--size", "64", "32",
        "--backbones", "resnet18,squeezenet1_1", "--pretrained-dir", str(weights),
    ])  # fmt: skip
    with pytest.raises(InputError, match="squeezenet1_1.pth: does not match"):
        compare_command.run(args)
    assert not (out / "resnet18").exists()
