"""The one interface every decode backend implements, and the registry of backends.

A backend declares which transfer syntaxes it supports by design (``syntaxes``) and whether
it can decode JPEG 2000 resolution levels itself (``native_reduce``); callers never probe
with try/except. Backends return full-resolution stored values when they cannot reduce.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rsna_pkg.dicom.frames import J2K_SYNTAXES, NATIVE_SYNTAXES
from rsna_pkg.dicom.header import DicomHeader


@dataclass
class Decoded:
    """A backend's output: ``array`` already at ``reduce`` when ``reduced`` is True."""

    array: np.ndarray
    reduced: bool
    note: str = ""  # e.g. why a native reduce fell back to a full decode


class Backend(Protocol):
    name: str

    def available(self) -> bool:
        """Its libraries import here."""
        ...

    def syntaxes(self) -> frozenset[str]:
        """Transfer syntax UIDs it decodes by design."""
        ...

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        """Stored values (header dtype, signedness applied) of frame 0."""
        ...


# name -> module holding a ``BACKEND`` object. Order = preference of "auto" (after the
# per-syntax preferences below).
BACKEND_MODULES: dict[str, str] = {
    "dicomsdl": "rsna_pkg.dicom.dicomsdl_backend",
    "openjpeg": "rsna_pkg.dicom.openjpeg_backend",
    "pydicom": "rsna_pkg.dicom.pydicom_backend",
    "dali": "rsna_pkg.dicom.dali_backend",
    "nvimgcodec": "rsna_pkg.dicom.nvimgcodec_backend",
}

# "auto" picks the first available backend of these that supports the syntax. Measured in
# `rsna bench decode`: dicomsdl is the fastest full decode of J2K and JPEG lossless; a
# reduced J2K decode straight from the resolution levels (openjpeg) beats any full decode.
# The batch GPU decoders (dali, nvimgcodec) are chosen by inference's runtime, never per file.
AUTO_FULL: tuple[str, ...] = ("dicomsdl", "openjpeg", "pydicom")
AUTO_REDUCED_J2K: tuple[str, ...] = ("openjpeg", "dicomsdl", "pydicom")
AUTO_NATIVE: tuple[str, ...] = ("pydicom", "dicomsdl")


def get_backend(name: str) -> Backend:
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown decode backend {name!r}; known: {', '.join(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def available_backends() -> list[str]:
    """Names of the backends whose libraries import here (dali only with nvidia-dali,
    nvimgcodec only with nvidia-nvimgcodec)."""
    return [name for name in BACKEND_MODULES if get_backend(name).available()]


def choose_backend(header: DicomHeader, reduce: int) -> Backend | None:
    """The fastest available backend for this file's syntax (None: nothing supports it)."""
    tsuid = header.transfer_syntax_uid
    if tsuid in NATIVE_SYNTAXES:
        order = AUTO_NATIVE
    elif tsuid in J2K_SYNTAXES and reduce > 0:
        order = AUTO_REDUCED_J2K
    else:
        order = AUTO_FULL
    for name in order:
        backend = get_backend(name)
        if backend.available() and tsuid in backend.syntaxes():
            return backend
    return None
