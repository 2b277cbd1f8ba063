"""`rsna bench memory`: peak RSS per image of a training step, each setting in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsna_pkg.cli import main
from rsna_pkg.errors import InputError


def test_bench_memory_shows_checkpointing_saves_memory(tmp_path: Path, capsys) -> None:
    out = tmp_path / "memory.json"
    # 512x256: at 256x128 the activations are small beside the allocator's noise (the
    # saving measured 0.58-0.77 run to run there). At 512x256 one process per setting read
    # 0.49-0.64, and once 0.76 (CI, a checkpointed run's transient peak): the least of two
    # processes per setting is kept
    code = main(["bench", "memory", "--backbones", "timm:efficientnet_b0", "--sizes", "512x256",
                 "--batch-size", "2", "--threads", "1", "--repeats", "2", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    plain, ckpt = result["rows"]
    assert (plain["grad_checkpoint"], ckpt["grad_checkpoint"]) == (False, True)
    assert plain["size"] == "512x256" and plain["threads"] == 1
    assert plain["baseline_mib"] > 100 and plain["peak_mib"] > plain["baseline_mib"]
    # efficientnet_b0 keeps most activations at high resolution: checkpointing must show
    assert ckpt["per_image_mib"] < 0.75 * plain["per_image_mib"]
    assert result["saving"]["timm:efficientnet_b0 512x256"] < 0.75
    assert "MiB/image" in capsys.readouterr().out


def test_bench_memory_refuses_a_bad_size() -> None:
    from benchmarks.memory import parse_size

    assert parse_size("1024x512") == (1024, 512)
    for bad in ("1024", "16x16", "axb"):
        with pytest.raises(InputError, match="HxW"):
            parse_size(bad)


def test_peak_rss_counts_from_the_reset_not_from_the_parent() -> None:
    """A child's ru_maxrss starts at its parent's peak; the bench reads VmHWM after a reset."""
    import subprocess
    import sys

    code = ("import numpy as np; from benchmarks.memory import peak_rss_mib, reset_peak_rss; "
            "a = np.ones(300 * 2**20 // 8); del a; before = peak_rss_mib(); "
            "assert reset_peak_rss(); print(before, peak_rss_mib())")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = map(float, done.stdout.split())
    assert before - after > 250
