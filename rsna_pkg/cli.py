"""The ``rsna`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; those modules import heavy libraries (torch, DALI) inside
``run`` only, so ``rsna --help`` stays fast and import has no side effects.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rsna_pkg import __version__
from rsna_pkg.errors import RsnaError, one_line
from rsna_pkg.logs import configure

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("rsna_pkg.data.synth.command", "write a competition-shaped synthetic dataset"),
    "eda": ("rsna_pkg.eda.command", "metadata and image report with figures"),
    "preprocess": ("rsna_pkg.preprocess.command", "decode, window, crop and resize DICOMs to PNG"),
    "train": ("rsna_pkg.train.command", "train an image(+metadata) classifier"),
    "weights": (
        "rsna_pkg.models.weights_command",
        "convert foreign ImageNet weights for --pretrained",
    ),
    "compare": (
        "rsna_pkg.train.compare_command",
        "train several backbones on one split and rank them",
    ),
    "infer": ("rsna_pkg.infer.command", "offline inference to a per-breast submission.csv"),
    "replicate": (
        "rsna_pkg.kaggle.replicate_command",
        "replay the four Kaggle kernels locally (main job)",
    ),
    "kaggle": (
        "rsna_pkg.kaggle.command",
        "build the wheel dataset, check metadata, push to Kaggle",
    ),
    "bench": ("rsna_pkg.bench_command", "benchmarks: decode, train, infer"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the subcommand ``argv`` names has its module imported
    (and its arguments added), so ``rsna --help`` and a typo import nothing heavy."""
    parser = argparse.ArgumentParser(
        prog="rsna",
        description="RSNA Screening Mammography toolkit: synth, EDA, preprocessing, training, "
        "offline inference and Kaggle packaging.",
    )
    parser.add_argument("--version", action="version", version=f"rsna_pkg {__version__}")
    add_command_table(parser, COMMANDS, dest="command", metavar="COMMAND",
                      chosen=chosen_command(argv))  # fmt: skip
    return parser


def chosen_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand ``argv`` names: its first word that is no option (the top level has
    only --help and --version, which take no value), None when there is none."""
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if not word.startswith("-")), None)


def add_command_table(parser: argparse.ArgumentParser, table: dict[str, tuple[str, str]],
                      dest: str, metavar: str, chosen: str | None) -> None:  # fmt: skip
    """Add one subparser per table entry, by its one-line help; the ``chosen`` entry's
    module fills its own arguments and registers its ``run`` as ``args._run``."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    sub.required = True
    for name, (module_name, help_text) in table.items():
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__ or help_text)
        add_verbosity(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-q / -v on every command (``logs.configure``): how much progress it reports
    (``rsna kaggle`` and ``rsna bench`` take them before their action)."""
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    loud.add_argument("-v", "--verbose", action="store_true", help="debug detail too")


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """Every path option made absolute against the cwd the user typed it in, once, here:
    subcommands start processes in other folders (a kernel runs in its working/), where a
    relative path would name something else."""
    for key, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, key, Path(os.path.abspath(value)))
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Path) for v in value):
            setattr(args, key, type(value)(Path(os.path.abspath(v)) for v in value))
    return args


def run_command(name: str, run: Callable[[], int | None]) -> int:
    """Run a subcommand; expected failures become one line on stderr, never a traceback:
    bad input (RsnaError) and the environment (OSError: disk full, permissions; memory)
    exit 2, Ctrl-C exits 130."""
    try:
        return int(run() or 0)
    except (RsnaError, OSError) as exc:
        print(f"rsna {name}: error: {one_line(exc, 1000)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"rsna {name}: error: out of memory ({one_line(exc)})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = absolute_paths(parser.parse_args(argv))
    configure(int(getattr(args, "verbose", False)) - int(getattr(args, "quiet", False)))
    return run_command(args.command, lambda: args._run(args))


if __name__ == "__main__":
    raise SystemExit(main())
