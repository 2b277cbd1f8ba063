"""Offline inference: DICOM test set + checkpoint(s) -> per-breast submission.csv.

Every image is decoded and preprocessed with the settings stored in the checkpoint,
scored by each model (ensemble and flip TTA average probabilities), aggregated per
breast and optionally binarised with the stored threshold. Decoding streams ahead of the
model; failed images are reported and their breast predicted from the rest, or from
metadata. The run refuses network access.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rsna_pkg.cli_options import add_config_options
from rsna_pkg.infer.options import InferOptions
from rsna_pkg.options import integer

# Exit code of a run whose submission was written but holds no model prediction at all:
# every breast got its fallback (metadata model or prevalence). Distinct from 0 so a user
# or a kernel can tell a prior-only submission from a real one, and from 2 (no file).
EXIT_ALL_FALLBACK = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder holding <split>.csv")
    parser.add_argument(
        "--model", type=Path, nargs="+", required=True,
        help="checkpoint(s) or folder(s); several = ensemble. A folder is every model.pt under "
        "it (a K-fold `rsna train` output: its fold_<i>/model.pt), else its *.pt but last.pt",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="submission CSV to write")
    add_config_options(parser, InferOptions)
    parser.add_argument(
        "--threshold",
        default="stored",
        help="stored (the checkpoints' mean; a K-fold output's folds all store its OOF "
        "threshold), none (probabilities) or a number in [0, 1]",
    )
    parser.add_argument(
        "--decoder", "--backend", dest="decoder", default="auto",
        choices=("auto", "cpu", "dali", "nvimgcodec"),  # infer.devices.BACKENDS (kept light)
        help="decoding path: cpu (the CPU decoders, in workers) or a batch GPU decoder (auto: "
             "DALI, else nvImageCodec, on CUDA when the checkpoints decode full resolution; "
             "--backend: deprecated spelling)",
    )  # fmt: skip
    parser.add_argument(
        "--workers",
        type=integer(0, 1_000_000),
        default=None,
        help="decoding processes (default: half the cores, at most 8; capped at the usable "
        "cores and the number of images)",
    )
    parser.add_argument(
        "--threads", type=integer(1, 4096), default=None,
        help="CPU model threads (default: cores - workers)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--report", type=Path, default=None, help="JSON run report to write")


def run(args: argparse.Namespace) -> int:
    """The run; a setting the library refuses is named by its flag."""
    from rsna_pkg.cli_options import flags_in_errors

    with flags_in_errors(InferOptions, models="--model", device="--device", decoder="--decoder"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.cli_options import config_kwargs, flags_in_errors
    from rsna_pkg.infer.devices import (
        default_threads,
        default_workers,
        resolve_runtime,
        torch_threads,
    )
    from rsna_pkg.infer.inference import infer
    from rsna_pkg.infer.netguard import no_network
    from rsna_pkg.infer.run_report import build_report, write_report
    from rsna_pkg.infer.submission import parse_threshold
    from rsna_pkg.options import capped_workers

    log = logging.getLogger(__name__)
    start = time.perf_counter()
    check_output_paths(args)
    workers = default_workers() if args.workers is None else args.workers
    workers, capped = capped_workers("--workers", workers)
    if capped:
        log.info(f"infer: {capped}")
    with flags_in_errors(InferOptions):
        opts = InferOptions(
            data=args.data, models=tuple(args.model), out=args.out,
            threshold=parse_threshold(str(args.threshold)), workers=workers,
            **config_kwargs(args, InferOptions),
        )  # fmt: skip
    runtime = resolve_runtime(args.device, args.decoder)
    threads = args.threads or (default_threads(workers) if runtime.device == "cpu" else None)
    log.info(
        f"infer: {runtime.describe()}, {workers} decode worker(s), batch {opts.batch_size}, "
        f"model threads {threads or 'default'}"
    )
    with no_network(), torch_threads(threads):
        result = infer(opts, runtime)
    seconds = {**result.seconds, "total": time.perf_counter() - start}
    n_fail = len(result.failures)
    log.info(
        f"infer: wrote {opts.out} ({len(result.submission)} breasts, {len(result.table)} images, "
        f"{n_fail} failed, {len(result.fallback_breasts)} breasts from fallback) "
        f"in {seconds['total']:.1f} s"
    )
    if result.unscored:  # Kaggle scores the sample's ids only; an extra row is a risk
        shown = ", ".join(result.unscored[:5]) + (" ..." if len(result.unscored) > 5 else "")
        log.info(f"infer: {len(result.unscored)} test.csv breast(s) not in sample_submission.csv, "
            f"not written: {shown}")  # fmt: skip
    if args.report is not None:
        settings = {
            "data": str(opts.data),
            "models": [str(m) for m in opts.models],
            "split": opts.split,
            "agg": opts.agg,
            "threshold": opts.threshold,
            "tta": opts.tta,
            "device": runtime.device,
            "backend": (result.runtime or runtime).backend,
            "backend_why": (result.runtime or runtime).why,
            "batch_size": opts.batch_size,
            "workers": workers,
            "threads": threads,
        }
        write_report(build_report(result, settings, seconds), args.report)
        log.info(f"infer: report {args.report}")
    if result.submission.shape[0] and len(result.fallback_breasts) == len(result.submission):
        log.warning(f"infer: every breast of {opts.out} got its fallback value: no image was scored by "
            f"a model (exit {EXIT_ALL_FALLBACK})")  # fmt: skip
        return EXIT_ALL_FALLBACK
    return 0


def check_output_paths(args: argparse.Namespace) -> None:
    """--out and --report: distinct, and neither one of the run's inputs (the CSVs, a
    checkpoint): a typo must not overwrite test.csv or model.pt."""
    from rsna_pkg.errors import InputError
    from rsna_pkg.models.checkpoint import checkpoint_files
    from rsna_pkg.options import check_outputs

    outputs = {"--out": args.out, **({"--report": args.report} if args.report else {})}
    inputs = {name: args.data / name for name in (f"{args.split}.csv", "sample_submission.csv")}
    for arg in args.model:
        try:
            inputs.update({f"--model {p}": p for p in checkpoint_files(arg)})
        except InputError:  # a folder without checkpoints: reported (prior written) later
            continue
    check_outputs(outputs, inputs)


def main(argv: list[str] | None = None) -> int:
    """``python -m rsna_pkg.infer.command``: the same command without the full ``rsna`` table
    (used by the benchmark to measure each run's memory in a fresh process)."""
    from rsna_pkg.cli import absolute_paths, run_command

    parser = argparse.ArgumentParser(prog="rsna infer", description=__doc__)
    add_arguments(parser)
    args = absolute_paths(parser.parse_args(argv))
    return run_command("infer", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
