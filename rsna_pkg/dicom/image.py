"""``open_image(path) -> DicomImage``: one DICOM file, read once, decoded at any resolution level.

A DicomImage holds the header (read without pixels) and, when a reduced decode is asked of a
JPEG 2000 file, the first frame's bytes. ``decode(reduce, backend)`` returns the stored values
at level ``reduce`` (each side ``ceil(n / 2**reduce)``): straight from the codestream's wavelet
levels where the decoder declares it can (``Capabilities.levels``), else from one
full-resolution decode, kept for the next call, and an area mean. ``decode_window`` returns
the same values for a window of a level only, decoding just that window where the decoder
declares ``Capabilities.windows``. Callers (preprocessing) ask for levels and windows; which
library decodes, and how, stays in rsna_pkg.dicom.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsna_pkg.dicom.backend import Declined, Decoded, FrameDecoder, WindowDecoder
from rsna_pkg.dicom.decode import (
    check_decodable,
    check_frame,
    decode_file,
    finish,
    resolve_backend,
)
from rsna_pkg.dicom.frames import J2K_SYNTAXES, j2k_info
from rsna_pkg.dicom.header import DicomHeader, read_header
from rsna_pkg.dicom.pixeldata import read_frame
from rsna_pkg.dicom.pixels import AreaPyramid
from rsna_pkg.errors import DicomError, describe

MAX_REDUCE = 5  # OpenJPEG's default number of decomposition levels


@dataclass
class Level:
    """Stored values at one resolution level, and how they were obtained."""

    array: np.ndarray
    backend: str
    native: bool  # decoded straight from the codestream's resolution levels
    seconds: float
    window: bool = False  # only a window of the level was decoded (decode_window)


@dataclass
class DicomImage:
    path: Path
    header: DicomHeader
    _frame: bytes | None = field(default=None, repr=False)
    _full: Decoded | None = field(default=None, repr=False)  # a full decode, once one was made
    _full_backend: str = ""
    _pyramid: AreaPyramid | None = field(default=None, repr=False)  # area means of _full
    _j2k_levels: int | None = field(default=None, repr=False)
    window_note: str = ""  # why the last decode_window fell back to the whole level

    def levels(self, backend: str = "auto") -> int:
        """How many resolution levels ``decode`` can take straight from the codestream with
        this backend (0: every level comes from a full decode)."""
        if self._level_decoder(backend) is None:
            return 0
        return self.j2k_levels

    def _level_decoder(self, backend: str) -> FrameDecoder | None:
        """The decoder ``backend`` stands for at a reduced level, when it decodes J2K
        resolution levels itself (None otherwise)."""
        if self.header.transfer_syntax_uid not in J2K_SYNTAXES:
            return None
        decoder = resolve_backend(self.header, backend, 1)
        if not decoder.capabilities().levels:
            return None
        assert isinstance(decoder, FrameDecoder), f"{decoder.name} declares levels"
        return decoder

    @property
    def frame(self) -> bytes:
        """Frame 0's encapsulated bytes, checked against the header (read on first use)."""
        if self._frame is None:
            check_decodable(self.header)
            frame = read_frame(self.path, self.header)
            check_frame(self.header, frame)
            self._frame = frame
        return self._frame

    @property
    def j2k_levels(self) -> int:
        """Resolution levels of the JPEG 2000 codestream (at most MAX_REDUCE; parsed once)."""
        if self._j2k_levels is None:
            try:
                self._j2k_levels = min(MAX_REDUCE, j2k_info(self.frame).levels)
            except DicomError:
                raise
            except Exception as exc:  # struct.error, IndexError, ValueError on a mangled header
                raise DicomError(self.path, f"bad JPEG 2000 main header ({exc})") from exc
        return self._j2k_levels

    def decode(self, reduce: int = 0, backend: str = "auto", native: bool = True) -> Level:
        """Stored values at level ``reduce``; ``native=False`` always goes through one full
        decode (the route when reduced decoding is switched off). Raises DicomError."""
        start = time.perf_counter()
        level_decoder = self._codestream_decoder(backend, native)
        if level_decoder is not None:
            arr, name = self._from_codestream(level_decoder, reduce), level_decoder.name
            straight = self._full is None and reduce > 0
        else:
            arr, name = self._area_pyramid(backend).level(reduce), self._full_backend
            straight = False
        return Level(arr, name, straight, time.perf_counter() - start)

    def _codestream_decoder(self, backend: str, native: bool) -> FrameDecoder | None:
        """The decoder that takes levels straight from the codestream (None: every level is
        an area mean of one full decode)."""
        decoder = self._level_decoder(backend) if native else None
        return decoder if decoder is not None and self.j2k_levels > 0 else None

    def _area_pyramid(self, backend: str) -> AreaPyramid:
        """Area means of one full-resolution decode (made on first use, then kept)."""
        if self._full is None:
            result = decode_file(self.path, backend, 0, header=self.header)
            self._full = Decoded(result.array, reduced=False)
            self._full_backend = result.backend
        if self._pyramid is None:
            self._pyramid = AreaPyramid(self._full.array)
        return self._pyramid

    def decode_window(self, reduce: int, window: tuple[int, int, int, int],
                      backend: str = "auto", native: bool = True) -> Level:  # fmt: skip
        """Pixels ``window`` = (y0, x0, y1, x1) of level ``reduce``: the values of
        ``decode(reduce, backend, native)[y0:y1, x0:x1]``. Where the level decoder declares
        ``windows``, only the window is decoded; where it declines or fails (``window_note``
        says why), the whole level is decoded and cropped. Where levels are area means of a
        full decode, only the window's means are computed. Raises DicomError."""
        start = time.perf_counter()
        self.window_note = ""
        decoder = self._codestream_decoder(backend, native)
        if decoder is None:  # area means of the window alone
            arr = self._area_pyramid(backend).window(reduce, window)
            return Level(arr, self._full_backend, False, time.perf_counter() - start)
        if decoder.capabilities().windows and self._full is None:
            assert isinstance(decoder, WindowDecoder), f"{decoder.name} declares windows"
            try:
                out = decoder.decode_window(self.frame, self.header, reduce, window)
                seconds = time.perf_counter() - start
                return Level(out.array, decoder.name, reduce > 0, seconds, window=True)
            except DicomError:
                raise
            except Declined as exc:
                self.window_note = f"declined: {exc}"
            except Exception as exc:  # the whole level may still decode: same errors as before
                self.window_note = f"{decoder.name} window failed ({describe(exc)})"
        level = self.decode(reduce, backend, native)
        y0, x0, y1, x1 = window
        seconds = time.perf_counter() - start
        return Level(level.array[y0:y1, x0:x1], level.backend, level.native, seconds)

    def _from_codestream(self, decoder: FrameDecoder, reduce: int) -> np.ndarray:
        if self._full is not None:  # Pillow already had to fall back to a full decode
            return finish(self._full, self.header, reduce)
        try:
            out = decoder.decode_frame(self.frame, self.header, reduce)
        except DicomError:
            raise
        except Exception as exc:
            raise DicomError(self.path, f"{decoder.name} decode failed ({describe(exc)})") from exc
        if not out.reduced:
            self._full = out
        return finish(out, self.header, reduce)


def open_image(path: str | Path) -> DicomImage:
    """The header of ``path`` (no pixel data read yet); DicomError if it is no DICOM."""
    path = Path(path)
    return DicomImage(path, read_header(path))
