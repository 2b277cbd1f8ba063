"""`rsna bench decode` runs end to end on two small files and writes its JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsna_pkg.preprocess import bench


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
    assert {k.split()[0] for k in result["decode"]} == {"dicomsdl", "pydicom"}
    assert all(v["images_per_s"] > 0 for v in result["decode"].values())
    pre = result["preprocess"]
    assert set(pre) == {"reduce=on,workers=1", "reduce=off,workers=1"}
    assert all(v["images_per_s"] > 0 and 0 <= v["non_decode_fraction"] < 1 for v in pre.values())
    assert result["speedup_reduce_vs_baseline"] > 0
    assert "header read" in capsys.readouterr().out
