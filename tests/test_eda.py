"""Tests of rsna eda: metadata numbers on hand-made tables, report rendering, bad
input, and one end-to-end run on the synthetic dataset with two broken DICOMs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from rsna_pkg.data.schema import TRAIN_COLUMNS, image_path
from rsna_pkg.eda import EdaConfig, metadata, run_eda
from rsna_pkg.eda.report import Heading, Image, Table, Text, to_html, to_markdown
from rsna_pkg.errors import InputError


def tiny_train() -> pd.DataFrame:
    """Three patients, seven images, one cancer breast, known gaps."""
    rows = [
        # site, pid, iid, lat, view, age, cancer, biopsy, inv, BIRADS, implant, density, machine
        (1, 10, 100, "L", "CC", 45.0, 1, 1, 1, np.nan, 0, "B", 49),
        (1, 10, 101, "L", "MLO", 45.0, 1, 1, 1, np.nan, 0, "B", 49),
        (1, 10, 102, "R", "CC", 45.0, 0, 0, 0, 1.0, 0, "B", 49),
        (2, 20, 200, "L", "CC", 63.0, 0, 0, 0, 2.0, 1, np.nan, 21),
        (2, 20, 201, "R", "MLO", 63.0, 0, 0, 0, np.nan, 1, np.nan, 21),
        (2, 30, 300, "R", "CC", np.nan, 1, 0, 0, 0.0, 0, "D", 21),
        (2, 30, 300, "R", "MLO", np.nan, 0, 0, 0, 0.0, 0, "D", 21),
    ]
    cols = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy",
            "invasive", "BIRADS", "implant", "density", "machine_id"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    df["difficult_negative_case"] = False
    return df[list(TRAIN_COLUMNS)]


def test_counts_and_class_balance() -> None:
    df = metadata.with_keys(tiny_train())
    assert metadata.dataset_counts(df) == {"images": 7, "patients": 3, "breasts": 5}
    bal = metadata.class_balance(df)
    assert (bal["image"]["positive"], bal["image"]["n"]) == (3, 7)
    assert (bal["breast"]["positive"], bal["breast"]["n"]) == (2, 5)  # 10_L and 30_R
    assert (bal["patient"]["positive"], bal["patient"]["n"]) == (2, 3)
    assert bal["patient"]["rate"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        # value -> (images, cancer, breasts, cancer_breasts)
        ("machine_id", {"21": (4, 1, 3, 1), "49": (3, 2, 2, 1)}),
        ("density", {"B": (3, 2, 2, 1), "D": (2, 1, 1, 1), "missing": (2, 0, 2, 0)}),
        ("BIRADS", {"0": (2, 1, 1, 1), "1": (1, 0, 1, 0), "2": (1, 0, 1, 0), "missing": (3, 2, 2, 1)}),
        ("age_band", {"40-49": (3, 2, 2, 1), "60-69": (2, 0, 2, 0), "missing": (2, 1, 1, 1)}),
        ("implant", {"0": (5, 3, 3, 2), "1": (2, 0, 2, 0)}),
    ],
)
def test_rate_by_keeps_missing_and_counts_breasts(column: str, expected: dict) -> None:
    table = metadata.rate_by(metadata.with_keys(tiny_train()), column)
    got = {
        r["value"]: (r["images"], r["cancer"], r["breasts"], r["cancer_breasts"])
        for r in table.to_dict(orient="records")
    }
    assert got == expected
    assert np.allclose(table["rate"], table["cancer"] / table["images"])
    assert list(table["value"])[-1] == "missing" or "missing" not in got


def test_missing_and_images_per_patient() -> None:
    df = tiny_train()
    miss = metadata.missing_values(df)
    assert miss["age"] == 2 and miss["BIRADS"] == 3 and miss["density"] == 2
    assert miss["cancer"] == 0 and set(miss) == set(TRAIN_COLUMNS)
    ipp = metadata.images_per_patient(df)
    assert ipp["histogram"] == {"2": 2, "3": 1}
    assert ipp["max"] == 3


def test_consistency_checks_list_every_problem(tmp_path: Path) -> None:
    df = tiny_train()
    for p, i in zip(df["patient_id"], df["image_id"], strict=True):
        if i != 201:  # 201 referenced but absent
            path = image_path(tmp_path, "train", p, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    stray = image_path(tmp_path, "train", 20, 999)  # on disk, in no row
    stray.write_bytes(b"x")
    checks = metadata.consistency_checks(df, tmp_path, "train")
    assert checks["cancer_without_biopsy"]["ids"] == [300]
    assert checks["duplicate_image_id"]["ids"] == [300]
    assert checks["missing_on_disk"]["ids"] == [201]
    assert checks["not_in_csv"]["ids"] == ["999"]
    assert checks["invasive_without_cancer"]["count"] == 0


def test_missing_column_stops_with_input_error(tmp_path: Path) -> None:
    tiny_train().drop(columns=["machine_id"]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(InputError, match="machine_id"):
        run_eda(EdaConfig(tmp_path, tmp_path / "out", progress=False))


def test_report_renders_markdown_and_self_contained_html(tmp_path: Path) -> None:
    png = tmp_path / "figures" / "a.png"
    png.parent.mkdir()
    PILImage.new("L", (4, 4), 128).save(png)
    blocks = [Heading("H"), Text("a|b <c>"), Table(("x", "y"), (("1", "2"),)),
              Image("figures/a.png", "cap")]  # fmt: skip
    md = to_markdown("T", blocks)
    assert "![cap](figures/a.png)" in md and "| 1 | 2 |" in md
    html = to_html("T", blocks, tmp_path)
    assert "data:image/png;base64," in html and "&lt;c&gt;" in html
    assert "figures/a.png" not in html  # embedded, not linked
