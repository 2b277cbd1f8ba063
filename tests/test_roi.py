"""The breast box on what real mammograms carry besides the breast (issue 20): the three
reproductions of the issue at full size through ``locate`` (the preprocessing's own step),
and each artefact of the generator on its own, against the generator's truth.

Every case here failed with the earlier crop (``roi="threshold"``, margin 0.02): the box
became the whole image or full height, or held the nipple only through a margin so wide
that the box was over 10 % too large."""

from __future__ import annotations

import numpy as np
import pytest

from rsna_pkg.data.synth.artefacts import ArtefactRates, clear_of_box, text_bitmap
from rsna_pkg.data.synth.machines import MACHINES
from rsna_pkg.data.synth.phantom import render_scene
from rsna_pkg.data.synth.writer import ImageIds, build_dataset, to_stored, voi_for
from rsna_pkg.dicom import area_downsample
from rsna_pkg.dicom.header import DicomHeader, header_from_dataset
from rsna_pkg.preprocess import PreprocessConfig, roi
from rsna_pkg.preprocess.pipeline import locate, probe_level
from rsna_pkg.preprocess.roi import Box, breast_mask, follow_tips, outline

ROWS, COLS = 4400, 2800
TRUE_BOX = (700, 0, 3700, 1300)  # the ellipse below: centre (2200, 0), radii 1500 x 1300
LABEL = (300, 2000, 550, 2500)


def no_window_header(rows: int, cols: int) -> DicomHeader:
    """16-bit MONOCHROME2, RLE Lossless, no VOI tags: the real screen-film files."""
    return DicomHeader("film.dcm", "1.2.840.10008.1.2.5", rows, cols, 16, 16, 0, "MONOCHROME2",
                       1, 1, (), (), (), None, (), 1.0, 0.0, False, "L", "CC", "1", "1")  # fmt: skip


def film() -> np.ndarray:
    """The issue's image: an elliptical breast against the left edge (stored 3000-43000),
    a 250x500 label of 60000 that does not touch it, background 0 with a little noise."""
    yy, xx = np.ogrid[0:ROWS, 0:COLS]
    r = np.hypot((yy - 2200) / 1500, xx / 1300)
    img = np.random.default_rng(0).normal(200, 30, (ROWS, COLS)).astype(np.float32)
    inside = r < 1
    img[inside] = (3000 + 40000 * np.sqrt(1 - r[inside])).astype(np.float32)
    img[LABEL[0] : LABEL[2], LABEL[1] : LABEL[3]] = 60000
    return img


def box_of(img: np.ndarray, cfg: PreprocessConfig | None = None) -> Box:
    """The box ``rsna preprocess`` finds (probe of the full-resolution route), full-res px."""
    cfg = cfg or PreprocessConfig()
    level = probe_level(ROWS, COLS, cfg.probe_size)
    stored = np.clip(img, 0, 65535).astype(np.uint16)
    box, _ = locate(area_downsample(stored, level), no_window_header(ROWS, COLS), cfg)
    return box.scaled(2**level, ROWS, COLS)


def assert_good_box(box: Box, truth: tuple[int, int, int, int]) -> None:
    y0, x0, y1, x1 = truth
    assert box.y0 <= y0 and box.x0 <= x0 and box.y1 >= y1 and box.x1 >= x1, (box, truth)
    ratio = box.height * box.width / ((y1 - y0) * (x1 - x0))
    assert ratio <= 1.10, (box, ratio)
    ly0, lx0, ly1, lx1 = LABEL
    assert ly1 <= box.y0 or ly0 >= box.y1 or lx1 <= box.x0 or lx0 >= box.x1, box  # no label


def test_plain_film() -> None:
    assert_good_box(box_of(film()), TRUE_BOX)


def test_bright_bands_on_all_four_edges() -> None:
    img = film()
    img[:40], img[-40:], img[:, :20], img[:, -20:] = 45000, 45000, 45000, 45000
    assert_good_box(box_of(img), TRUE_BOX)


def test_faint_chest_wall_strip_over_the_full_height() -> None:
    img = film()
    img[:, :150] = np.maximum(img[:, :150], 4000)
    assert_good_box(box_of(img), TRUE_BOX)


def test_faint_nipple_beyond_the_threshold() -> None:
    img = film()
    nipple = img[2140:2260, 1300:1500]
    img[2140:2260, 1300:1500] = np.maximum(nipple, 2500)
    assert_good_box(box_of(img), (TRUE_BOX[0], 0, TRUE_BOX[2], 1500))


def test_threshold_crop_is_still_there_for_old_checkpoints() -> None:
    """The earlier crop stays reachable (configs saved before ``roi`` existed), and it
    does fail these images: the reason the default changed."""
    img = film()
    img[:40], img[-40:], img[:, :20], img[:, -20:] = 45000, 45000, 45000, 45000
    old = box_of(img, PreprocessConfig(roi="threshold", margin=0.02))
    assert old == Box(0, 0, ROWS, COLS)
    assert (
        PreprocessConfig.from_dict({"height": 64, "width": 32, "margin": 0.02}).roi == "threshold"
    )
    assert PreprocessConfig(height=64, width=32).roi == "segment"


ONE_EACH = {
    "view_label": ArtefactRates(1, 0, 0, 0, 0),
    "edge_bands": ArtefactRates(0, 1, 0, 0, 0),
    "chest_strip": ArtefactRates(0, 0, 1, 0, 0),
    "faint_skin": ArtefactRates(0, 0, 0, 1, 0),
    "nipple": ArtefactRates(0, 0, 0, 0, 1),
    "all": ArtefactRates(1, 1, 1, 1, 1),
}


def generated(machine: int, view: str, side: str, rates: ArtefactRates, seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, DicomHeader]:  # fmt: skip
    """(stored, true breast, labels, header) of one generated image of ``machine``."""
    profile = MACHINES[machine]
    scene = render_scene(profile.shape("small"), side, view, "B", False, None,
                         np.random.default_rng(seed), profile.mm_per_pixel("small"), rates)  # fmt: skip
    stored = to_stored(scene.image, profile)
    ids = ImageIds(1, seed, side, view, 0)
    ds = build_dataset(stored, b"\0\0", voi_for(stored, scene.image, profile), ids, profile)
    return stored, scene.breast, scene.labels, header_from_dataset(ds, "generated.dcm")


@pytest.mark.parametrize("artefact", list(ONE_EACH))
def test_each_generated_artefact(artefact: str) -> None:
    """Each artefact alone, on every machine (both sides, CC and MLO): the box holds the
    true breast to one probe pixel, is at most 15 % larger, and holds no label pixel."""
    cfg = PreprocessConfig()
    ratios = []
    for i, machine in enumerate(sorted(MACHINES)):
        view, side = ("CC", "MLO")[i % 2], "LR"[(i // 2) % 2]
        stored, breast, labels, header = generated(machine, view, side, ONE_EACH[artefact], i)
        level = probe_level(header.rows, header.columns, cfg.probe_size)
        box, _ = locate(area_downsample(stored, level), header, cfg)
        box = box.scaled(2**level, header.rows, header.columns)
        inside = np.zeros_like(breast)
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
        assert (breast & inside).sum() >= 0.999 * breast.sum(), (machine, view, side, box)
        assert not (labels & inside).any(), (machine, view, side, box)
        ys, xs = np.flatnonzero(breast.any(1)), np.flatnonzero(breast.any(0))
        ratios.append(box.height * box.width / ((ys[-1] + 1 - ys[0]) * (xs[-1] + 1 - xs[0])))
    assert np.mean(ratios) <= 1.10 and max(ratios) <= 1.15, ratios


def test_generator_draws_each_artefact_and_keeps_labels_off_the_breast_box() -> None:
    shape, mm = MACHINES[49].shape("small"), MACHINES[49].mm_per_pixel("small")
    plain = render_scene(shape, "L", "CC", "B", False, None, np.random.default_rng(3), mm)
    full = render_scene(shape, "L", "CC", "B", False, None, np.random.default_rng(3), mm,
                        ONE_EACH["all"])  # fmt: skip
    assert full.breast.sum() > plain.breast.sum()  # the nipple belongs to the breast
    assert full.breast_box()[3] > plain.breast_box()[3]  # and reaches past its tip
    assert full.labels.sum() > plain.labels.sum()  # the view label
    y0, x0, y1, x1 = full.breast_box()
    assert not full.labels[y0:y1, x0:x1].any()
    assert not np.array_equal(full.image, plain.image)
    # with no artefacts the image is exactly what it was (own Generator, nothing else moved)
    again = render_scene(shape, "L", "CC", "B", False, None, np.random.default_rng(3), mm)
    assert np.array_equal(again.image, plain.image)


def test_view_label_reads_the_right_way_round() -> None:
    bits = text_bitmap("LCC", 1)
    assert bits.shape == (7, 3 * 5 + 2)
    assert bits[:, 0].all() and bits[6, :5].all()  # "L": a vertical bar and a foot
    mask = np.zeros((50, 50), bool)
    mask[10:20, 0:10] = True
    assert clear_of_box(mask, 30, 30, 5, 5, 2) and not clear_of_box(mask, 15, 8, 5, 5, 0)


def test_follow_tips_stops_on_a_strip_and_follows_a_tip() -> None:
    weak = np.zeros((30, 20), bool)
    weak[:, :3] = True  # a strip along the chest wall, full height
    for y, run in zip(range(10, 20), (4, 8, 10, 12, 12, 12, 12, 10, 8, 5), strict=True):
        weak[y, :run] = True
    mask = np.zeros_like(weak)
    mask[12:18] = weak[12:18]
    out = follow_tips(mask, weak)
    rows = np.flatnonzero(out.any(1))
    assert rows[0] >= 8 and rows[-1] <= 21  # two rows of the strip at most past each tip
    assert out[10, :4].all() and out[19, :5].all()  # the tapering tips are followed


def test_blank_and_outline() -> None:
    assert not breast_mask(np.zeros((40, 30))).any()
    m = np.zeros((10, 10), bool)
    m[2:8, 0:6] = True
    edge = outline(m)
    assert edge[2, 3] and edge[4, 5] and not edge[4, 3]
    assert not edge[4, 0]  # where the breast runs off the image there is no outline to draw


def test_threshold_mask_keeps_only_what_lies_above_the_threshold() -> None:
    """A band exactly at the threshold (background 0 + the 0.05 floor) is larger than the
    breast but not above the threshold: the mask is the breast alone."""
    img = np.zeros((60, 60))
    img[5:20, 5:20] = 1.0
    img[40:46, :] = 0.05
    assert roi.foreground_threshold(img) == 0.05
    mask = roi.threshold_mask(img)
    assert mask.sum() == 225 and mask[5:20, 5:20].all()


def test_scale_to_unit_maps_the_percentiles_to_0_and_1() -> None:
    img = np.arange(1000, dtype=np.uint16).reshape(25, 40)
    lo, hi = np.percentile(img, [0.5, 99.5])
    want = np.clip((img.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    got = roi.scale_to_unit(img)
    assert got.dtype == np.float32 and got.min() == 0.0 and got.max() == 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # float32 arithmetic
    flat = roi.scale_to_unit(np.full((3, 4), 7, dtype=np.uint16))
    assert flat.dtype == np.float32 and flat.shape == (3, 4) and not flat.any()


def test_open_square_removes_what_is_narrower_than_its_side() -> None:
    """Radius 2: a 5-pixel square; a bar 3 wide goes, one 5 wide stays whole, the image
    edge counts as background only for erosion (a full image stays full)."""
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:18, 2:5] = True  # 3 wide
    mask[2:18, 10:15] = True  # 5 wide
    opened = roi.open_square(mask, 2)
    assert not opened[:, 2:5].any()
    np.testing.assert_array_equal(opened[:, 8:], mask[:, 8:])
    assert roi.open_square(np.ones((9, 9), dtype=bool), 2).all()


def test_open_square_running_counts_equal_scipys_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numba running counts (``square_filter``) and scipy's minimum/maximum filters open
    every mask alike: thin and wide shapes, sparse to dense, radii past the image's sides."""
    pytest.importorskip("numba")
    from rsna_pkg.preprocess import square_filter

    rng = np.random.default_rng(3)
    masks = [rng.random(shape) < p for shape in ((1, 1), (3, 50), (50, 3), (40, 41), (287, 240))
             for p in (0.5, 0.9, 0.99)]  # fmt: skip
    fast = [[square_filter.open_square_counts(m, r) for r in (0, 1, 2, 7, 30)] for m in masks]
    monkeypatch.setattr(square_filter, "open_square_counts", lambda mask, radius: None)
    for m, opened in zip(masks, fast, strict=True):
        for r, got in zip((0, 1, 2, 7, 30), opened, strict=True):
            want = roi.open_square(m, r)  # scipy's filters now
            assert got is not None and got.dtype == bool
            np.testing.assert_array_equal(got, want, err_msg=f"{m.shape} radius {r}")


def test_edge_runs_and_near_edge() -> None:
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    assert roi.edge_runs(mask).tolist() == [4, 2, 0, 1]
    zone = roi.near_edge((6, 7), 2)
    assert zone.sum() == 6 * 7 - 2 * 3 and not zone[2:4, 2:5].any()


def tip_case() -> tuple[np.ndarray, np.ndarray]:
    """Mask rows 4-7 (run 6 from the chest wall, column 0); the weak mask above runs 6
    (as wide), 4, 1, then 0; below 5, 5, 5, 2."""
    mask = np.zeros((12, 10), dtype=bool)
    mask[4:8, :6] = True
    weak = mask.copy()
    for row, run in {3: 6, 2: 4, 1: 1, 0: 0, 8: 5, 9: 5, 10: 5, 11: 2}.items():
        weak[row, :run] = True
    return mask, weak


def test_follow_tips_follows_narrowing_runs_and_stops_on_a_strip() -> None:
    mask, weak = tip_case()
    out = roi.follow_tips(mask, weak)
    want = mask.copy()
    for row, run in {3: 6, 2: 4, 1: 1, 8: 5, 9: 5}.items():  # row 10: the third 5 is a strip
        want[row, :run] = True
    np.testing.assert_array_equal(out, want)
    # a tip that reaches the image's first and last rows is followed to them
    tall = np.zeros((5, 6), dtype=bool)
    tall[2, :4] = True
    weak = tall.copy()
    weak[1, :3], weak[0, :1], weak[3, :2], weak[4, :1] = True, True, True, True
    np.testing.assert_array_equal(roi.follow_tips(tall, weak), weak)
    empty = np.zeros((4, 4), dtype=bool)
    assert not roi.follow_tips(empty, np.ones((4, 4), dtype=bool)).any()


def test_breast_box_is_the_mask_box_with_a_half_percent_margin() -> None:
    img = np.zeros((200, 120), dtype=np.float32)
    img[40:160, :70] = 1.0
    mask = roi.breast_mask(img)
    assert roi.breast_box(img) == roi.mask_box(mask, 0.005)
    assert roi.breast_box(img, 0.05) == roi.mask_box(mask, 0.05)
    assert roi.breast_box(img) != roi.breast_box(img, 0.05)


def test_mask_box_pads_and_an_empty_mask_is_the_whole_image() -> None:
    assert roi.mask_box(np.zeros((5, 7), dtype=bool), 0.1) == Box(0, 0, 5, 7)
    mask = np.zeros((40, 30), dtype=bool)
    mask[12:20, 5:9] = True
    assert roi.mask_box(mask, 0.0) == Box(12, 5, 20, 9)
    assert roi.mask_box(mask, 0.05) == Box(10, 3, 22, 11)  # round(0.05 x 40) = 2 each side
    assert roi.mask_box(mask, 0.5) == Box(0, 0, 40, 29)  # clipped to the image


def test_weak_threshold_rule() -> None:
    """The median of what lies strictly below ``strong`` plus max(0.02, 5 robust SDs),
    at most ``strong``; ``strong`` itself when nothing lies below it."""
    assert roi.weak_threshold(np.array([0.0, 1.0, 1.0]), 1.0) == pytest.approx(0.02)
    assert roi.weak_threshold(np.array([0.0, 1.0]), 0.5) == pytest.approx(0.02)
    assert roi.weak_threshold(np.ones(4), 0.5) == 0.5
    below = np.array([0.0, 0.1, 0.2])
    sd = 1.4826 * 0.1
    assert roi.weak_threshold(np.append(below, 1.0), 1.0) == pytest.approx(0.1 + 5 * sd)
    assert roi.weak_threshold(np.append(below, 1.0), 0.5) == 0.5


def test_breast_mask_is_boolean_and_mirrors_with_the_image() -> None:
    """The right-side image goes through follow_tips flipped, mask and weak mask alike."""
    rng = np.random.default_rng(3)
    img = np.zeros((120, 90))
    yy, xx = np.mgrid[:120, :90]
    img[np.hypot(yy - 60, xx) < 40] = 1.0
    for top, run in enumerate((1, 2, 3, 4, 5, 6), start=14):  # faint tips along the chest wall
        img[top, :run] = 0.3
        img[119 - top, :run] = 0.3
    img += rng.normal(0, 0.005, img.shape)
    left = roi.breast_mask(img)
    assert left.dtype == bool
    np.testing.assert_array_equal(roi.breast_mask(img[:, ::-1]), left[:, ::-1])


def test_otsu_threshold_splits_two_levels_at_the_first_edge_after_the_lower() -> None:
    """Two levels, 0.2 (600 pixels) and 0.8 (400): every split between them has the same
    between-class variance, the first (the edge just above 0.2's bin) wins; a third level
    moves it to between the two larger classes."""
    img = np.concatenate([np.full(600, 0.2), np.full(400, 0.8)])
    edges = np.linspace(0.2, 0.8, 257)
    assert roi.otsu_threshold(img) == pytest.approx(edges[1])
    three = np.concatenate([np.full(500, 0.1), np.full(100, 0.5), np.full(400, 0.9)])
    hist, e = np.histogram(three, bins=256, range=(0.1, 0.9))
    p = hist / hist.sum()
    c = (e[:-1] + e[1:]) / 2
    w0, m0 = np.cumsum(p), np.cumsum(p * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1.0
    assert roi.otsu_threshold(three) == pytest.approx(e[int(np.argmax(between)) + 1])
    assert 0.1 < roi.otsu_threshold(three) < 0.5
    assert roi.otsu_threshold(np.full(5, 0.3)) == 0.3  # flat: its one value


def test_background_threshold_rule() -> None:
    """2nd percentile + max(0.05, 4 robust SDs of the pixels within 0.1 of it)."""
    img = np.concatenate([np.linspace(0.0, 0.1, 600), np.full(400, 0.8)])
    level = np.percentile(img, 2)
    near = img[np.abs(img - level) < 0.1]
    sd = 1.4826 * np.median(np.abs(near - np.median(near)))
    assert 4 * sd > 0.05  # the spread, not the floor, decides here
    assert roi.background_threshold(img) == pytest.approx(level + 4 * sd)
    flat = np.concatenate([np.zeros(600), np.full(400, 0.8)])
    assert roi.background_threshold(flat) == pytest.approx(0.05)


def test_breast_on_right_compares_the_outer_halves() -> None:
    """Odd width: the middle column belongs to neither half; equal halves are 'left'."""
    assert roi.breast_on_right(np.array([[5.0, 0.0, 9.0, 3.0, 3.0]]))
    assert not roi.breast_on_right(np.array([[3.0, 3.0, 9.0, 5.0, 1.0]]))
    assert not roi.breast_on_right(np.array([[2.0, 2.0, 0.0, 1.0, 3.0]]))
