"""Replay the four Kaggle kernels locally before pushing them (the main job).

Generates a small synthetic competition dataset (or uses --data, a real download), builds
the offline wheel dataset, makes a clean environment holding only what the Kaggle image
provides, then runs eda, preprocess, train and inference exactly as pushed: each its own
process and simulated /kaggle (input read-only, outputs chained through kernel_sources,
internet off per metadata, rsna_pkg installed with pip --no-index). Ends by checking
submission.csv against test.csv and printing the time of each kernel.

With --data on the real competition set, keep preprocessing short, e.g.
--set 'preprocess=--size 256 128 --workers 2 --neg-ratio 1 --limit 800 --quiet'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsna_pkg.kaggle.build import add_decoder_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay's own options, and the command-line fields of ReplayOptions."""
    from rsna_pkg.cli_options import add_config_options
    from rsna_pkg.kaggle.replay import ReplayOptions

    parser.add_argument("--data", type=Path, help="competition folder (default: synthetic)")
    parser.add_argument(
        "--work", type=Path, help="work folder, kept (default: a temporary one, removed)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    add_decoder_argument(parser)
    add_config_options(parser, ReplayOptions)
    parser.add_argument(
        "--kernels", nargs="+", default=None, help="run only these (in chain order)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KERNEL=ARGS",
        help="replace a kernel's replay arguments, e.g. --set 'preprocess=--size 128 64 --quiet'",
    )  # fmt: skip
    parser.add_argument("--repo", type=Path, help="repository root (default: found from cwd)")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="Kaggle image manifest (default: the packaged kaggle_image.txt)",
    )


def run(args: argparse.Namespace) -> int:
    """The command; a setting the library refuses is named by its flag (``FieldError``)."""
    from rsna_pkg.cli_options import flags_in_errors
    from rsna_pkg.kaggle.replay import ReplayOptions

    with flags_in_errors(ReplayOptions):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from rsna_pkg.cli_options import config_kwargs
    from rsna_pkg.errors import InputError
    from rsna_pkg.kaggle.build import BuildOptions
    from rsna_pkg.kaggle.paths import KERNEL_ORDER, find_repo, load_config
    from rsna_pkg.kaggle.replay import SMALL_SETTINGS, ReplayOptions, replay

    repo = find_repo(args.repo)
    cfg = load_config(repo)
    settings = dict(SMALL_SETTINGS)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in KERNEL_ORDER:
            raise InputError(f"--set {item!r}: expected KERNEL=ARGS, KERNEL in {KERNEL_ORDER}")
        settings[name] = value
    kernels = tuple(k for k in KERNEL_ORDER if args.kernels is None or k in args.kernels)
    if args.kernels and set(args.kernels) - set(KERNEL_ORDER):
        raise InputError(f"--kernels: choose from {', '.join(KERNEL_ORDER)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="rsna_replay_"))
    # The kernels run on this interpreter (sandbox.python_warning says so when it is not the
    # image's), so the replay's wheels are for it; `rsna kaggle check` proves the image's own.
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    build = BuildOptions(python=py, decoder=args.decoder, manifest=args.manifest)
    opts = ReplayOptions(work=work, data=args.data, kernels=kernels, settings=settings,
                         build=build, **config_kwargs(args, ReplayOptions))  # fmt: skip
    result = replay(repo, cfg, opts)
    print(result.summary())
    if args.work is None and not args.keep:
        from rsna_pkg.kaggle.replay import make_writable

        make_writable(work)
        shutil.rmtree(work)
        print(f"removed {work} (use --keep or --work to keep it)")
    return 0
