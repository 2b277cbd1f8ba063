"""preprocess_file end to end, and the `rsna preprocess` runner on a small dataset."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pandas as pd
import pytest
from dicom_cases import J2K, encapsulated, phantom, write
from PIL import Image

from rsna_pkg.data.synth.dataset import BREAST_BOXES_FILE
from rsna_pkg.dicom import read_header
from rsna_pkg.errors import DicomError, InputError
from rsna_pkg.preprocess import PreprocessConfig, preprocess_file
from rsna_pkg.preprocess.pipeline import probe_level
from rsna_pkg.preprocess.preview import BOX_COLOUR, MASK_COLOUR
from rsna_pkg.preprocess.runner import merge_manifests, run_preprocess

SMALL = PreprocessConfig(height=64, width=32)


def kinds(data: Path) -> list[Path]:
    seen: dict[tuple, Path] = {}
    for path in sorted(data.glob("train_images/*/*.dcm")):
        h = read_header(path)
        seen.setdefault((h.transfer_syntax_uid, h.photometric, h.bits_stored), path)
    return list(seen.values())


def test_crop_holds_the_true_breast_box(synth_data: Path) -> None:
    """Every file of the synthetic set (with its labels, bands, strips, faint skin and
    nipples), through the whole pipeline: the box holds the generator's true breast box."""
    truth = pd.read_csv(synth_data / BREAST_BOXES_FILE).set_index("image_id")
    paths = sorted(synth_data.glob("*_images/*/*.dcm"))
    assert len(paths) == len(truth) > 100
    ratios = []
    for path in paths:
        res = preprocess_file(path, SMALL)
        y0, x0, y1, x1 = res.box
        t = truth.loc[int(path.stem)]
        tol = 2 ** probe_level(res.header.rows, res.header.columns, SMALL.probe_size)  # 1 probe px
        assert y0 <= t.box_y0 + tol and x0 <= t.box_x0 + tol, (path, res.box, t)
        assert y1 >= t.box_y1 - tol and x1 >= t.box_x1 - tol, (path, res.box, t)
        ratios.append((y1 - y0) * (x1 - x0) / ((t.box_y1 - t.box_y0) * (t.box_x1 - t.box_x0)))
    assert np.mean(ratios) <= 1.10 and max(ratios) < 1.5, (np.mean(ratios), max(ratios))


def test_synth_files_every_kind(synth_data: Path) -> None:
    files = kinds(synth_data)
    assert len(files) >= 4
    for path in files:
        res = preprocess_file(path, SMALL)
        img = res.image
        assert img.shape == (64, 32) and img.dtype == np.uint8
        h = res.header
        y0, x0, y1, x1 = res.box
        assert 0 <= y0 < y1 <= h.rows and 0 <= x0 < x1 <= h.columns
        assert img[:, :16].mean() > img[:, 16:].mean(), path  # breast on the left
        assert img.max() > 100  # tissue is bright (MONOCHROME1 inverted)
        if h.transfer_syntax_uid == J2K:
            assert res.reduce >= 2 and res.native_reduce, path
        full = preprocess_file(path, SMALL.with_(reduce=False))
        assert full.reduce == 0 and not full.native_reduce
        diff = np.abs(full.image.astype(int) - img.astype(int))
        # reduce on/off: same picture. The crop now holds textured breast only, and the two
        # routes' probes (wavelet levels vs area means) may put the box one probe pixel apart.
        # At level 3 the wavelet's LL band is a wider low-pass than the 8 x 8 block mean, and
        # the window's steep ramp magnifies the difference (683 x 555 at level 3, 64 x 32
        # out: 9.3 grey levels on average). Other syntaxes take level 3 from 8 x 8 block
        # means, the same box: the block mean and the resize's filter together are a wider
        # low-pass than the resize's alone (13.2 on one .70 file, 1.1-2.2 on the others).
        assert res.reduce >= 2, path
        assert diff.mean() < 15, (path, diff.mean())
        assert res.timings["total"] >= res.decode_seconds > 0


def test_window_decode_changes_no_pixel(synth_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding only the crop's window of the final level gives the image and box that
    decoding the whole level and cropping it gives, on every kind of file."""
    from dataclasses import replace

    from rsna_pkg.dicom.openjpeg_backend import OpenjpegDecoder

    cfg = PreprocessConfig(height=512, width=256)  # the final level lies below the probe's
    files = kinds(synth_data)
    windowed = {path: preprocess_file(path, cfg) for path in files}
    assert any(res.window for res in windowed.values())
    declared = OpenjpegDecoder.capabilities
    monkeypatch.setattr(OpenjpegDecoder, "capabilities",
                        lambda self: replace(declared(self), windows=False))  # fmt: skip
    for path, res in windowed.items():
        whole = preprocess_file(path, cfg)
        assert not whole.window and whole.reduce == res.reduce and whole.box == res.box, path
        np.testing.assert_array_equal(whole.image, res.image, err_msg=str(path))


def test_max_upscale_chooses_the_level(synth_data: Path) -> None:
    """The final level is the deepest whose crop is at most ``max_upscale`` smaller than the
    output: never deeper than allowed, a level deeper where the allowance reaches it, and
    the output keeps its size and box."""
    from rsna_pkg.preprocess.resize import deepest_reduce

    cfg = PreprocessConfig(height=512, width=256)
    deeper = 0
    for path in kinds(synth_data):
        levels = {u: preprocess_file(path, cfg.with_(max_upscale=u)) for u in (1.0, 1.1, 2.0)}
        for u, res in levels.items():
            y0, x0, y1, x1 = res.box
            expected = deepest_reduce(y1 - y0, x1 - x0, 512, 256, 5, u)  # J2K or area levels
            assert res.reduce == expected and res.box == levels[1.0].box, (path, u)
            assert res.image.shape == (512, 256)
        deeper += levels[2.0].reduce > levels[1.0].reduce
    assert deeper > 0  # 2x reaches a level deeper on some J2K file


def test_area_levels_crop_block_means_as_the_gpu_route_does(synth_data: Path) -> None:
    """A file without J2K levels (the synthetic .70 files) is decoded once; its crop is the
    box's window of ``area_downsample(full, r)`` at the level J2K would take, windowed,
    mirrored and resized as at full resolution. ``preprocess_stored`` (the GPU decoders'
    route) gives the same image to the bit. With ``area_levels`` off it is cropped at full
    resolution, as with ``reduce`` off."""
    from rsna_pkg.dicom import apply_voi, area_downsample, decode_file, reduced_shape
    from rsna_pkg.preprocess.pipeline import preprocess_stored
    from rsna_pkg.preprocess.resize import quantize, resize_pad
    from rsna_pkg.preprocess.roi import Box, crop

    files = [p for p in kinds(synth_data) if read_header(p).transfer_syntax_uid != J2K]
    assert files
    for path in files:
        res = preprocess_file(path, SMALL)
        h = res.header
        assert res.reduce >= 2 and not res.native_reduce, path
        full = decode_file(path).array
        level_box = Box(*res.box).scaled(2.0**-res.reduce, *reduced_shape(h.rows, h.columns,
                                                                            res.reduce))  # fmt: skip
        region = crop(area_downsample(full, res.reduce), level_box)
        windowed = apply_voi(region, h, mirror=res.flipped)
        np.testing.assert_array_equal(res.image, quantize(resize_pad(windowed, 64, 32), 8))
        gpu, box, flip = preprocess_stored(full, h, SMALL, {})
        assert box == Box(*res.box) and flip == res.flipped
        np.testing.assert_array_equal(gpu, res.image)
        for off in (SMALL.with_(area_levels=False), SMALL.with_(reduce=False)):
            whole = preprocess_file(path, off)
            assert whole.reduce == 0 and whole.box == res.box, (path, off)
            windowed = apply_voi(crop(full, Box(*res.box)), h, mirror=res.flipped)
            np.testing.assert_array_equal(whole.image,
                                          quantize(resize_pad(windowed, 64, 32), 8))  # fmt: skip


def test_bits16_and_no_crop(synth_data: Path) -> None:
    path = kinds(synth_data)[0]
    a = preprocess_file(path, SMALL.with_(bits=16)).image
    b = preprocess_file(path, SMALL).image
    assert a.dtype == np.uint16 and np.abs(a / 257.0 - b).max() <= 1
    whole = preprocess_file(path, SMALL.with_(crop=False))
    h = whole.header
    assert whole.box == (0, 0, h.rows, h.columns)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_right_breast_is_flipped_and_bright(tmp_path: Path, photometric: str) -> None:
    img = phantom(256, 192, bits=12, side="right")
    stored = 4095 - img if photometric == "MONOCHROME1" else img
    frame = imagecodecs.jpeg2k_encode(stored, level=0, codecformat="JP2", reversible=True,
                                      bitspersample=12)  # fmt: skip
    ds = encapsulated(stored, frame, J2K, 12, photometric=photometric)
    path = write(ds, tmp_path / "r.dcm")
    res = preprocess_file(path, PreprocessConfig(height=64, width=48))
    assert res.flipped
    out = res.image.astype(float)
    assert out[:, :8].mean() > 120 > out[:, -8:].mean()  # tissue against the left edge
    assert res.box[3] == 192 and res.box[1] > 0  # box hugs the right side, label excluded


def test_bad_files_raise(tmp_path: Path) -> None:
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"\x00" * 300)
    with pytest.raises(DicomError, match="not a DICOM"):
        preprocess_file(bad, SMALL)
    img = phantom(64, 48)
    for name, frame in [
        ("magic only", b"\xff\x4f\xff\x51" + bytes(20)),
        ("cut", imagecodecs.jpeg2k_encode(img, level=0, reversible=True)[:90]),
    ]:
        path = write(encapsulated(img, frame, J2K, 12), tmp_path / "j.dcm")
        for cfg in (SMALL, SMALL.with_(reduce=False)):
            with pytest.raises(DicomError) as info:
                preprocess_file(path, cfg)
            assert info.value.path == str(path) and info.value.reason, name


# -- runner -----------------------------------------------------------------------------


@pytest.fixture()
def small_data(synth_data: Path, tmp_path: Path) -> Path:
    """Six patients of the synthetic set (one with cancer), one image zero-byte, one missing."""
    table = pd.read_csv(synth_data / "train.csv")
    positive = sorted(table.loc[table["cancer"] == 1, "patient_id"].unique())[:1]
    assert positive, "the synthetic set has a cancer patient"
    pids = sorted(set(sorted(table["patient_id"].unique())[:5]) | set(positive))
    sub = table[table["patient_id"].isin(pids)]
    data = tmp_path / "data"
    for pid in pids:
        shutil.copytree(synth_data / "train_images" / str(pid), data / "train_images" / str(pid))
    sub.to_csv(data / "train.csv", index=False)
    first = sub.iloc[0]
    (data / "train_images" / str(first.patient_id) / f"{first.image_id}.dcm").write_bytes(b"")
    second = sub.iloc[1]
    (data / "train_images" / str(second.patient_id) / f"{second.image_id}.dcm").unlink()
    return data


def run_cli(argv: list[str]) -> int:
    import rsna_pkg.preprocess.command as command
    from rsna_pkg.cli import add_verbosity

    parser = argparse.ArgumentParser()
    add_verbosity(parser)  # --quiet is every command's (rsna_pkg.cli)
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_command_writes_pngs_manifest_and_resumes(small_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--data", str(small_data), "--out", str(out), "--size", "64", "32", "--workers", "2",
            "--quiet", "--preview", "2"]  # fmt: skip
    assert run_cli(argv) == 1  # two bad files
    table = pd.read_csv(small_data / "train.csv")
    man = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert len(man) == len(table) and set(man["image_id"]) == set(table["image_id"])
    errors = man[man["status"] == "error"]
    assert sorted(errors["reason"]) == ["file not found", "zero-byte file"]
    ok = man[man["status"] == "ok"]
    for row in ok.itertuples():
        with Image.open(out / row.png) as im:
            assert im.size == (32, 64) and im.mode == "L"
        assert row.png == f"{row.patient_id}/{row.image_id}.png"
    cfg = json.loads((out / "preprocess_config.json").read_text())
    assert PreprocessConfig.from_dict(cfg) == PreprocessConfig(height=64, width=32)
    with Image.open(out / "preview.png") as im:
        sheet = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(sheet, axis=0)}
    assert MASK_COLOUR in colours and BOX_COLOUR in colours  # mask outline and crop box drawn
    assert not list(out.rglob("*.tmp"))

    first_png = out / ok.iloc[0]["png"]
    stamp = first_png.stat().st_mtime_ns
    summary = run_preprocess(small_data, "train", out, PreprocessConfig(height=64, width=32),
                             progress=False)  # fmt: skip
    assert summary.skipped == len(ok) and summary.errors == 2
    assert first_png.stat().st_mtime_ns == stamp  # not redone
    with pytest.raises(InputError, match=r"another config \(width=32 \(this run: 48\)\)"):
        run_preprocess(small_data, "train", out, PreprocessConfig(height=64, width=32 + 16))
    # a folder made before max_upscale existed resumes with the value it was made with
    saved = {k: v for k, v in cfg.items() if k != "max_upscale"}
    (out / "preprocess_config.json").write_text(json.dumps(saved))
    with pytest.raises(InputError, match=r"max_upscale=1.0 \(this run: 1.1\)"):
        run_preprocess(small_data, "train", out, PreprocessConfig(height=64, width=32))
    old = PreprocessConfig(height=64, width=32, max_upscale=1.0)
    assert run_preprocess(small_data, "train", out, old, progress=False).skipped == len(ok)


def test_shards_merge_to_the_whole(small_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    cfg = PreprocessConfig(height=32, width=16)
    parts = [run_preprocess(small_data, "train", out, cfg, shard=(i, 2), progress=False)
             for i in range(2)]  # fmt: skip
    ids = [set(p.rows["patient_id"]) for p in parts]
    assert not ids[0] & ids[1]
    merged = merge_manifests(out)
    assert set(merged["image_id"]) == set(pd.read_csv(small_data / "train.csv")["image_id"])
    assert len(merged) == sum(len(p.rows) for p in parts)


def test_neg_ratio_and_limit(small_data: Path, tmp_path: Path) -> None:
    cfg = PreprocessConfig(height=32, width=16)
    limited = run_preprocess(small_data, "train", tmp_path / "a", cfg, limit=3, progress=False)
    assert len(limited.rows) == 3
    sub = run_preprocess(small_data, "train", tmp_path / "b", cfg, neg_ratio=0.0, progress=False)
    table = pd.read_csv(small_data / "train.csv")
    positives = set(table.loc[table["cancer"] == 1, "patient_id"])
    assert positives and set(sub.rows["patient_id"]) == positives
    with pytest.raises(InputError, match="train"):
        run_preprocess(small_data, "test", tmp_path / "c", cfg, neg_ratio=1.0)


def test_runner_starts_with_the_largest_files(tmp_path: Path) -> None:
    from rsna_pkg.preprocess.runner import Job, largest_first

    jobs = []
    for i, size in enumerate([5, 0, 40]):
        path = tmp_path / f"{i}.dcm"
        if size:
            path.write_bytes(b"x" * size)
        jobs.append(Job(1, i, "L", "CC", path, f"1/{i}.png"))  # job 1's file is missing
    assert [j.image_id for j in largest_first(jobs)] == [2, 0, 1]
