"""Compressed frame bytes and what their first bytes say about them.

The codec is chosen by the magic bytes at the start of the frame (PS3.5 A.4 items hold one
codestream each), never by searching inside PixelData: the RSNA J2K frames are JP2-wrapped
(``00 00 00 0C 6A 50 20 20``) while the standard asks for a bare codestream (``FF 4F FF 51``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.errors import DicomError

JP2_MAGIC = b"\x00\x00\x00\x0cjP  "
J2K_MAGIC = b"\xff\x4f\xff\x51"
JPEG_MAGIC = b"\xff\xd8"

NATIVE_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
)
J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})
JPEG_LOSSLESS_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"})
RLE_SYNTAXES = frozenset({"1.2.840.10008.1.2.5"})


def sniff_codec(frame: bytes) -> str:
    """'jp2', 'j2k' or 'jpeg' from the first bytes; '' when unknown."""
    if frame.startswith(JP2_MAGIC):
        return "jp2"
    if frame.startswith(J2K_MAGIC):
        return "j2k"
    if frame.startswith(JPEG_MAGIC):
        return "jpeg"
    return ""


def first_frame(ds: Any, path: str | Path) -> bytes:
    """Bytes of frame 0 of an encapsulated PixelData (PS3.5 A.4)."""
    from pydicom.encaps import generate_frames

    if "PixelData" not in ds:
        raise DicomError(path, "no PixelData element")
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except StopIteration:
        raise DicomError(path, "encapsulated PixelData holds no frame") from None
    except Exception as exc:
        raise DicomError(path, f"bad encapsulated PixelData ({exc})") from exc
    if not frame:
        raise DicomError(path, "empty compressed frame")
    return bytes(frame)


def codestream_offset(frame: bytes) -> int:
    """Where the bare codestream starts: 0, or the contents of the JP2 'jp2c' box (no copy:
    frames are megabytes and only the main header is read here)."""
    if not frame.startswith(JP2_MAGIC):
        return 0
    pos = 0
    while pos + 8 <= len(frame):
        length, kind = struct.unpack_from(">I4s", frame, pos)
        header = 8
        if length == 1:
            (length,) = struct.unpack_from(">Q", frame, pos + 8)
            header = 16
        elif length == 0:
            length = len(frame) - pos
        if kind == b"jp2c":
            return pos + header
        if length < header:
            break
        pos += length
    raise ValueError("JP2 file without a 'jp2c' codestream box")


@dataclass(frozen=True)
class J2kInfo:
    """From the SIZ and COD markers (ISO 15444-1 A.5.1, A.6.1) of component 0."""

    width: int
    height: int
    precision: int  # bits per sample
    signed: bool
    components: int
    levels: int  # wavelet decomposition levels = deepest reduce OpenJPEG can do
    origin: tuple[int, int] = (0, 0)  # image offset on the reference grid (YOsiz, XOsiz)


def j2k_info(frame: bytes) -> J2kInfo:
    """Parse the main header of a J2K codestream (bare or JP2-wrapped)."""
    at = codestream_offset(frame)
    if frame[at : at + 4] != J2K_MAGIC or len(frame) < at + 45:
        raise ValueError("not a JPEG 2000 codestream")
    xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", frame, at + 8)
    (csiz,) = struct.unpack_from(">H", frame, at + 40)
    ssiz = frame[at + 42]
    levels = -1
    pos = at + 4 + struct.unpack_from(">H", frame, at + 4)[0]  # first marker after SIZ
    while pos + 4 <= len(frame) and levels < 0:
        marker, length = struct.unpack_from(">HH", frame, pos)
        if marker == 0xFF52:  # COD: Lcod, Scod, SGcod(4), then decomposition levels
            levels = frame[pos + 9]
        elif marker == 0xFF90:  # SOT: end of the main header
            break
        pos += 2 + length
    return J2kInfo(
        width=xsiz - xo,
        height=ysiz - yo,
        precision=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        components=csiz,
        levels=max(levels, 0),
        origin=(yo, xo),
    )


@dataclass(frozen=True)
class JpegInfo:
    """From the frame header SOFn of a JPEG (ITU T.81 B.2.2) or JPEG-LS (T.87 C.2.2) frame."""

    height: int  # 0: defined later by a DNL marker
    width: int
    precision: int
    components: int
    sof: int = 0xC3  # the SOFn marker's second byte: C3 = lossless, Huffman (process 14)


# SOFn markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC); F7 is JPEG-LS's SOF55.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def jpeg_segments(frame: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of its FF, segment length) of each marker after SOI, in order, fill
    bytes skipped (T.81 B.1.1.2), until the bytes end; the caller stops where it has what it
    needs (a segment's body is ``frame[offset + 4 : offset + 2 + length]``). ValueError
    where a marker should start and does not."""
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            raise ValueError(f"JPEG marker expected at byte {pos}")
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        yield marker, pos, length
        pos += 2 + length


def jpeg_info(frame: bytes) -> JpegInfo:
    """Parse the markers up to the first SOF of a JPEG / JPEG-LS codestream."""
    for marker, pos, _ in jpeg_segments(frame):
        if marker in SOF_MARKERS:
            if pos + 10 > len(frame):
                break
            precision = frame[pos + 4]
            height, width = struct.unpack_from(">HH", frame, pos + 5)
            return JpegInfo(height, width, precision, frame[pos + 9], marker)
    raise ValueError("no JPEG frame header (SOF) found")


def jpeg_precision(frame: bytes) -> int:
    """Sample precision P of a JPEG frame header SOFn (ITU T.81 B.2.2)."""
    return jpeg_info(frame).precision


def frame_geometry(frame: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, precision, components) the codestream itself declares; None for a
    codec whose header is not parsed here (RLE, unknown). Raises ValueError when the
    header of a recognised codec is mangled."""
    codec = sniff_codec(frame)
    if codec in ("jp2", "j2k"):
        info = j2k_info(frame)
        return info.height, info.width, info.precision, info.components
    if codec == "jpeg":
        jinfo = jpeg_info(frame)
        return jinfo.height, jinfo.width, jinfo.precision, jinfo.components
    return None


def frame_mismatch(frame: bytes, header: DicomHeader) -> str:
    """Why the codestream cannot be the image the header describes ('' when it can).

    Decoders size their output from one and fill it from the other: a header smaller than
    the codestream has crashed dicomsdl (heap corruption), a larger one has come back as a
    silently padded image. PS3.5 8.2 asks both to agree.
    """
    try:
        geometry = frame_geometry(frame)
    except (ValueError, IndexError, struct.error) as exc:
        return f"mangled codestream header ({exc})"
    if geometry is None:
        return ""
    height, width, precision, components = geometry
    rows, columns = header.rows, header.columns
    if height not in (0, rows) or width != columns:
        return (f"codestream is {height}x{width} pixels but the header says "
                f"Rows x Columns = {rows}x{columns}")  # fmt: skip
    if components != header.samples_per_pixel:
        return (f"codestream has {components} components, header SamplesPerPixel="
                f"{header.samples_per_pixel}")  # fmt: skip
    if precision > header.bits_allocated:
        return f"codestream precision {precision} bits > BitsAllocated={header.bits_allocated}"
    return ""
