"""matplotlib for every figure the package draws (EDA, training curves, comparisons).

The Agg backend is chosen on first use, not at import, so importing the package never
touches a display or matplotlib's global state.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it as usual.

    Importing a C extension is not interrupt-safe: a KeyboardInterrupt raised while
    matplotlib's ft2font initialises surfaces as ``ImportError: initialization failed``
    (a traceback, exit 1) and can crash the interpreter at exit. Training imports
    matplotlib for its first curves.png after epoch 1, exactly when a user presses Ctrl-C.
    Only the main thread may install signal handlers; elsewhere this holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, None)


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    with interrupts_held():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt
