"""Thin wrapper: ``python scripts/bench_decode.py --data DIR`` == ``rsna bench decode``."""

import argparse
import sys

from rsna_pkg.preprocess import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench_decode", description=bench.__doc__)
    bench.add_arguments(parser)
    sys.exit(bench.run(parser.parse_args()))
