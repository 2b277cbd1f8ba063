"""Checks every command makes at its edge, once, before any work: numeric option types,
the cap on worker processes, and outputs that would overwrite an input or each other.

A bad value is refused where it is typed (an argparse usage error naming the option),
never discovered later as a traceback from deep inside a run.
"""

from __future__ import annotations

import os
from argparse import ArgumentTypeError
from collections.abc import Callable, Mapping
from pathlib import Path

from rsna_pkg.config_fields import in_bounds, interval
from rsna_pkg.errors import InputError


def number(
    lo: float, hi: float, *, integer: bool = False, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [lo, hi] (``lo_open`` / ``hi_open``
    exclude an end).

    ``float("nan")`` and ``float("inf")`` parse, so argparse's plain ``type=float`` lets
    them through to the optimiser; argparse turns the ArgumentTypeError raised here into
    ``rsna CMD: error: argument --lr: ...`` and exit 2 (a ValueError's text it drops)."""
    span = interval((lo, hi), lo_open, hi_open)
    kind = "an integer" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value: float = int(text) if integer else float(text)
        except ValueError:
            raise ArgumentTypeError(f"must be {kind} in {span}, got {text!r}") from None
        if not in_bounds(value, (lo, hi), lo_open, hi_open):
            raise ArgumentTypeError(f"must be {kind} in {span}, got {text}")
        return value

    return parse


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [lo, hi]."""
    return number(lo, hi, integer=True)  # type: ignore[return-value]


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which a container or taskset
    narrows; ``os.cpu_count`` counts the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cap_workers(requested: int, cores: int, items: int | None = None) -> int:
    """Worker processes worth starting: no more than the cores (more only contend, and
    each holds its own decoder buffers: 10,000 asked-for workers ran a machine out of
    memory) nor than the items to share out (None: not known yet). 0 stays 0 (work in
    the main process); at least one item's worth is kept when there are none."""
    limit = cores if items is None else min(cores, max(items, 1))
    return max(0, min(requested, limit))


def capped_workers(option: str, requested: int, items: int | None = None,
                   what: str = "items") -> tuple[int, str]:  # fmt: skip
    """(workers, one line saying they were capped and why; '' when they were not)."""
    cores = usable_cores()
    workers = cap_workers(requested, cores, items)
    if workers == requested:
        return workers, ""
    counted = "" if items is None else f", {items} {what}"
    return workers, f"{option} {requested} capped to {workers} ({cores} usable cores{counted})"


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through symlinks, ``..`` and hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet: then only the names can match
        return False


def check_outputs(outputs: Mapping[str, Path], inputs: Mapping[str, Path]) -> None:
    """InputError when an output would overwrite an input or another output of the run.
    Keys are what the user typed them as (``--out``, ``--report``, ``test.csv``)."""
    names = list(outputs.items())
    for k, (name, path) in enumerate(names):
        for other, other_path in names[k + 1 :]:
            if same_file(path, other_path):
                raise InputError(f"{name} {path}: the same file as {other}; "
                                 "each output needs its own path")  # fmt: skip
        for what, source in inputs.items():
            if same_file(path, source):
                raise InputError(f"{name} {path} is the input {what}: it would be "
                                 "overwritten; choose another path")  # fmt: skip
