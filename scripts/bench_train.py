"""Thin wrapper: `python scripts/bench_train.py [options]` == `rsna bench train [options]`."""

import argparse

from rsna_pkg.train import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=bench.__doc__)
    bench.add_arguments(parser)
    raise SystemExit(bench.run(parser.parse_args()))
