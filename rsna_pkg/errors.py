"""Exception types of the package.

Every error a user can cause by bad input is one of these, and its message names
the file or column at fault and the reason, so the CLI can print it on one line.
"""

from __future__ import annotations

from pathlib import Path

# Longest reason kept: library messages (torch's unpickler, pydicom) can run to pages.
MAX_REASON = 300


def one_line(text: object, limit: int = MAX_REASON) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space,
    cut to ``limit`` characters: how a reason is written into a report line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, for an exception from a library we do not control."""
    return one_line(f"{type(exc).__name__}: {exc}")


class RsnaError(Exception):
    """Base class: an expected failure caused by input, printed without a traceback."""


class InputError(RsnaError):
    """A CSV, folder or argument the user gave is unusable."""


class OutputError(RsnaError):
    """An output cannot be written (disk full, no permission); nothing half-written is left."""


class DicomError(RsnaError):
    """A DICOM file cannot be read or decoded. ``path`` and ``reason`` are kept separately
    so that runners can record them in a manifest; the reason is always one line."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")
