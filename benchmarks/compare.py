"""The seed's backbone study as a benchmark: `rsna compare --study notebooks` on a given
dataset and size, then its table printed and written as JSON with the run's wall time.

Every option is `rsna compare`'s (``--study notebooks`` unless ``--backbones`` is given);
``--json`` also writes the rows. Run it on the realistic set (`rsna synth --difficulty
realistic`, then `rsna preprocess`), with ``--pretrained-dir`` for transfer learning.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rsna_pkg.train import compare_command

    compare_command.add_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rsna_pkg.train import compare_command
    from rsna_pkg.train.history import write_json

    if args.backbones is None and args.study is None:
        args.study = "seed"
    start = time.perf_counter()
    compare_command.run(args)
    seconds = time.perf_counter() - start
    out = Path(args.out)
    print((out / "comparison.md").read_text())
    print(f"study wall time: {seconds:.0f} s  ({out / 'comparison.png'})")
    if args.json:
        table = pd.read_csv(out / "comparison.csv")
        write_json(args.json, {
            "study": args.study or args.backbones, "size": f"{args.size[0]}x{args.size[1]}",
            "epochs": args.epochs, "seconds": round(seconds, 1),
            "rows": table.to_dict(orient="records"),
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["compare", *sys.argv[1:]]))
