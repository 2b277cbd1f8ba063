"""The benchmarks live outside the wheel but run through `rsna bench` and time the real code."""

from __future__ import annotations

import json
import os
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


def test_bench_ablation_trains_each_variant_on_one_split(tmp_path: Path) -> None:
    """Each row is a real `rsna train` run: the baseline and each change, the same split;
    the +2x row reads the images preprocessed at twice the size."""
    from train_data import make_dataset

    data, images = make_dataset(tmp_path / "low", patients=8, size=(32, 32), seed=0)
    _, images_2x = make_dataset(tmp_path / "high", patients=8, size=(64, 64), seed=0)
    out = tmp_path / "ablation"
    code = main(["bench", "ablation", "--data", str(data), "--images", str(images), "--size",
                 "32", "32", "--images-2x", str(images_2x), "--out", str(out), "--json",
                 str(tmp_path / "a.json"), "--common",
                 "--epochs 1 --batch-size 8 --workers 0 --threads 1 --no-augment"])  # fmt: skip
    assert code == 0
    rows = json.loads((tmp_path / "a.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == [
        "baseline",
        "+aux heads",
        "+balanced sampler",
        "+2x resolution",
    ]
    assert all(0 <= r["val_auc"] <= 1 and r["seconds"] > 0 for r in rows)
    folders = ("baseline", "aux_heads", "balanced_sampler", "2x_resolution")
    configs = {r["variant"]: json.loads((out / d / "config.json").read_text())
               for r, d in zip(rows, folders, strict=True)}  # fmt: skip
    assert configs["baseline"]["aux"] == {} and configs["baseline"]["model"]["aux_heads"] == []
    assert len(configs["+aux heads"]["model"]["aux_heads"]) == 5
    assert configs["+balanced sampler"]["balance"] == "batch"
    assert configs["+balanced sampler"]["pos_fraction"] == 0.5  # one positive per negative
    assert configs["+2x resolution"]["model"]["preprocess"]["height"] == 64
    splits = {(out / d / "split.csv").read_text() for d in ("baseline", "2x_resolution")}
    assert len(splits) == 1  # the same patients in validation
    assert "| +2x resolution |" in (out / "ablation.md").read_text()
    # --reuse keeps finished runs of the same configuration and retrains a changed one
    (out / "baseline" / "history.csv").write_text("epoch,elapsed_seconds\n1,123.5\n")
    code = main(["bench", "ablation", "--data", str(data), "--images", str(images), "--size",
                 "32", "32", "--out", str(out), "--json", str(tmp_path / "b.json"), "--reuse",
                 "--variant", "baseline=", "--variant", "+balanced sampler=--balance batch "
                 "--pos-fraction 0.25", "--common",
                 "--epochs 1 --batch-size 8 --workers 0 --threads 1 --no-augment"])  # fmt: skip
    assert code == 0
    again = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(r["reused"], r["seconds"]) for r in again][0] == (True, 123.5)
    table = (out / "ablation.md").read_text()
    assert "| pF1 (probabilities) |" in table
    assert any(line.startswith("| baseline (reused run) |") and line.endswith("| 124 |")
               for line in table.splitlines())  # fmt: skip
    assert again[0]["val_auc"] == rows[0]["val_auc"]
    assert again[1]["reused"] is False  # pos-fraction 0.25 is another configuration


def test_bench_ablation_seeds_report_mean_and_sd(tmp_path: Path) -> None:
    """--seeds trains each variant once per seed (each seed its own split), the summary is
    the mean and sample sd of the runs, and --train-auc's score is kept until model.pt
    changes."""
    import statistics

    from train_data import make_dataset

    data, images = make_dataset(tmp_path / "d", patients=8, size=(32, 32), seed=0)
    out = tmp_path / "study"
    argv = ["bench", "ablation", "--data", str(data), "--images", str(images), "--size", "32",
            "32", "--out", str(out), "--json", str(tmp_path / "s.json"), "--seeds", "3,4",
            "--train-auc", "--reuse", "--variant", "baseline=", "--common",
            "--epochs 1 --batch-size 8 --workers 0 --threads 1 --no-augment --seed 9"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    rows, (summary,) = result["rows"], result["summary"]
    assert [(r["variant"], r["seed"]) for r in rows] == [("baseline", 3), ("baseline", 4)]
    seeds = [json.loads((out / "baseline" / f"seed_{s}" / "config.json").read_text())["seed"]
             for s in (3, 4)]  # fmt: skip
    assert seeds == [3, 4]  # the run's seed overrides --common's
    splits = {(out / "baseline" / f"seed_{s}" / "split.csv").read_text() for s in (3, 4)}
    assert len(splits) == 2  # another seed, another split
    aucs = [r["val_auc"] for r in rows]
    assert summary["val_auc"] == pytest.approx(statistics.fmean(aucs))
    assert summary["val_auc_sd"] == pytest.approx(statistics.stdev(aucs))
    assert all(0 <= r["train_auc"] <= 1 for r in rows)
    assert rows[0]["auc_gap"] == pytest.approx(rows[0]["train_auc"] - rows[0]["val_auc"])
    assert summary["seeds"] == [3, 4] and len(summary["best_epochs"]) == 2
    table = (out / "ablation.md").read_text()
    assert "| train - val AUC |" in table
    assert f"| baseline | {summary['val_auc']:.3f} +- {summary['val_auc_sd']:.3f} |" in table
    # the cached train score is read back while model.pt is unchanged, and redone after
    cache = out / "baseline" / "seed_3" / "train_side.json"
    saved = json.loads(cache.read_text())
    cache.write_text(json.dumps({**saved, "train_auc": 0.25}))
    assert main(argv) == 0
    again = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["reused"] for r in again] == [True, True] and again[0]["train_auc"] == 0.25
    model = out / "baseline" / "seed_3" / "model.pt"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    assert main(argv) == 0
    third = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert third[0]["train_auc"] == pytest.approx(rows[0]["train_auc"])
    # --finished-only trains nothing: seed 5 is listed as missing, the others are the table
    argv[argv.index("3,4")] = "3,4,5"
    assert main([*argv, "--finished-only"]) == 0
    partial = json.loads((tmp_path / "s.json").read_text())
    assert partial["missing"] == ["baseline seed 5"] and not (out / "baseline" / "seed_5").exists()
    assert [r["seed"] for r in partial["rows"]] == [3, 4]
    table = (out / "ablation.md").read_text()
    assert "Not run yet (1): baseline seed 5" in table
    assert f"| 3 ({rows[0]['best_epoch']}), 4 ({rows[1]['best_epoch']}) |" in table


def test_bench_roi_prints_both_crops_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture
                                                   ) -> None:  # fmt: skip
    """20 generated images, every machine twice: the segmentation meets the crop goals, the
    earlier threshold crop (kept for old checkpoints) does not: the table tells them apart."""
    out = tmp_path / "roi.json"
    assert main(["bench", "roi", "--images", "20", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    now, before = result["summary"]["segment (now)"], result["summary"]["threshold (before)"]
    assert now["images"] == before["images"] == 20
    assert now["share_mean"] >= 0.999 and now["share_worst"] >= 0.99
    assert now["area_ratio_mean"] <= 1.10 and now["images_with_label_px"] == 0
    assert before["area_ratio_mean"] > 1.10 or before["images_with_label_px"] > 0
    assert {r["machine_id"] for r in result["images"]["segment (now)"]} == {
        49,
        93,
        170,
        190,
        197,
        210,
        216,
        21,
        29,
        48,
    }
    printed = capsys.readouterr().out
    assert "threshold (before)" in printed and "segment (now)" in printed and " met" in printed


def test_bench_ablation_one_run_reports_no_spread() -> None:
    """A variant with one finished seed has no sd: the table gives its mean alone and the
    JSON null, not a ``+- 0.000`` that reads as three identical runs."""
    from benchmarks.ablation import format_seed_table, summarise

    rows = [{"variant": "a", "options": "", "seed": 1, "best_epoch": 4, "val_auc": 0.6,
             "val_pf1_best": 0.5, "seconds": 10.0},
            {"variant": "b", "options": "", "seed": 1, "best_epoch": 2, "val_auc": 0.7,
             "val_pf1_best": 0.6, "seconds": 10.0},
            {"variant": "b", "options": "", "seed": 2, "best_epoch": 3, "val_auc": 0.8,
             "val_pf1_best": 0.6, "seconds": 12.0}]  # fmt: skip
    one, two = summarise(rows)
    assert one["val_auc"] == 0.6 and one["val_auc_sd"] is None
    assert two["val_auc_sd"] == pytest.approx(0.0707107)
    table = format_seed_table([one, two], "--epochs 1", [1, 2])
    assert "| a | 0.600 | 0.500 | 1 (4) |" in table
    assert "| b | 0.750 +- 0.071 | 0.600 +- 0.000 | 1 (2), 2 (3) |" in table
