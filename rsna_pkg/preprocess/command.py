"""Decode, window, crop and resize a split's DICOMs to PNG (OUT/<patient_id>/<image_id>.png),
with OUT/manifest.csv (one row per image, status ok|error and the reason),
OUT/preprocess_config.json and OUT/preview.png. Resumable; exits 1 if any file failed.

--neg-ratio R (train only) keeps every patient with a positive breast plus negative-only
patients, drawn with --seed, until there are R negative breasts per positive breast.
--shard I/N takes the patients with crc32(patient_id) % N == I and writes
OUT/manifest.shard-I-of-N.csv; `--merge --out OUT` then joins the shards' manifests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_pkg.cli_options import add_config_options
from rsna_pkg.options import integer, number
from rsna_pkg.preprocess.config import MAX_SIZE, MIN_SIZE, PreprocessConfig

# Failed files listed one line each (file and reason); the manifest has every one.
MAX_ERROR_LINES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="competition folder (train.csv, train_images/ ...)"
    )
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--size", nargs=2, type=integer(MIN_SIZE, MAX_SIZE), metavar=("H", "W"),
        default=(1024, 512), help=f"output image size, {MIN_SIZE} to {MAX_SIZE} px a side",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=integer(1, 1_000_000), default=1,
        help="processes (capped at the usable cores and the images to do)",
    )  # fmt: skip
    add_config_options(parser, PreprocessConfig)
    parser.add_argument(
        "--neg-ratio",
        type=number(0, 1e6, lo_open=True),
        default=None,
        help="negatives per positive",
    )
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    parser.add_argument("--limit", type=integer(1, 10**9), default=None, help="first N images only")
    parser.add_argument("--shard", default=None, help="I/N: this run's share of patients")
    parser.add_argument("--merge", action="store_true", help="merge OUT's shard manifests")
    parser.add_argument(
        "--preview", type=integer(0, 64), default=6, help="images in preview.png (0: none)"
    )


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors, same_name_flags

    with flags_in_errors(PreprocessConfig, **same_name_flags("shard", "neg_ratio", "split")):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.cli_options import config_kwargs, flags_in_errors
    from rsna_pkg.data.schema import image_path
    from rsna_pkg.errors import InputError
    from rsna_pkg.logs import progress_shown
    from rsna_pkg.options import check_outputs
    from rsna_pkg.preprocess.preview import write_preview
    from rsna_pkg.preprocess.runner import merge_manifests, run_preprocess
    from rsna_pkg.preprocess.selection import parse_shard

    if args.merge:
        df = merge_manifests(args.out)
        bad = int((df["status"] != "ok").sum())
        print(f"merged {len(df)} rows into {Path(args.out) / 'manifest.csv'} ({bad} errors)")
        return 1 if bad else 0
    if not args.data:
        raise InputError("--data is required (unless --merge)")
    # the output folder may sit inside DATA, but not be DATA or its images folder
    check_outputs({"--out": args.out},
                  {"--data": args.data, "the images": args.data / f"{args.split}_images"})  # fmt: skip
    with flags_in_errors(PreprocessConfig):
        cfg = PreprocessConfig(height=args.size[0], width=args.size[1],
                               **config_kwargs(args, PreprocessConfig))  # fmt: skip
    shard = parse_shard(args.shard) if args.shard else None
    summary = run_preprocess(args.data, args.split, args.out, cfg, workers=args.workers,
                             neg_ratio=args.neg_ratio, seed=args.seed, limit=args.limit,
                             shard=shard, progress=progress_shown())  # fmt: skip
    rows = summary.rows
    done = len(rows) - summary.skipped
    rate = done / summary.seconds if summary.seconds > 0 else 0.0
    print(f"{len(rows)} images: {len(rows) - summary.errors} ok, {summary.errors} errors, "
          f"{summary.skipped} already done; {done} processed in {summary.seconds:.1f}s "
          f"({rate:.2f} img/s) -> {summary.manifest}")  # fmt: skip
    if summary.errors:
        failed = rows[rows["status"] == "error"]
        for r in failed.head(MAX_ERROR_LINES).itertuples(index=False):
            dicom = image_path(args.data, args.split, int(r.patient_id), int(r.image_id))
            print(f"  error: {dicom}: {r.reason}")
        if len(failed) > MAX_ERROR_LINES:
            print(f"  ... {len(failed) - MAX_ERROR_LINES} more errors in {summary.manifest}; "
                  "most common:")  # fmt: skip
            for reason, n in failed["reason"].value_counts().head(5).items():
                print(f"  error x{n}: {reason}")
    if args.preview > 0:
        dicoms = {int(r.image_id): image_path(args.data, args.split, int(r.patient_id),
                                              int(r.image_id))
                  for r in rows.itertuples(index=False)}  # fmt: skip
        path = write_preview(Path(args.out), rows, dicoms, args.preview, cfg)
        if path is not None:
            print(f"preview: {path}")
    return 1 if summary.errors else 0
