"""`rsna bench decode` runs end to end on two small files and writes its JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsna_pkg.bench_command import load

bench = load("decode")


def test_bench_decode_small(synth_data: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--data", str(synth_data), "--files", "2", "--size", "64", "32",
                              "--workers", "1", "--backends", "dicomsdl", "pydicom",
                              "--json", str(out)])  # fmt: skip
    assert bench.run(args) == 0
    result = json.loads(out.read_text())
    assert result["files"] == 2 and result["header_ms_per_file"] > 0
    assert result["missing_file_us"] > 0
    assert {k.split()[0] for k in result["decode"]} == {"dicomsdl", "pydicom"}
    assert all(v["images_per_s"] > 0 for v in result["decode"].values())
    pre = result["preprocess"]
    assert set(pre) == {"reduce=on,workers=1", "reduce=off,workers=1"}
    assert all(v["images_per_s"] > 0 and 0 <= v["non_decode_fraction"] < 1 for v in pre.values())
    assert result["speedup_reduce_vs_baseline"] > 0
    printed = capsys.readouterr().out
    assert "header read" in printed and "a missing file refused in" in printed


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
