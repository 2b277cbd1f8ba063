"""Kaggle packaging: render the metadata from kaggle.toml, check it with the kaggle CLI's own
validation (offline), build the offline wheel dataset, and push datasets and kernels.

Typical release: ``rsna replicate`` (local replay of the four kernels), then
``rsna kaggle push --dry-run`` to see the commands, then ``rsna kaggle push``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_pkg.kaggle.build import DEFAULT_PLATFORMS, BuildOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, help="repository root (default: found from cwd)")
    sub = parser.add_subparsers(dest="kaggle_command", metavar="ACTION")
    sub.required = True

    render = sub.add_parser("render", help="write the kernel/dataset metadata from kaggle.toml")
    render.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")

    check = sub.add_parser("check", help="validate all kernel and dataset metadata (offline)")
    check.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")

    build = sub.add_parser("build-dataset", help="our wheel + every wheel the Kaggle image lacks")
    build.add_argument("out", type=Path, help="folder to write (flat, with dataset-metadata.json)")
    _build_options(build)

    push = sub.add_parser("push", help="build, check, then kaggle datasets/kernels push")
    push.add_argument("--dry-run", action="store_true", help="print the commands only")
    push.add_argument("--work", type=Path, default=Path("build/kaggle_push"), help="staging folder")
    push.add_argument("--model", type=Path, help="also push this checkpoint as the model dataset")
    push.add_argument(
        "--kernels", nargs="*", help="kernel names to push (default: all, in chain order)"
    )
    push.add_argument("--message", default="rsna_pkg release", help="dataset version notes")
    push.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")
    _build_options(push)


def _build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python", default="3.11", help="Kaggle image Python (default 3.11)")
    parser.add_argument(
        "--platform",
        action="append",
        help=f"wheel platform tag, repeatable (default: {' '.join(DEFAULT_PLATFORMS)})",
    )
    parser.add_argument("--no-dali", action="store_true", help="leave out DALI (GPU decoding)")
    parser.add_argument("--cache", type=Path, help="download cache (default ~/.cache/rsna_pkg)")


def run(args: argparse.Namespace) -> int:
    from rsna_pkg.kaggle.paths import find_repo, load_config

    repo = find_repo(args.repo)
    cfg = load_config(repo, getattr(args, "owner", None))
    if args.kaggle_command == "render":
        from rsna_pkg.kaggle.render import render

        for path in render(repo, cfg):
            print(f"wrote {path.relative_to(repo)}")
        return 0
    if args.kaggle_command == "check":
        from rsna_pkg.kaggle.check import check_repo

        problems = check_repo(repo, cfg)
        for problem in problems:
            print(problem)
        print(f"rsna kaggle check: {len(problems)} problem(s)" if problems else "all checks passed")
        return 1 if problems else 0
    if args.kaggle_command == "build-dataset":
        from rsna_pkg.kaggle.build import build_dataset

        result = build_dataset(args.out, cfg, _options(args), repo=repo)
        print(result.summary())
        return 0
    from rsna_pkg.kaggle.push import push

    return push(
        repo, cfg, _options(args), args.work, args.dry_run, args.kernels, args.model, args.message
    )


def _options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        python=args.python,
        platforms=tuple(args.platform or DEFAULT_PLATFORMS),
        dali=not args.no_dali,
        cache=args.cache,
    )
