"""Exception types of the package.

Every error a user can cause by bad input is one of these, and its message names
the file or column at fault and the reason, so the CLI can print it on one line.
"""

from __future__ import annotations

from pathlib import Path


class RsnaError(Exception):
    """Base class: an expected failure caused by input, printed without a traceback."""


class InputError(RsnaError):
    """A CSV, folder or argument the user gave is unusable."""


class DicomError(RsnaError):
    """A DICOM file cannot be read or decoded. ``path`` and ``reason`` are kept separately
    so that runners can record them in a manifest."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
