"""The one interface every decoder implements, and the one registry of decoders.

A decoder declares what it can do (:class:`Capabilities`): the transfer syntaxes it decodes
by design, whether it decodes JPEG 2000 resolution levels itself (and a window of one alone),
whether it decodes batches (the GPU decoders, chosen by inference's runtime, never per file),
where it runs, and what a megapixel costs it per syntax as measured by ``rsna bench decode``.
``auto`` picks per file from those declarations alone (:func:`candidates`); callers never
probe with try/except.

A decoder may still decline one file by design, from the frame's own header, before decoding
(:class:`Declined`: e.g. a JPEG frame whose height comes later in a DNL marker, which
libjpeg-turbo does not read): ``auto`` then hands the file to the next candidate, while a
decoder chosen by name turns the reason into a DicomError.

Adding a CPU decoder: one module defining ``DECODER`` (this interface) and one line in
:data:`DECODERS`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rsna_pkg.dicom.frames import J2K_SYNTAXES
from rsna_pkg.dicom.header import DicomHeader


@dataclass
class Decoded:
    """A decoder's output: ``array`` already at ``reduce`` when ``reduced`` is True."""

    array: np.ndarray
    reduced: bool
    note: str = ""  # e.g. why a native reduce fell back to a full decode


class Declined(Exception):  # noqa: N818 - a decision, not a failure
    """Raised by ``decode`` before any decoding when the file is outside what the decoder
    takes by design; ``auto`` moves on to the next candidate."""


@dataclass(frozen=True)
class Capabilities:
    syntaxes: frozenset[str]  # transfer syntax UIDs decoded by design
    levels: bool = False  # decodes J2K resolution levels straight from the codestream
    windows: bool = False  # decodes a window of such a level alone (WindowDecoder)
    batch: bool = False  # a batch decoder (inference's runtime picks it, not per-file auto)
    device: str = "cpu"  # "cpu", or "gpu" (GPU when CUDA is usable, else its CPU codecs)
    # measured CPU ms per megapixel of a full-resolution decode, per syntax (rsna bench
    # decode, one core); a syntax missing here costs `inf` and is chosen last.
    ms_per_mpx: Mapping[str, float] = field(default_factory=dict)

    def cost(self, syntax: str, reduce: int) -> float:
        """Expected ms/Mpx of a decode at level ``reduce`` (for ranking only). A decoder
        with resolution levels decodes a J2K level r for about a third of level r - 1's
        cost (measured 3.6x per level at levels 1-2); the others decode full resolution."""
        ms = self.ms_per_mpx.get(syntax, float("inf"))
        if self.levels and syntax in J2K_SYNTAXES:
            ms /= 3.0**reduce
        return ms


def per_syntax(groups: Iterable[tuple[frozenset[str], float]]) -> dict[str, float]:
    """{uid: ms} from (syntaxes, ms) groups."""
    return {uid: ms for uids, ms in groups for uid in uids}


class Decoder(Protocol):
    name: str

    def capabilities(self) -> Capabilities:
        """What it decodes and how (cheap: no heavy import)."""
        ...

    def available(self) -> bool:
        """Its libraries import here."""
        ...

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        """Stored values (header dtype, signedness applied) of frame 0, full resolution
        unless ``capabilities().levels``. Raises Declined for a file it takes not by design."""
        ...


@runtime_checkable
class FrameDecoder(Decoder, Protocol):
    """A decoder of frame bytes already in memory (read and checked once by the caller).
    Every decoder with ``capabilities().levels`` is one, so a caller decodes one file at
    two levels reading it once."""

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int) -> Decoded: ...


@runtime_checkable
class WindowDecoder(FrameDecoder, Protocol):
    """A decoder with ``capabilities().windows``: decodes only ``window`` = (y0, x0, y1, x1),
    in the pixels of level ``reduce``, and returns exactly those pixels of the whole level.
    Raises Declined for a frame it cannot window (the caller decodes the whole level)."""

    def decode_window(self, frame: bytes, header: DicomHeader, reduce: int,
                      window: tuple[int, int, int, int]) -> Decoded: ...  # fmt: skip


class ReadsFrame(ABC):
    """Base of a decoder of frame bytes (``FrameDecoder``): ``decode(path, ...)`` reads frame 0
    once, bounded by the header, and hands it to the subclass's ``decode_frame``."""

    def decode(self, path: Path, header: DicomHeader, reduce: int) -> Decoded:
        from rsna_pkg.dicom.pixeldata import read_frame

        return self.decode_frame(read_frame(path, header), header, reduce)

    @abstractmethod
    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int = 0) -> Decoded:
        """Stored values of ``frame`` (see :class:`Decoder`)."""


def importable(module: str) -> bool:
    """Whether ``module`` imports here (a decoder's ``available``)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def imagecodecs_has(codec: str) -> bool:
    """Whether imagecodecs imports here and was built with ``codec`` (e.g. "JPEG8")."""
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(imagecodecs, codec).available)


# The registry: name -> module holding a ``DECODER``. Order breaks ties in ``auto``.
DECODERS: dict[str, str] = {
    "dicomsdl": "rsna_pkg.dicom.dicomsdl_backend",
    "libjpeg-turbo": "rsna_pkg.dicom.libjpeg_turbo_backend",
    "numba-ljpeg": "rsna_pkg.dicom.numba_ljpeg_backend",
    "openjpeg": "rsna_pkg.dicom.openjpeg_backend",
    "imagecodecs-rle": "rsna_pkg.dicom.rle_backend",
    "pydicom": "rsna_pkg.dicom.pydicom_backend",
    "dali": "rsna_pkg.dicom.dali_backend",
    "nvimgcodec": "rsna_pkg.dicom.nvimgcodec_backend",
}
AUTO = "auto"  # the package chooses: per syntax on the CPU, the batch decoder at inference
CPU = "cpu"  # the CPU decoders, chosen per syntax (inference: DataLoader workers)
CHOICES: tuple[str, ...] = (AUTO, CPU, *DECODERS)  # the one vocabulary of --decoder


def get_decoder(name: str) -> Decoder:
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; known: {', '.join(DECODERS)}")
    decoder: Decoder = importlib.import_module(DECODERS[name]).DECODER
    return decoder


def available_decoders(batch: bool | None = None) -> list[str]:
    """Names of the decoders whose libraries import here (``batch``: only those whose
    ``capabilities().batch`` equals it)."""
    out = []
    for name in DECODERS:
        decoder = get_decoder(name)
        if batch is not None and decoder.capabilities().batch != batch:
            continue
        if decoder.available():
            out.append(name)
    return out


def candidates(header: DicomHeader, reduce: int) -> list[Decoder]:
    """The available per-file decoders supporting this file's syntax, cheapest first by their
    declared cost at level ``reduce`` (``auto`` tries them in this order)."""
    tsuid = header.transfer_syntax_uid
    found = []
    for i, name in enumerate(DECODERS):
        decoder = get_decoder(name)
        caps = decoder.capabilities()
        if caps.batch or tsuid not in caps.syntaxes or not decoder.available():
            continue
        found.append((caps.cost(tsuid, reduce), i, decoder))
    return [d for _, _, d in sorted(found, key=lambda t: t[:2])]


def choose_decoder(header: DicomHeader, reduce: int) -> Decoder | None:
    """The decoder ``auto`` tries first for this file (None: nothing supports its syntax)."""
    found = candidates(header, reduce)
    return found[0] if found else None


available_backends = available_decoders  # the earlier name
