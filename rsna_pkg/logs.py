"""The one progress and logging path: library modules report with
``logging.getLogger(__name__)`` (progress bars are tqdm, drawn only when INFO is on); the
CLI picks how much is shown (``-q`` warnings only, ``-v`` debug too) with ``configure``.

Nothing is configured on import: a program that uses the library sets up logging its own
way, or calls ``configure``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

ROOT = "rsna_pkg"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each record, not at setup: a caller that
    redirects it later (pytest's capture, a kernel's log file) still gets the lines."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(verbosity: int = 0) -> None:
    """Show the package's messages on stderr, as they are (each carries its own prefix):
    ``verbosity`` < 0 warnings only, 0 progress too, > 0 debug detail. Calling it again
    replaces the earlier setting."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def progress_shown() -> bool:
    """Whether progress (INFO, tqdm bars) is wanted: not under ``-q``."""
    return logging.getLogger(ROOT).getEffectiveLevel() <= logging.INFO
