"""The pure preprocessing steps, each on small hand-made arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsna_pkg.errors import InputError
from rsna_pkg.preprocess import PreprocessConfig
from rsna_pkg.preprocess.resize import deepest_reduce, fit_size, quantize, resize, resize_pad
from rsna_pkg.preprocess.roi import (
    Box,
    breast_box,
    breast_on_right,
    crop,
    largest_component,
    otsu_threshold,
)
from rsna_pkg.preprocess.selection import parse_shard, shard_of, subsample_negatives


def scene(rows: int = 80, cols: int = 60, side: str = "left") -> np.ndarray:
    """A 0.7 'breast' blob against one side, a bright 4x4 label far away, dark background."""
    img = np.full((rows, cols), 0.05, dtype=np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    cx = 0 if side == "left" else cols - 1
    img[np.hypot((yy - 40) / 30, (xx - cx) / 35) < 1] = 0.7
    lx = cols - 8 if side == "left" else 3
    img[3:7, lx : lx + 4] = 1.0
    return img


def test_otsu_splits_two_modes() -> None:
    img = np.concatenate([np.full(500, 0.1), np.full(300, 0.8)]).reshape(40, 20)
    t = otsu_threshold(img)
    assert 0.1 <= t < 0.8
    assert otsu_threshold(np.full((4, 4), 0.3)) == pytest.approx(0.3)


def test_largest_component_drops_the_label() -> None:
    mask = scene() > 0.5
    big = largest_component(mask)
    assert big.sum() < mask.sum() and not big[3:7, 52:56].any() and big[40, 5]
    assert not largest_component(np.zeros((5, 5), bool)).any()


@pytest.mark.parametrize("side", ["left", "right"])
def test_breast_box_excludes_marker(side: str) -> None:
    img = scene(side=side)
    box = breast_box(img, margin=0.0)
    inside = crop(img, box)
    assert inside.max() == pytest.approx(0.7)  # the 1.0 label is outside
    assert (box.y0, box.y1) == (11, 70)
    assert (box.x0 == 0) if side == "left" else (box.x1 == 60)
    assert breast_on_right(img) == (side == "right")


def test_breast_box_keeps_tissue_around_an_implant() -> None:
    # grey background (a SIGMOID window), dim tissue, a very bright implant inside it:
    # Otsu alone separates the implant and the box would hug it.
    img = np.full((100, 80), 0.07, dtype=np.float32)
    yy, xx = np.mgrid[0:100, 0:80]
    img[np.hypot((yy - 50) / 45, xx / 60) < 1] = 0.3
    img[np.hypot((yy - 50) / 20, xx / 25) < 1] = 0.95
    img += np.random.default_rng(0).normal(0, 0.005, img.shape).astype(np.float32)
    assert otsu_threshold(img) > 0.3  # the trap
    box = breast_box(img, margin=0.0)
    assert (box.y0, box.y1, box.x0) == (6, 95, 0) and box.x1 >= 59


def test_breast_box_margin_and_blank() -> None:
    img = scene()
    tight, padded = breast_box(img, 0.0), breast_box(img, 0.05)
    assert padded.y0 == tight.y0 - 4 and padded.y1 == tight.y1 + 4 and padded.x0 == 0
    assert breast_box(np.zeros((10, 12))) == Box(0, 0, 10, 12)


def test_box_scaling() -> None:
    box = Box(3, 5, 10, 11)
    assert box.scaled(4, 100, 40) == Box(12, 20, 40, 40)
    assert box.scaled(0.5, 100, 100) == Box(1, 2, 5, 6)


@pytest.mark.parametrize(
    ("ratio", "limit", "level"),
    [(0.5, None, 0), (1.0, None, 0), (1.99, None, 0), (2.0, None, 1), (7.9, None, 2),
     (8.0, None, 3), (1024.0, 5, 5), (3000 / 256, None, 3)],
)  # fmt: skip
def test_halvings_is_the_one_power_of_two_rule(ratio: float, limit: int | None, level: int) -> None:
    from rsna_pkg.eda.galleries import choose_reduce
    from rsna_pkg.preprocess.pipeline import probe_level
    from rsna_pkg.preprocess.resize import halvings

    assert halvings(ratio, limit) == level
    if limit is None:
        assert choose_reduce(round(ratio * 256), 10, target=256) == halvings(
            round(ratio * 256) / 256
        )
        assert probe_level(round(ratio * 256), 10, 256) == min(5, level)


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [((400, 200), (100, 50), (100, 50)), ((400, 400), (100, 50), (50, 50)),
     ((100, 300), (100, 50), (17, 50)), ((10, 5), (100, 50), (100, 50))],
)  # fmt: skip
def test_fit_size(shape: tuple, target: tuple, expected: tuple) -> None:
    assert fit_size(*shape, *target) == expected


def test_resize_pad_keeps_aspect_and_pads_right_bottom() -> None:
    img = np.ones((100, 300), dtype=np.float32)
    out = resize_pad(img, 64, 32)
    assert out.shape == (64, 32) and out.dtype == np.float32
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert len(rows) == 11 and out[:, 0].max() == pytest.approx(1.0)  # 100/300*32 ~ 11 rows
    assert rows[0] == (64 - 11) // 2  # vertically centred


def test_resize_is_antialiased() -> None:
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), (64, 32))  # 1-px stripes
    small = resize(stripes, 16, 16)
    assert np.allclose(small[:, 1:-1], 0.5, atol=0.02)  # averaged, not aliased to 0 or 1


def test_quantize() -> None:
    x = np.array([[-0.1, 0.0, 0.5, 1.0, 1.2]])
    np.testing.assert_array_equal(quantize(x, 8), [[0, 0, 128, 255, 255]])
    assert quantize(x, 16).dtype == np.uint16 and quantize(x, 16)[0, 3] == 65535


@pytest.mark.parametrize(
    ("box", "target", "expected"),
    [((4096, 2048), (1024, 512), 2), ((4000, 2000), (1024, 512), 1), ((1000, 500), (1024, 512), 0),
     ((4096, 1000), (1024, 512), 2), ((8192, 8192), (256, 256), 5), ((8192, 8192), (8, 8), 5)],
)  # fmt: skip
def test_deepest_reduce(box: tuple, target: tuple, expected: int) -> None:
    r = deepest_reduce(*box, *target, limit=5)
    assert r == expected
    scale = min(target[0] / box[0], target[1] / box[1], 1.0)
    assert box[0] / 2**r >= box[0] * scale - 1e-9  # the crop is never enlarged


@pytest.mark.parametrize(
    ("box", "max_upscale", "expected"),
    [((4000, 2000), 1.0, 1), ((4000, 2000), 1.05, 2), ((3700, 1900), 1.1, 2),
     ((3200, 1800), 1.1, 1), ((4000, 2000), 2.0, 2), ((1000, 500), 1.1, 0)],
)  # fmt: skip
def test_deepest_reduce_may_enlarge_by_max_upscale(box: tuple, max_upscale: float,
                                                    expected: int) -> None:  # fmt: skip
    """A level deeper is taken where the crop there is at most ``max_upscale`` times
    smaller than its resized output: 2000 / 4 = 500 px for 512 needs 1.024x, 1900 / 4 = 475
    needs 1.078x, 1800 / 4 = 450 needs 1.138x (too much at 1.1)."""
    r = deepest_reduce(*box, 1024, 512, limit=5, max_upscale=max_upscale)
    assert r == expected
    scale = min(1024 / box[0], 512 / box[1], 1.0)
    assert box[0] / 2**r * max_upscale >= box[0] * scale - 1e-9  # enlarged at most that much


def test_config_from_before_max_upscale_never_enlarges() -> None:
    """A config saved before ``max_upscale`` existed is rebuilt with levels that never
    enlarge (what it was made with); a new one defaults to 10 %."""
    assert PreprocessConfig().max_upscale == 1.1
    old = PreprocessConfig.from_dict({"height": 64, "width": 32, "roi": "segment"})
    assert old.max_upscale == 1.0
    cfg = PreprocessConfig(height=64, width=32)
    assert PreprocessConfig.from_dict(cfg.to_dict()).max_upscale == 1.1
    with pytest.raises(InputError, match="max_upscale"):
        PreprocessConfig(max_upscale=0.9)


def test_config_from_before_area_levels_crops_at_full_resolution() -> None:
    """A config saved before ``area_levels`` existed is rebuilt with it off: its JPEG
    lossless, RLE and native files were cropped at full resolution."""
    assert PreprocessConfig().area_levels
    old = PreprocessConfig.from_dict({"height": 64, "width": 32, "roi": "segment",
                                      "max_upscale": 1.1})  # fmt: skip
    assert not old.area_levels and old.max_upscale == 1.1
    cfg = PreprocessConfig(height=64, width=32)
    assert PreprocessConfig.from_dict(cfg.to_dict()).area_levels


def test_config_round_trip_and_errors() -> None:
    cfg = PreprocessConfig(height=512, width=256, bits=16, reduce=False)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.with_(bits=8).bits == 8
    with pytest.raises(InputError, match=r"PreprocessConfig: unknown key\(s\)"):
        PreprocessConfig.from_dict({**cfg.to_dict(), "gamma": 2})
    with pytest.raises(InputError, match="bits"):
        PreprocessConfig(bits=12)


def test_shards_partition_patients() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(InputError):
            parse_shard(bad)
    ids = range(10000, 10400)
    counts = np.bincount([shard_of(p, 4) for p in ids], minlength=4)
    assert counts.sum() == 400 and counts.min() > 60  # roughly even
    assert shard_of(10001, 4) == shard_of("10001", 4)  # stable, not Python's salted hash


def test_subsample_negatives_keeps_positives_grouped() -> None:
    import pandas as pd

    rows = []
    for pid in range(40):
        for lat in "LR":
            cancer = int(pid < 3 and lat == "L")
            rows += [dict(patient_id=pid, image_id=pid * 10 + k + (5 if lat == "R" else 0),
                          laterality=lat, cancer=cancer) for k in range(2)]  # fmt: skip
    table = pd.DataFrame(rows)
    kept = subsample_negatives(table, 2.0, np.random.default_rng(0))
    assert set(range(3)) <= set(kept["patient_id"])  # every positive patient
    per_patient = kept.groupby("patient_id").size()
    assert (per_patient == 4).all()  # whole patients only
    breasts = kept.groupby(["patient_id", "laterality"])["cancer"].max()
    assert 6 <= int((breasts == 0).sum()) <= 7  # 2 x 3 positives, in whole patients
    again = subsample_negatives(table, 2.0, np.random.default_rng(0))
    assert kept.equals(again)
    with pytest.raises(InputError):
        subsample_negatives(table.drop(columns="cancer"), 1.0, np.random.default_rng(0))


def test_preprocessing_uses_only_the_dicom_package_api() -> None:
    """preprocess/ imports rsna_pkg.dicom's public names, never its modules' internals
    (decode helpers, frame parsing, a backend object): one route, no backend knowledge."""
    import ast

    import rsna_pkg.dicom as dicom

    root = Path(dicom.__file__).parents[1] / "preprocess"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "rsna_pkg.dicom"
            ):
                assert node.module == "rsna_pkg.dicom", f"{path.name} imports {node.module}"
                assert {a.name for a in node.names} <= set(dicom.__all__), path.name


def test_the_zero_copy_float_image_resizes_exactly_as_a_copied_one() -> None:
    """resize maps the array into Pillow instead of copying it (3.5 ms a crop); the result
    must be the copy's, bit for bit, at odd sizes too, and the array must not be changed."""
    from PIL import Image

    from rsna_pkg.preprocess.resize import float_image, resize

    rng = np.random.default_rng(0)
    for shape, out in (((2777, 2083), (1023, 767)), ((5, 3), (2, 1)), ((64, 33), (31, 16))):
        img = (rng.random(shape, dtype=np.float32) * 4095).astype(np.float32)
        before = img.copy()
        mapped = float_image(img)
        assert mapped.mode == "F" and mapped.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(mapped), img)
        copied = Image.fromarray(img.copy(), mode="F")
        want = np.asarray(copied.resize(out[::-1], resample=Image.Resampling.BILINEAR))
        assert np.array_equal(resize(img, *out), want)
        assert np.array_equal(img, before)
