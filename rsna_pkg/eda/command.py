"""Exploratory data analysis of a competition-layout folder: metadata tables,
a parallel DICOM header survey, image galleries and figures, written as
OUT/report.md, OUT/report.html (self-contained), OUT/summary.json and OUT/figures/*.png.

--sample N is the number of images drawn per gallery group (healthy, cancer,
implant, each machine_id); --max-headers M caps the header survey at a seeded
random M files (default: every file)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rsna_pkg.options import integer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --out, --workers, --no-progress, and the fields of EdaConfig."""
    from rsna_pkg.cli_options import add_config_options
    from rsna_pkg.eda.build_report import EdaConfig

    parser.add_argument("--data", type=Path, required=True, help="folder holding train.csv")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--workers", type=integer(1, 1_000_000), default=min(8, os.cpu_count() or 1),
        help="worker processes (capped at the usable cores)",
    )  # fmt: skip
    add_config_options(parser, EdaConfig)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors, same_name_flags
    from rsna_pkg.eda.build_report import EdaConfig

    with flags_in_errors(EdaConfig, **same_name_flags("workers")):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.eda.build_report import EdaConfig, run_eda
    from rsna_pkg.logs import progress_shown
    from rsna_pkg.options import capped_workers, check_outputs

    # the report folder may sit inside DATA, but not be DATA or an images folder
    check_outputs({"--out": args.out}, {"--data": args.data, "the train images":
                  args.data / "train_images", "the test images": args.data / "test_images"})  # fmt: skip
    workers, said = capped_workers("--workers", args.workers)
    if said:
        print(said)
    cfg = EdaConfig(
        data_dir=args.data, out_dir=args.out, workers=workers,
        progress=not args.no_progress and progress_shown(), **config_kwargs(args, EdaConfig),
    )  # fmt: skip
    result = run_eda(cfg)
    s = result.summary
    h = s["headers"]
    print(f"report: {result.paths['html']}")
    print(f"figures: {len(s['figures'])}; headers: {h['files']} files, "
          f"{h['seconds_per_1000_files']} s/1000, unreadable {len(h['unreadable'])}; "
          f"total {s['timings_s']['total']} s")  # fmt: skip
    return 0
