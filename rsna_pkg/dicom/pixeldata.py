"""PixelData read no further than the header allows.

A frame's bytes are bounded by its header: Rows x Columns x SamplesPerPixel x
BitsAllocated/8 for native data (PS3.5 8.1.1, plus the pad byte to an even length), or a
codestream of about that size for an encapsulated one (PS3.5 A.4). pydicom reads whatever
the length fields claim: a native length of 1.5e9 over a sparse file cost 3.3 GB, a J2K
fragment padded to 1.5 GB kept a worker busy for minutes. Here each length is compared
with the bound before a byte of its value is read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from rsna_pkg.dicom.frames import NATIVE_SYNTAXES, first_frame
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.inflate import HEADER_INFLATE_LIMIT, open_dataset
from rsna_pkg.errors import DicomError, describe

UNDEFINED = 0xFFFFFFFF
ITEM, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
# VRs with a 4-byte length after two reserved bytes in explicit VR (PS3.5 7.1.2)
LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC",
                      b"UR"})  # fmt: skip
# A lossless codestream is smaller than the raw pixels; a lossy one or a noisy image can
# come out somewhat larger, and the JP2 boxes, offset table and item headers add a little.
CODESTREAM_FACTOR, CODESTREAM_EXTRA = 2, 2**20


def native_bytes(header: DicomHeader) -> int:
    """Bytes of one native frame, padded to even length (PS3.5 8.1.1)."""
    n = header.rows * header.columns * header.samples_per_pixel
    n *= max(1, -(-header.bits_allocated // 8))
    return n + n % 2


def pixel_limit(header: DicomHeader) -> int:
    """The most PixelData bytes read for this header: the native frame, or for a
    compressed syntax a codestream of about its size."""
    raw = native_bytes(header)
    if header.transfer_syntax_uid in NATIVE_SYNTAXES:
        return raw
    return CODESTREAM_FACTOR * raw + CODESTREAM_EXTRA


def too_long(header: DicomHeader, what: str, length: int, limit: int) -> DicomError:
    return DicomError(header.path, (
        f"{what} {length} bytes exceeds the {limit} the header allows (Rows x Columns = "
        f"{header.rows}x{header.columns}, BitsAllocated={header.bits_allocated}); refused "
        "before reading it"))  # fmt: skip


def element_header(fp: BinaryIO, implicit: bool, little: bool) -> tuple[int, int, int]:
    """(group, element, value length) of the data element at ``fp``."""
    end = "<" if little else ">"
    head = fp.read(8)
    if len(head) < 8:
        raise EOFError
    group, elem = struct.unpack(f"{end}HH", head[:4])
    if implicit or group == 0xFFFE:  # items and delimiters have no VR
        return group, elem, struct.unpack(f"{end}I", head[4:])[0]
    vr = head[4:6]
    if vr in LONG_VRS:
        rest = fp.read(4)
        if len(rest) < 4:
            raise EOFError
        return group, elem, struct.unpack(f"{end}I", rest)[0]
    return group, elem, struct.unpack(f"{end}H", head[6:])[0]


def read_fragments(fp: BinaryIO, header: DicomHeader, little: bool, limit: int) -> list[bytes]:
    """The values of encapsulated PixelData's items (PS3.5 A.4: the Basic Offset Table, then
    the fragments), up to the Sequence Delimitation Item; at most ``limit`` bytes with the
    8-byte item headers counted."""
    values: list[bytes] = []
    size = 0
    while True:
        try:
            group, elem, length = element_header(fp, implicit=True, little=little)
        except EOFError:
            return values  # a truncated file: the frame parser says what is missing
        if (group, elem) == SEQUENCE_END:
            return values
        if (group, elem) != ITEM or length == UNDEFINED:
            raise DicomError(header.path, f"bad encapsulated PixelData: ({group:04X},{elem:04X}) "
                             "where an item was expected")  # fmt: skip
        if size + 8 + length > limit:
            raise too_long(header, "encapsulated PixelData of at least", size + 8 + length,
                           limit)  # fmt: skip
        values.append(fp.read(length))
        size += 8 + len(values[-1])


def read_items(fp: BinaryIO, header: DicomHeader, little: bool, limit: int) -> bytes:
    """Encapsulated PixelData's items as pydicom holds them: each item's tag, length and
    value (:func:`read_fragments`), joined once."""
    # parts joined once at the end: growing one bytearray item by item copied a 10 MB
    # J2K frame of ~100 fragments about eight times over (~14 ms a file)
    head = struct.Struct("<HHI" if little else ">HHI")
    parts: list[bytes] = []
    for value in read_fragments(fp, header, little, limit):
        parts += (head.pack(*ITEM, len(value)), value)
    return b"".join(parts)


def pixel_data_length(fp: BinaryIO, header: DicomHeader, implicit: bool, little: bool) -> int:
    """The value length of the PixelData element at ``fp`` (UNDEFINED: encapsulated), with
    ``fp`` left at its value."""
    try:
        group, elem, length = element_header(fp, implicit, little)
    except EOFError:
        raise DicomError(header.path, "no PixelData element") from None
    if (group, elem) != (0x7FE0, 0x0010):
        raise DicomError(header.path, "no PixelData element")
    return length


def read_defined(fp: BinaryIO, header: DicomHeader, length: int) -> bytes:
    """A PixelData value of defined length, refused when over :func:`pixel_limit`."""
    if length > pixel_limit(header):
        raise too_long(header, "PixelData length", length, pixel_limit(header))
    return fp.read(length)


def read_pixel_value(fp: BinaryIO, header: DicomHeader, implicit: bool, little: bool) -> bytes:
    """The value of the PixelData element at ``fp``, no longer than :func:`pixel_limit`."""
    length = pixel_data_length(fp, header, implicit, little)
    if length == UNDEFINED:
        return read_items(fp, header, little, pixel_limit(header))
    return read_defined(fp, header, length)


def open_pixel_data(path: str | Path, header: DicomHeader) -> tuple[Any, BinaryIO]:
    """(dataset up to PixelData, the file positioned at PixelData); DicomError when unreadable."""
    try:
        return open_dataset(path, HEADER_INFLATE_LIMIT + pixel_limit(header) + 64)
    except DicomError:
        raise
    except Exception as exc:  # truncated or garbled files fail in many ways inside pydicom
        raise DicomError(path, f"unreadable DICOM ({describe(exc)})") from exc


def read_frame(path: str | Path, header: DicomHeader) -> bytes:
    """Frame 0 of an encapsulated PixelData: every fragment after the Basic Offset Table,
    joined once (a file holds one frame here: ``header_problem`` refuses more). The same
    bytes as ``first_frame(read_pixel_dataset(...))``, without pydicom's second join and
    copy of the whole codestream (3-4 ms of a 7.6 MB JPEG Lossless frame). A PixelData
    that is not encapsulated goes through pydicom, which says what is wrong with it."""
    ds, fp = open_pixel_data(path, header)
    with fp:
        implicit, little = ds.original_encoding
        length = pixel_data_length(fp, header, implicit, little)
        if length != UNDEFINED:
            ds.add_new(0x7FE00010, "OB", read_defined(fp, header, length))
            return first_frame(ds, path)
        fragments = read_fragments(fp, header, little, pixel_limit(header))
    if len(fragments) < 2:
        raise DicomError(path, "encapsulated PixelData holds no frame")
    frame = b"".join(fragments[1:])
    if not frame:
        raise DicomError(path, "empty compressed frame")
    return frame


def read_pixel_dataset(path: str | Path, header: DicomHeader) -> Any:
    """The file's dataset with PixelData, having read (and, for a Deflated file, inflated)
    no more than the header allows. DicomError when a length says more."""
    ds, fp = open_pixel_data(path, header)
    with fp:
        implicit, little = ds.original_encoding
        value = read_pixel_value(fp, header, implicit, little)
    encapsulated = header.transfer_syntax_uid not in NATIVE_SYNTAXES
    ds.add_new(0x7FE00010, "OB" if encapsulated or header.bits_allocated <= 8 else "OW", value)
    return ds
