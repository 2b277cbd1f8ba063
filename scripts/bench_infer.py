"""Thin wrapper: ``python scripts/bench_infer.py [options]`` == ``rsna bench infer``."""

import argparse
import sys

from rsna_pkg.infer import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench_infer", description=bench.__doc__)
    bench.add_arguments(parser)
    sys.exit(bench.run(parser.parse_args()))
