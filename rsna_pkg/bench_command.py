"""Benchmarks that print figures (ratios measured within one run) and write JSON."""

from __future__ import annotations

import argparse
import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "decode": ("rsna_pkg.preprocess.bench", "decode and preprocess throughput per backend"),
    "train": ("rsna_pkg.train.bench", "data loader vs training step throughput"),
    "infer": ("rsna_pkg.infer.bench", "end-to-end inference vs model-only throughput"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    sub.required = True
    for name, (module_name, help_text) in BENCHES.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__ or help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:
    # argparse already routed to the bench's own run via set_defaults.
    return int(args._run(args) or 0)
