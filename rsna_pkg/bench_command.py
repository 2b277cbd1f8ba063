"""Benchmarks that print figures (ratios measured within one run) and write JSON.

They live in the source tree's ``benchmarks/`` folder, not in the wheel: each is a script
over the package's public API that times the real code paths. ``rsna bench NAME --help``
lists a benchmark's options.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from rsna_pkg.errors import InputError

BENCHES: dict[str, str] = {
    "decode": "decode and preprocess throughput per backend",
    "train": "data loader vs the real training step (Trainer) throughput",
    "infer": "end-to-end inference vs model-only throughput",
    "synth": "synthetic generator: images/s, file sizes per machine",
    "ablation": "baseline, + aux heads, + balanced sampler, + 2x resolution: one training table",
    "compare": "the seed's backbone study (`rsna compare --study notebooks`): table, plot, wall time",
    "memory": "peak CPU memory per image of a training step, with/without --grad-checkpoint",
    "roi": "crop quality against the generator's true breast box, threshold vs segmentation",
    "tta": "breast AUC / pF1 of one checkpoint with each --tta mode on a labelled split",
    "device": "the GPU path on one machine: decode, VOI, preprocess, train, infer, "
    "35,000-image projection (--dry-run: tiny, on the CPU); scripts/device_check.sh runs it",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", choices=list(BENCHES), metavar="BENCH",
                        help="; ".join(f"{k}: {v}" for k, v in BENCHES.items()))  # fmt: skip
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    parser.add_argument("--repo", type=Path, help="source tree holding benchmarks/")


def load(name: str, repo: Path | None = None) -> ModuleType:
    """``benchmarks.NAME`` from the source tree (found from cwd, else the package's parent)."""
    if "benchmarks" not in sys.modules:
        from rsna_pkg.kaggle.paths import find_repo

        try:
            root = find_repo(repo) / "benchmarks"
        except InputError as exc:
            raise InputError(f"rsna bench needs a source checkout (benchmarks/): {exc}") from exc
        if not (root / "__init__.py").is_file():
            raise InputError(f"{root}: no benchmarks here; run from a source checkout")
        spec = importlib.util.spec_from_file_location(
            "benchmarks", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{name}")


def run(args: argparse.Namespace) -> int:
    return main([args.bench, *args.options], args.repo)


def main(argv: Sequence[str], repo: Path | None = None) -> int:
    from rsna_pkg.cli import absolute_paths

    name, *rest = argv
    module = load(name, repo)
    parser = argparse.ArgumentParser(prog=f"rsna bench {name}", description=module.__doc__)
    module.add_arguments(parser)
    return int(module.run(absolute_paths(parser.parse_args(rest))) or 0)
