"""Write a competition-shaped synthetic dataset: train/test CSVs, sample submission and
vendor-like DICOMs (JPEG 2000 JP2-wrapped and bare, JPEG Lossless SV1; MONOCHROME1/2;
LINEAR/SIGMOID/multiple/no windows) with learnable lesions in the positive breasts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """OUT, then the fields of SynthConfig (``cli_options``)."""
    from rsna_pkg.cli_options import add_config_options
    from rsna_pkg.data.synth import SynthConfig

    parser.add_argument(
        "out",
        metavar="OUT",
        type=Path,
        help="folder to create (or a previous synth output to replace)",
    )
    add_config_options(parser, SynthConfig)


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors
    from rsna_pkg.data.synth import SynthConfig

    with flags_in_errors(SynthConfig):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.data.synth import SynthConfig, generate
    from rsna_pkg.logs import progress_shown
    from rsna_pkg.options import capped_workers

    workers, capped = capped_workers("--workers", args.workers)
    if capped:
        print(capped, file=sys.stderr)
    fields = {**config_kwargs(args, SynthConfig), "workers": workers}
    cfg = SynthConfig(**fields, progress=progress_shown())
    summary = generate(args.out, cfg)
    print("\n".join(summary.lines()))
    return 0
