"""``compiled(fn)``: a plain-Python kernel compiled by numba, where numba is installed.

numba is optional (the ``numba`` extra; Kaggle's image has it). The package's kernels are
written as plain functions of arrays and scalars, so each one also runs, slowly, without it
and every caller keeps a library route that gives the same result where it returns None.
Compiled on first use and cached on disk beside the module (numba's cache: a few tenths of
a second per process after the first compile).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def compiled(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """``fn`` through ``numba.njit`` (no GIL, no bounds checks: the callers size every
    array), or None where numba does not import."""
    try:
        import numba
    except ImportError:
        return None

    kernel: Callable[..., Any] = numba.njit(cache=True, nogil=True, boundscheck=False)(fn)
    return kernel
