"""Tests of rsna eda: metadata numbers on hand-made tables, report rendering, bad
input, and one end-to-end run on the synthetic dataset with two broken DICOMs."""

from __future__ import annotations

import argparse
import json
import os
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
        (
            "BIRADS",
            {"0": (2, 1, 1, 1), "1": (1, 0, 1, 0), "2": (1, 0, 1, 0), "missing": (3, 2, 2, 1)},
        ),
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


@pytest.mark.parametrize(
    ("rows", "cols", "expected"),
    [(300, 200, 0), (512, 400, 0), (683, 555, 1), (1100, 900, 1), (3000, 2400, 3), (4096, 3328, 3)],
)
def test_gallery_reduce_keeps_the_long_side_at_least_a_tile(
    rows: int, cols: int, expected: int
) -> None:
    from rsna_pkg.eda.galleries import TILE, choose_reduce

    r = choose_reduce(rows, cols)
    assert r == expected
    assert max(rows, cols) / 2**r >= min(TILE, max(rows, cols))


def test_gallery_display_scaling() -> None:
    from rsna_pkg.eda.galleries import to_display

    img = np.arange(2000 * 10, dtype=np.uint16).reshape(2000, 10)
    out = to_display(img, target=512)  # step 4
    assert out.shape == (500, 3) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert not to_display(np.full((4, 4), 7)).any()  # flat image -> black, no NaN


def test_header_cap_is_a_seeded_ordered_subset() -> None:
    from rsna_pkg.eda.build_report import cap_items
    from rsna_pkg.eda.headers import SurveyItem

    items = [SurveyItem(f"{i}.dcm", "train", 1, i, 49) for i in range(50)]
    a = cap_items(items, 7, np.random.default_rng(3))
    b = cap_items(items, 7, np.random.default_rng(3))
    assert a == b and len(a) == 7 and len(set(a)) == 7
    assert [it.image_id for it in a] == sorted(it.image_id for it in a)
    assert cap_items(items, 0, np.random.default_rng(0)) == items
    assert cap_items(items, 80, np.random.default_rng(0)) == items


def test_missing_column_stops_with_input_error(tmp_path: Path) -> None:
    tiny_train().drop(columns=["machine_id"]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(InputError, match="machine_id"):
        run_eda(EdaConfig(tmp_path, tmp_path / "out", progress=False))


def test_cli_reports_the_missing_column_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rsna_pkg.cli import main

    tiny_train().drop(columns=["density"]).to_csv(tmp_path / "train.csv", index=False)
    assert main(["eda", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rsna eda: error:" in err and "density" in err and "train.csv" in err
    assert not (tmp_path / "o" / "report.md").exists()


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


# ---------------------------------------------------------------- end to end on synth_data


def _broken_copy(src: Path, dst: Path) -> dict[int, Path]:
    """Hard-linked copy of the dataset with two train DICOMs replaced: empty and garbage."""
    shutil.copytree(src, dst, copy_function=os.link)
    train = pd.read_csv(dst / "train.csv")
    broken = {}
    for (p, i), content in zip(
        train[["patient_id", "image_id"]].head(2).itertuples(index=False),
        (b"", b"garbage, not a DICOM file " * 40),
        strict=True,
    ):
        path = image_path(dst, "train", int(p), int(i))
        path.unlink()  # break the hard link; the shared fixture stays intact
        path.write_bytes(content)
        broken[int(i)] = path
    return broken


@pytest.fixture(scope="module")
def eda_run(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One ``rsna eda`` run through the command module, with 2 worker processes."""
    from rsna_pkg.eda import command

    root = tmp_path_factory.mktemp("eda")
    data, out = root / "data", root / "out"
    broken = _broken_copy(synth_data, data)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(
        ["--data", str(data), "--out", str(out), "--sample", "2", "--workers", "2",
         "--no-progress"]
    )  # fmt: skip
    assert command.run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    return {"data": data, "out": out, "broken": broken, "summary": summary}


def test_summary_matches_independent_counts(eda_run: dict) -> None:
    train = pd.read_csv(eda_run["data"] / "train.csv")
    meta = eda_run["summary"]["metadata"]["train"]
    breast = train.groupby(["patient_id", "laterality"])["cancer"].max()
    assert meta["counts"] == {
        "images": len(train),
        "patients": train["patient_id"].nunique(),
        "breasts": len(breast),
    }
    bal = meta["class_balance"]
    assert bal["image"]["positive"] == int(train["cancer"].sum())
    assert bal["breast"]["positive"] == int(breast.sum())
    assert bal["patient"]["positive"] == int(train.groupby("patient_id")["cancer"].max().sum())
    assert meta["missing"] == {c: int(n) for c, n in train.isna().sum().items()}
    by_machine = train.groupby("machine_id")["cancer"].agg(["size", "sum"])
    got = {r["value"]: (r["images"], r["cancer"]) for r in meta["rates"]["machine_id"]}
    assert got == {str(m): (int(r["size"]), int(r["sum"])) for m, r in by_machine.iterrows()}
    views = {r["value"]: r["images"] for r in meta["rates"]["view"]}
    assert views == train["view"].value_counts().to_dict()
    test = pd.read_csv(eda_run["data"] / "test.csv")
    assert eda_run["summary"]["metadata"]["test"]["counts"]["images"] == len(test)


def test_header_survey_matches_pydicom_and_lists_broken_files(eda_run: dict) -> None:
    import pydicom

    hdr = eda_run["summary"]["headers"]
    data = eda_run["data"]
    files = sorted(data.glob("*_images/*/*.dcm"))
    assert hdr["files"] == len(files)
    bad = {b["image_id"]: b for b in hdr["unreadable"]}
    assert set(bad) == set(eda_run["broken"])
    assert hdr["readable"] == len(files) - 2
    photometric: dict[str, dict[str, int]] = {}
    machines = pd.concat([pd.read_csv(data / f"{s}.csv") for s in ("train", "test")]).set_index(
        "image_id"
    )["machine_id"]
    for f in files:
        if int(f.stem) in bad:
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        m = str(machines[int(f.stem)])
        counts = photometric.setdefault(m, {})
        counts[ds.PhotometricInterpretation] = counts.get(ds.PhotometricInterpretation, 0) + 1
    assert {m: v["photometric"] for m, v in hdr["by_machine"].items()} == photometric
    mono1 = sum(v.get("MONOCHROME1", 0) for v in photometric.values())
    assert hdr["flags"]["monochrome1"]["count"] == mono1
    report = (eda_run["out"] / "report.md").read_text()
    for path in eda_run["broken"].values():
        assert str(path) in report


def test_every_figure_is_a_png_linked_from_both_reports(eda_run: dict) -> None:
    out, figs = eda_run["out"], eda_run["summary"]["figures"]
    plain = [n for n in figs if not n.startswith("gallery_")]
    assert len(plain) >= 8
    assert {"gallery_healthy", "gallery_cancer"} <= set(figs)
    assert any(n.startswith("gallery_machine_") for n in figs)
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for rec in figs.values():
        with PILImage.open(out / rec["file"]) as im:
            im.verify()
        assert f"]({rec['file']})" in md
    assert html.count("src='data:image/png;base64,") == len(figs)
    assert len(list((out / "figures").glob("*.png"))) == len(figs)
    assert "<img" in html and "src='figures/" not in html


def test_galleries_sample_readable_images_only(eda_run: dict) -> None:
    from rsna_pkg.eda.galleries import TILE

    gal = eda_run["summary"]["galleries"]
    broken = set(eda_run["broken"])
    for name, items in gal.items():
        assert 1 <= len(items) <= 2, name
        assert all(i["error"] == "" for i in items), items
        assert not broken & {i["image_id"] for i in items}
    reduced = [i for items in gal.values() for i in items if i["reduce"] > 0]
    assert reduced, "no gallery image was decoded at reduced resolution"
    assert all(max(i["decoded_shape"]) < 2 * TILE for i in reduced)


def test_header_pool_gives_the_same_table_as_one_process(eda_run: dict) -> None:
    from rsna_pkg.eda import headers
    from rsna_pkg.eda.build_report import load_tables

    data = eda_run["data"]
    items = [
        it for s, df in load_tables(data).items() for it in headers.items_from_table(df, data, s)
    ][:60]
    inline = headers.survey_headers(items, workers=1, progress=False)
    pooled = headers.survey_headers(items, workers=2, progress=False, pool_min_files=0)
    assert pooled.workers == 2
    pd.testing.assert_frame_equal(inline.table, pooled.table)
    assert (inline.table["error"] != "").sum() == 2


def test_a_failing_gallery_is_reported_and_the_others_finish(eda_run: dict, tmp_path: Path) -> None:
    from rsna_pkg.eda import galleries

    broken = set(eda_run["broken"])
    path = next(
        p for p in eda_run["data"].glob("train_images/*/*.dcm") if int(p.stem) not in broken
    )
    item = galleries.GalleryItem("g", str(path), int(path.stem), "label")
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")  # a file where the PNG's folder should be
    good = galleries.GroupTask("good", "ok", (item,), str(tmp_path / "good.png"))
    bad = galleries.GroupTask("bad", "bad", (item,), str(blocker / "bad.png"))
    out = galleries.render_groups([bad, good], workers=1)
    assert isinstance(out[0], str) and "not_a_dir" in out[0]
    assert isinstance(out[1], list) and out[1][0]["error"] == ""
    with PILImage.open(tmp_path / "good.png") as im:
        im.verify()


def test_files_without_a_window_are_said_to_get_the_percentile_fallback(eda_run: dict) -> None:
    """The survey and the galleries say what is applied, not "LINEAR", for files with no
    window (machines 170 and 197 of the synthetic set carry none)."""
    import pydicom

    from rsna_pkg.dicom import read_header
    from rsna_pkg.eda.headers import voi_label

    hdr = eda_run["summary"]["headers"]
    seen = {v for m in hdr["by_machine"].values() for v in m["voi_lut_function"]}
    assert "none (percentile fallback)" in seen
    for f in sorted(eda_run["data"].glob("*_images/*/*.dcm"))[:60]:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            label = voi_label(read_header(f))
        except Exception:  # noqa: BLE001 - the fixture's deliberately broken files
            continue
        if "WindowCenter" not in ds:
            assert label == "none (percentile fallback)", f
        else:
            assert label == str(ds.get("VOILUTFunction", "LINEAR")), f


def test_gallery_tiles_carry_the_mask_outline_and_the_crop_box(synth_data: Path) -> None:
    from rsna_pkg.eda.galleries import GalleryItem, draw_gallery, render_item

    path = sorted(synth_data.glob("train_images/*/*.dcm"))[0]
    tiles = render_item(GalleryItem("healthy", str(path), int(path.stem), "x"))
    assert tiles.error == "" and tiles.windowed is not None and tiles.outline is not None
    assert tiles.outline.shape == tiles.windowed.shape and tiles.outline.any()
    assert tiles.box is not None
    y0, x0, y1, x1 = tiles.box
    ys, xs = np.nonzero(tiles.outline)  # the outline lies inside the box, to a tile pixel
    assert ys.min() >= y0 - 1 and ys.max() <= y1 and xs.min() >= x0 - 1 and xs.max() <= x1
    fig = draw_gallery("t", [tiles])
    assert len(fig.axes[1].images) == 2 and len(fig.axes[1].patches) == 1  # image + outline


def test_age_histogram_with_every_age_missing_says_so(recwarn: pytest.WarningsRecorder) -> None:
    from rsna_pkg.eda.figures import draw_age_histogram

    df = pd.DataFrame({"age": [np.nan, np.nan], "cancer": [0, 1]})
    fig = draw_age_histogram(metadata.age_histogram(df))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["no ages in this table"]
    assert not [w for w in recwarn if "legend" in str(w.message).lower()]
