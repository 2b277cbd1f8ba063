"""Benchmarks that print figures (ratios measured within one run) and write JSON."""

from __future__ import annotations

import argparse

BENCHES: dict[str, tuple[str, str]] = {
    "decode": ("rsna_pkg.preprocess.bench", "decode and preprocess throughput per backend"),
    "train": ("rsna_pkg.train.bench", "data loader vs training step throughput"),
    "infer": ("rsna_pkg.infer.bench", "end-to-end inference vs model-only throughput"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rsna_pkg.cli import add_command_table

    add_command_table(parser, BENCHES, dest="bench", metavar="BENCH")


def run(args: argparse.Namespace) -> int:
    # Never reached through the CLI: the chosen bench's set_defaults(_run=...) overrides
    # this module's, so argparse routes straight to the bench's own run.
    raise RuntimeError("rsna bench: no benchmark chosen")
