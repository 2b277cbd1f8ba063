"""Write a competition-shaped synthetic dataset: train/test CSVs, sample submission and
vendor-like DICOMs (JPEG 2000 JP2-wrapped and bare, JPEG Lossless SV1; MONOCHROME1/2;
LINEAR/SIGMOID/multiple/no windows) with learnable lesions in the positive breasts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsna_pkg.options import integer, number

SCALE_CHOICES = ("small", "full")
DIFFICULTIES = ("easy", "realistic")  # rsna_pkg.data.synth.findings.DIFFICULTIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out",
        metavar="OUT",
        type=Path,
        help="folder to create (or a previous synth output to replace)",
    )
    parser.add_argument(
        "--patients", type=integer(2, 10_000_000), required=True, help="number of patients (>= 2)"
    )
    parser.add_argument(
        "--seed", type=integer(0, 2**32 - 1), default=0, help="random seed (default 0)"
    )
    parser.add_argument("--scale", choices=SCALE_CHOICES, default="small",
                        help="small: 512-800 px images; full: the vendors' real sizes")  # fmt: skip
    parser.add_argument("--cancer-rate", type=number(0, 1), default=None,
                        help="fraction of positive breasts (default: easy 0.2 small, 0.02 full; "
                             "realistic 0.0206, the real set's)")  # fmt: skip
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="easy",
                        help="easy: large clear lesions; realistic: mm-sized findings, real "
                             "rates, label noise (docs/SYNTH_DIFFICULTY.md)")  # fmt: skip
    parser.add_argument("--workers", type=integer(1, 1_000_000), default=1,
                        help="processes rendering images (capped at the usable cores)")  # fmt: skip
    parser.add_argument(
        "--test-frac",
        type=number(0, 1),
        default=0.1,
        help="share of patients in test (>= 1 patient)",
    )


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors, same_name_flags

    with flags_in_errors(
        **same_name_flags(
            "patients", "scale", "difficulty", "cancer_rate", "test_frac", "workers", "seed"
        )
    ):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.data.synth import SynthConfig, generate
    from rsna_pkg.logs import progress_shown
    from rsna_pkg.options import capped_workers

    workers, capped = capped_workers("--workers", args.workers)
    if capped:
        print(capped, file=sys.stderr)
    cfg = SynthConfig(
        patients=args.patients, seed=args.seed, scale=args.scale, cancer_rate=args.cancer_rate,
        workers=workers, test_frac=args.test_frac, progress=progress_shown(), difficulty=args.difficulty,
    )  # fmt: skip
    summary = generate(args.out, cfg)
    print("\n".join(summary.lines()))
    return 0
