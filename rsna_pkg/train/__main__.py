"""`python -m rsna_pkg.train ...` == `rsna train ...`; the entry for torchrun:
`torchrun --nproc_per_node N -m rsna_pkg.train --data D --images I --out O ...`."""

from __future__ import annotations

import argparse
import sys

from rsna_pkg.errors import RsnaError
from rsna_pkg.train import command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsna train", description=command.__doc__)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except RsnaError as exc:
        print(f"rsna train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
