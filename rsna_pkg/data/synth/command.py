"""Write a competition-shaped synthetic dataset: train/test CSVs, sample submission and
vendor-like DICOMs (JPEG 2000 JP2-wrapped and bare, JPEG Lossless SV1; MONOCHROME1/2;
LINEAR/SIGMOID/multiple/no windows) with learnable lesions in the positive breasts."""

from __future__ import annotations

import argparse
from pathlib import Path

SCALE_CHOICES = ("small", "full")
DIFFICULTIES = ("easy", "realistic")  # rsna_pkg.data.synth.findings.DIFFICULTIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out",
        metavar="OUT",
        type=Path,
        help="folder to create (or a previous synth output to replace)",
    )
    parser.add_argument("--patients", type=int, required=True, help="number of patients (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--scale", choices=SCALE_CHOICES, default="small",
                        help="small: 512-800 px images; full: the vendors' real sizes")  # fmt: skip
    parser.add_argument("--cancer-rate", type=float, default=None,
                        help="fraction of positive breasts (default: easy 0.2 small, 0.02 full; "
                             "realistic 0.0206, the real set's)")  # fmt: skip
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="easy",
                        help="easy: large clear lesions; realistic: mm-sized findings, real "
                             "rates, label noise (docs/SYNTH_DIFFICULTY.md)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="processes rendering images")
    parser.add_argument(
        "--test-frac", type=float, default=0.1, help="share of patients in test (>= 1 patient)"
    )


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.data.synth import SynthConfig, generate

    cfg = SynthConfig(
        patients=args.patients, seed=args.seed, scale=args.scale, cancer_rate=args.cancer_rate,
        workers=args.workers, test_frac=args.test_frac, progress=True, difficulty=args.difficulty,
    )  # fmt: skip
    summary = generate(args.out, cfg)
    print("\n".join(summary.lines()))
    return 0
