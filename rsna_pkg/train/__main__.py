"""`python -m rsna_pkg.train ...` == `rsna train ...`; the entry for torchrun:
`torchrun --nproc_per_node N -m rsna_pkg.train --data D --images I --out O ...`."""

from __future__ import annotations

import argparse

from rsna_pkg.cli import absolute_paths, add_verbosity, run_command
from rsna_pkg.logs import configure
from rsna_pkg.train import command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsna train", description=command.__doc__)
    add_verbosity(parser)
    command.add_arguments(parser)
    args = absolute_paths(parser.parse_args(argv))
    configure(int(args.verbose) - int(args.quiet))
    return run_command("train", lambda: command.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
