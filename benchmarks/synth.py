"""Measure `rsna synth`: images/s, file sizes per machine, and the syntax/VOI mix.

rsna bench synth --scale small --patients 40 --workers 2
rsna bench synth --scale full --patients 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from rsna_pkg.data.synth import SynthConfig, generate
from rsna_pkg.data.synth.machines import MACHINES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        cfg = SynthConfig(args.patients, args.seed, args.scale, workers=args.workers, progress=True)
        summary = generate(out, cfg)
        print("\n".join(summary.lines()))
        tables = [pd.read_csv(out / "train.csv").assign(split="train"),
                  pd.read_csv(out / "test.csv").assign(split="test")]  # fmt: skip
        df = pd.concat(tables)
        df["bytes"] = [
            (out / f"{s}_images" / str(p) / f"{i}.dcm").stat().st_size
            for s, p, i in zip(df.split, df.patient_id, df.image_id, strict=True)
        ]
        per = df.groupby("machine_id").agg(images=("image_id", "size"), mean_mb=("bytes", "mean"))
        per["mean_mb"] = (per["mean_mb"] / 1e6).round(2)
        per["profile"] = [
            f"{MACHINES[m].codec} {MACHINES[m].photometric} {MACHINES[m].bits_stored}b "
            f"{'x'.join(map(str, MACHINES[m].shape(args.scale)))} {MACHINES[m].voi_kind}"
            for m in per.index
        ]
        print(per.to_string())
        n = len(df)
        print(
            f"per image: {summary.seconds / n * 1000:.0f} ms wall, {df.bytes.mean() / 1e6:.2f} MB mean"
        )
    return 0


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["synth", *sys.argv[1:]]))
