"""Test-time augmentation measured: breast-level AUC and pF1 of one checkpoint with each
``--tta`` mode, on a labelled split (``--split train`` of a dataset the model never saw,
e.g. ``rsna synth`` with another seed). The same inference code as ``rsna infer``.

rsna bench tta --data DIR --model model.pt [--split train]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="labelled dataset folder")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to score with")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--modes", nargs="+", default=["none", "vflip", "hflip"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rsna_pkg.data.schema import prediction_ids, read_table
    from rsna_pkg.infer.devices import Runtime
    from rsna_pkg.infer.inference import infer
    from rsna_pkg.infer.options import InferOptions
    from rsna_pkg.metrics import best_threshold, roc_auc

    truth = read_table(args.data / f"{args.split}.csv", "train")
    truth["prediction_id"] = prediction_ids(truth)
    labels = truth.groupby("prediction_id")["cancer"].max()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            opts = InferOptions(data=args.data, models=(args.model,), out=Path(tmp, f"{mode}.csv"),
                                split=args.split, threshold="none", tta=mode,
                                batch_size=args.batch_size)  # fmt: skip
            infer(opts, Runtime(device="cpu", backend="cpu"))
            sub = pd.read_csv(opts.out).set_index("prediction_id")["cancer"]
            y = labels.reindex(sub.index)
            best = best_threshold(y.to_numpy(), sub.to_numpy())
            results[mode] = {"auc": round(float(roc_auc(y, sub)), 4),
                             "pf1_best": round(best.pf1, 4), "threshold": round(best.threshold, 3)}  # fmt: skip
            print(
                f"tta {mode:<6} breast AUC {results[mode]['auc']:.4f}  "
                f"best pF1 {results[mode]['pf1_best']:.4f} @ {results[mode]['threshold']:.3f}"
            )
    print(f"{len(labels)} breasts, {int(labels.sum())} positive")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    from rsna_pkg.bench_command import main

    raise SystemExit(main(["tta", *sys.argv[1:]]))
