"""`rsna bench decode` runs end to end on two small files and writes its JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from rsna_pkg.bench_command import load

bench = load("decode")


def test_bench_decode_small(synth_data: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--data", str(synth_data), "--files", "2", "--size", "64", "32",
                              "--workers", "1", "--backends", "dicomsdl", "imagecodecs-rle",
                              "pydicom",
                              "--rle", "1", "--json", str(out)])  # fmt: skip
    before = sorted(synth_data.rglob("*"))
    assert bench.run(args) == 0
    assert sorted(synth_data.rglob("*")) == before  # the RLE copy was written elsewhere
    result = json.loads(out.read_text())
    assert result["files"] == 3 and result["header_ms_per_file"] > 0  # 2 + the RLE copy
    assert result["missing_file_us"] > 0
    assert {k.split()[0] for k in result["decode"]} == {"dicomsdl", "imagecodecs-rle", "pydicom"}
    assert {"imagecodecs-rle .5", "pydicom .5"} <= set(result["decode"])  # the RLE copy
    assert "dicomsdl .5" not in result["decode"]  # dicomsdl does not declare RLE
    rle = result["per_syntax"]["1.2.840.10008.1.2.5"]
    assert rle["files"] == 1 and rle["speedup"] > 0
    for g in result["per_syntax"].values():  # what each file's time went to
        assert {
            "header",
            "decode_probe" if "decode_probe" in g["steps_ms"] else "decode",
            "locate",
            "window",
            "resize",
        } <= set(g["steps_ms"])
        assert g["decode_bound_ratio"] >= g["speedup"] * 0.9  # the bound holds what was seen
    assert all(v["images_per_s"] > 0 for v in result["decode"].values())
    pre = result["preprocess"]
    assert set(pre) == {"reduce=on,workers=1", "reduce=off,workers=1"}
    assert all(v["images_per_s"] > 0 and 0 <= v["non_decode_fraction"] < 1 for v in pre.values())
    assert result["speedup_reduce_vs_baseline"] > 0
    proj = result["projection"]
    assert proj["images"] == 54_706 and proj["cores"] == 4
    assert proj["minutes"]["package"] > 0 and set(proj["by_syntax"]) <= set(result["per_syntax"])
    assert "1.2.840.10008.1.2.5" not in proj["by_syntax"]  # no competition machine writes RLE
    for row in result["j2k_levels"]:  # every J2K file: each level's cost or its failure
        assert set(row["pillow_cpu_ms"]) == {str(r) for r in range(min(row["levels"], 4) + 1)}
        assert row["final_level"] <= row["levels"]
    exact = result["exact_levels"]  # the same run with levels that never enlarge
    assert exact["default_max_upscale"] == 1.1
    assert set(exact["per_syntax"]) == set(result["per_syntax"])
    assert "exact_levels" in proj["minutes"]
    printed = capsys.readouterr().out
    assert "header read" in printed and "a missing file refused in" in printed
    assert "files a level deeper" in printed
    assert "projection: 54706 images" in printed and "ratio CPU" in printed


def test_rle_copies_keep_the_pixels(synth_data: Path, tmp_path: Path) -> None:
    """The bench's RLE files are the same pixels in another syntax, written once."""
    import pydicom

    from rsna_pkg.dicom import read_header

    source = bench.list_files(synth_data, 1)
    (copy,) = bench.rle_copies(source, tmp_path / "rle")
    assert read_header(copy).transfer_syntax_uid == "1.2.840.10008.1.2.5"
    assert copy.name == f"{source[0].stem}_rle.dcm"
    a, b = pydicom.dcmread(source[0]).pixel_array, pydicom.dcmread(copy).pixel_array
    assert a.dtype == b.dtype and (a == b).all()
    stamp = copy.stat().st_mtime_ns
    assert bench.rle_copies(source, tmp_path / "rle") == [copy]
    assert copy.stat().st_mtime_ns == stamp  # kept, not encoded again


def test_projection_weights_machines_and_counts_minutes(synth_data: Path) -> None:
    """Measured machines cost what their files cost; the rest, their syntax's CPU s per Mpx
    times their size; minutes = images x weighted CPU s / cores / 60; a J2K file's floor
    replaces its decode time only."""
    from rsna_pkg.data.synth.machines import MACHINES
    from rsna_pkg.dicom import read_header

    machines = bench.machine_ids(synth_data)
    files = bench.list_files(synth_data, 40)
    by_machine = {machines[f.stem]: f for f in files}
    chosen = list(by_machine.values())
    reduced = [(1.5, 0.5, None, 1, 1.0) for _ in chosen]  # (wall, decode s, image, level, CPU s)
    baseline = [(2.0, 1.0, 2.0) for _ in chosen]  # (wall, decode s, CPU s)
    j2k = [f for f in chosen if read_header(f).transfer_syntax_uid.endswith(".90")]
    levels = [{"file": j2k[0].name, "floor_route_ms": 100.0, "floor_whole_level_ms": None,
               "floor_window_only_ms": 50.0}]  # fmt: skip
    proj = bench.projection(chosen, reduced, baseline, levels)
    for mid, row in proj["machines"].items():
        if int(mid) in by_machine and by_machine[int(mid)] != j2k[0]:
            assert row["cpu_s"] == {"package": 1.0, "baseline": 2.0, "floor_route": 1.0,
                                    "floor_whole_level": 1.0, "floor_window": 1.0}, mid  # fmt: skip
    floor_mid = str(machines[j2k[0].stem])
    assert proj["machines"][floor_mid]["cpu_s"]["floor_route"] == 1.0 - 0.5 + 0.1
    assert proj["machines"][floor_mid]["cpu_s"]["floor_window"] == 1.0 - 0.5 + 0.05
    weight = sum(MACHINES[int(m)].weight for m in proj["machines"])
    expect = sum(MACHINES[int(m)].weight * r["cpu_s"]["package"]
                 for m, r in proj["machines"].items()) / weight  # fmt: skip
    assert abs(proj["cpu_s_per_image"]["package"] - expect) < 1e-12
    assert abs(proj["minutes"]["package"] - 54_706 * expect / 4 / 60) < 1e-9


def test_bench_pool_keeps_fastest_pass_and_orders_largest_first(tmp_path: Path) -> None:
    files = []
    for i, size in enumerate([10, 300, 50]):
        f = tmp_path / f"{i}.dcm"
        f.write_bytes(b"x" * size)
        files.append(f)
    assert bench.largest_first(files) == [files[1], files[2], files[0]]
    calls: list[Path] = []
    wall, results = bench.run_pool(_record(calls), files, 1, repeats=3)
    assert wall >= 0 and results == [f.name for f in files]
    assert len(calls) == 2 + 3 * len(files)  # two warm-up calls, then three timed passes
    wall, results = bench.run_pool(_name, files, 2, repeats=2)
    assert results == [f.name for f in files]  # pool.map keeps the input order


def _name(path: Path) -> str:
    return path.name


def _record(calls: list[Path]):  # type: ignore[no-untyped-def]
    def fn(path: Path) -> str:
        calls.append(path)
        return path.name

    return fn


def test_region_costs_time_the_packages_window(tmp_path: Path) -> None:
    """The bench's window is the one the pipeline decodes (the box scaled as Box.scaled
    scales it): exact against the whole level, a share of it, timed."""
    from dicom_cases import j2k_file, phantom

    from rsna_pkg.dicom import open_image

    image = open_image(j2k_file(tmp_path, "w", phantom(133, 97, bits=12), 12))
    got = bench.region_costs(image.frame, image.header, 1, (13, 7, 101, 61), 1)
    assert got is not None and got["exact"], got
    assert got["window"] == [6, 3, 51, 31]  # floor of the start, ceil of the end
    assert 0 < got["area_fraction"] < 1 and got["region_cpu_ms"] > 0 < got["level_cpu_ms"]


def test_level_differences_compare_only_files_a_level_deeper() -> None:
    """The default's output is compared with the never-enlarging route's only where their
    levels differ, and the PSNR is that of the 8-bit difference."""
    zeros, twos = np.zeros((4, 4), np.uint8), np.full((4, 4), 2, np.uint8)

    def result(image: np.ndarray, level: int) -> tuple:  # as _preprocess_one returns it
        return (0.1, 0.05, image, level, 0.1, (0, 0, 4, 4), {"decode": 0.05})

    reduced = [result(zeros, 1), result(twos, 2)]
    exact = [result(zeros, 1), result(zeros, 1)]
    got = bench.level_differences(reduced, exact)
    assert got["files_a_level_deeper"] == 1
    assert got["changed_mean_abs_uint8"] == 2.0 and got["changed_p99_abs_uint8"] == 2.0
    assert got["changed_psnr_db"] == [pytest.approx(10 * np.log10(255**2 / 4))]
    assert bench.level_differences(reduced[:1], exact[:1])["files_a_level_deeper"] == 0


def test_paired_best_runs_each_side_in_a_row_and_keeps_its_fastest(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Per file: each config's runs, then the baseline's, each a warm-up and ``repeats``
    runs in a row (no run right after the other pipeline's is kept), the fastest kept."""
    calls: list[str] = []
    walls = iter([0.5, 3.0, 2.0, 0.5, 5.0, 4.0, 0.5, 1.0, 6.0] * 2)  # warm-ups fastest

    def package(path: Path, cfg: dict) -> tuple:
        calls.append(f"{path.name}:{cfg['k']}")
        return (next(walls), cfg["k"])

    def baseline(path: Path, height: int, width: int) -> tuple:
        calls.append(f"{path.name}:base")
        return (next(walls), "base")

    monkeypatch.setattr(bench, "_preprocess_one", package)
    monkeypatch.setattr(bench, "_baseline_one", baseline)
    files = [Path("a.dcm"), Path("b.dcm")]
    best, base = bench.paired_best(files, [{"k": 0}, {"k": 1}], 64, 32, repeats=2)
    assert calls == [f"{f}:{side}" for f in ("a.dcm", "b.dcm") for side in (0, 1, "base")
                     for _ in range(3)]  # fmt: skip
    assert [r[0] for r in best[0]] == [2.0, 2.0] and [r[0] for r in best[1]] == [4.0, 4.0]
    assert [r[0] for r in base] == [1.0, 1.0]  # the warm-ups are never kept
