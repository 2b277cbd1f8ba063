"""The package's own lossless JPEG (ITU T.81 H, process 14) decoder, compiled by numba.

Why a decoder of our own: .70 is decoded in full at every resolution the model asks for, so
its entropy decoding is most of the cost of preprocessing such a file. libjpeg-turbo's
lossless path (``libjpeg_turbo_backend``, the fastest library here) spends 6-6.5 ns a pixel;
this one 4-5 (``rsna bench decode`` prints both). One Huffman table lookup on the next
``LOOKUP_BITS`` bits gives a difference's code length and category at once (codes longer
than that, rare, take a second, 16-bit table), the category's extra bits are sign-extended
without a branch (a difference's sign is a coin toss, a branch on it a misprediction every
other pixel), and byte stuffing is undone inside the bit reader, 4 bytes at a time where
none of them is 0xFF.

Scope, by design: one component, one scan, Huffman tables (SOF3), 2-16 bits, every selection
value 1-7 (.57 and .70), restart intervals of whole rows. What it declines, from the frame
header (``auto`` then takes libjpeg-turbo): a point transform (no encoder here writes one to
test against), a DNL height, restart intervals that end mid-row, several components or
scans. A scan that runs out of data, meets a marker early or holds a code its table does not
define is declined too, so such a file is reported by the libraries, as before this decoder.

numba is optional (it is in Kaggle's image): without it the decoder is not available, and
libjpeg-turbo decodes the same pixels. The kernel is compiled on first use and cached next to
this module (about 0.7 s once, then 0.3 s a process).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rsna_pkg.dicom.backend import (
    Capabilities,
    Declined,
    Decoded,
    ReadsFrame,
    importable,
    per_syntax,
)
from rsna_pkg.dicom.frames import JPEG_LOSSLESS_SYNTAXES, SOF_MARKERS, jpeg_segments, sniff_codec
from rsna_pkg.dicom.header import DicomHeader
from rsna_pkg.dicom.pixels import to_stored
from rsna_pkg.jit import compiled

# ms/Mpx measured on the synthetic .70 frames of `rsna bench decode` (2294x1914 to 3062x2394,
# 5-10.5 bits a pixel): 21.6-36.0 ms where libjpeg-turbo took 28.9-45.0.
MS_PER_MPX = per_syntax([(JPEG_LOSSLESS_SYNTAXES, 5.0)])
LOOKUP_BITS = 11  # first-level table: 2048 int32 entries, in L1 cache


@dataclass(frozen=True)
class LosslessScan:
    """What the decoder needs from a frame's markers (T.81 B.2)."""

    precision: int
    rows: int
    columns: int
    predictor: int  # selection value Ss, 1-7 (point transform Al: 0, others are declined)
    restart_interval: int  # in samples (one component: MCUs), 0 for none
    counts: tuple[int, ...]  # BITS: codes of each length 1-16
    symbols: tuple[int, ...]  # HUFFVAL: categories 0-16
    data_start: int  # first byte of the entropy-coded data


def parse_scan(frame: bytes) -> LosslessScan:
    """The markers up to the first scan; Declined for what the decoder does not take."""
    if sniff_codec(frame) != "jpeg":
        raise Declined(f"not a JPEG frame (starts {frame[:8].hex()})")
    tables: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    sof: tuple[int, int, int] | None = None
    restart = 0
    try:
        for marker, pos, length in jpeg_segments(frame):
            body = frame[pos + 4 : pos + 2 + length]
            if marker in SOF_MARKERS and marker != 0xC3:
                raise Declined(f"SOF marker FF{marker:02X} is not lossless Huffman (FFC3)")
            if marker == 0xC3:
                precision, rows, columns, components = struct.unpack_from(">BHHB", body)
                if components != 1:
                    raise Declined(f"{components} components")
                if rows == 0:
                    raise Declined("height defined by a DNL marker")
                if columns == 0:
                    raise Declined("width 0")
                if not 2 <= precision <= 16:
                    raise Declined(f"precision {precision} bits outside 2..16")
                sof = (precision, rows, columns)
            elif marker == 0xC4:
                tables.update(huffman_tables(body))
            elif marker == 0xDD:
                (restart,) = struct.unpack_from(">H", body)
            elif marker == 0xDA:
                return scan_from(body, sof, tables, restart, pos + 2 + length)
    except (ValueError, IndexError, struct.error) as exc:
        raise Declined(f"mangled JPEG header ({exc})") from exc
    raise Declined("no scan (SOS) in the frame")


def huffman_tables(body: bytes) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """DC-class tables of one DHT segment, by destination (AC tables have no use here)."""
    out = {}
    q = 0
    while q < len(body):
        kind, counts = body[q], tuple(body[q + 1 : q + 17])
        n = sum(counts)
        symbols = tuple(body[q + 17 : q + 17 + n])
        if len(counts) != 16 or len(symbols) != n:
            raise Declined("DHT segment shorter than its counts")
        if kind >> 4 == 0:
            out[kind & 15] = (counts, symbols)
        q += 17 + n
    return out


def scan_from(body: bytes, sof: tuple[int, int, int] | None,
              tables: dict[int, tuple[tuple[int, ...], tuple[int, ...]]], restart: int,
              data_start: int) -> LosslessScan:  # fmt: skip
    if sof is None:
        raise Declined("scan before any SOF3 frame header")
    precision, rows, columns = sof
    if body[0] != 1:
        raise Declined(f"scan of {body[0]} components")
    table_id, predictor, point_transform = body[2] >> 4, body[3], body[5] & 15
    if table_id not in tables:
        raise Declined(f"scan uses Huffman table {table_id}, which no DHT defines")
    if not 1 <= predictor <= 7:
        raise Declined(f"selection value {predictor} outside 1..7")
    if point_transform:
        raise Declined(f"point transform {point_transform}")
    if restart % columns:
        raise Declined(f"restart interval {restart} is not whole rows of {columns}")
    counts, symbols = tables[table_id]
    if any(s > 16 for s in symbols):
        raise Declined("Huffman table holds a category above 16")
    return LosslessScan(precision, rows, columns, predictor, restart, counts, symbols,
                        data_start)  # fmt: skip


def code_tables(counts: tuple[int, ...], symbols: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(first-level table on LOOKUP_BITS bits, 16-bit table): entry = code length | category
    << 5, 0 where no code of that table starts (longer codes in the first; none in the
    second). Canonical codes per T.81 C.2."""
    short = np.zeros(1 << LOOKUP_BITS, np.int32)
    full = np.zeros(1 << 16, np.int32)
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            if code >= 1 << length:
                raise Declined("Huffman table holds more codes than its lengths allow")
            entry = length | (symbols[k] << 5)
            full[code << (16 - length) : (code + 1) << (16 - length)] = entry
            if length <= LOOKUP_BITS:
                span = LOOKUP_BITS - length
                short[code << span : (code + 1) << span] = entry
            code, k = code + 1, k + 1
        code <<= 1
    return short, full


def _decode_scan(data: np.ndarray, pos: int, short: np.ndarray, full: np.ndarray, rows: int,
                 cols: int, precision: int, predictor: int, interval_rows: int,
                 out: np.ndarray) -> int:  # fmt: skip
    """Fill ``out`` (rows x cols, uint16) from the entropy-coded data at ``data[pos:]``.
    Returns 0, or -1 (a code the table does not define), -2 (a restart marker missing
    or out of order), -3 (the data ended, or met a marker, before the last sample).
    Written for numba (``_kernel``): plain loops over typed scalars."""
    n = len(data)
    acc = np.uint64(0)
    nbits = np.int64(0)  # valid bits at the bottom of acc
    fake = 0  # zero bits fed in past the data's end or a marker (must never be consumed)
    mask = np.uint64((1 << LOOKUP_BITS) - 1)
    flat = out.ravel()
    for y in range(rows):
        start = y % interval_rows == 0
        if start and y > 0:
            if fake > nbits:
                return -3
            acc, nbits, fake = np.uint64(0), np.int64(0), 0  # byte-aligned: the rest is padding
            while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
                pos += 1  # fill bytes before the marker
            marker = 0xD0 + (y // interval_rows - 1) % 8
            if pos + 1 >= n or data[pos] != 0xFF or data[pos + 1] != marker:
                return -2
            pos += 2
        row = y * cols
        px = np.int64(1) << (precision - 1) if start else np.int64(flat[row - cols])
        for x in range(cols):
            if nbits < 32:
                if (
                    pos + 4 <= n
                    and data[pos] != 0xFF
                    and data[pos + 1] != 0xFF
                    and data[pos + 2] != 0xFF
                    and data[pos + 3] != 0xFF
                ):  # 4 plain bytes at once
                    word = (
                        (np.uint64(data[pos]) << np.uint64(24))
                        | (np.uint64(data[pos + 1]) << np.uint64(16))
                        | (np.uint64(data[pos + 2]) << np.uint64(8))
                        | np.uint64(data[pos + 3])
                    )
                    acc = (acc << np.uint64(32)) | word
                    pos += 4
                    nbits += 32
                else:
                    for _ in range(4):  # byte by byte: stuffing, a marker or the end
                        byte = 0
                        if pos < n and data[pos] != 0xFF:
                            byte = data[pos]
                            pos += 1
                        elif pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0:
                            byte = 0xFF
                            pos += 2
                        else:
                            fake += 8
                        acc = (acc << np.uint64(8)) | np.uint64(byte)
                        nbits += 8
            entry = np.int64(short[np.int64((acc >> np.uint64(nbits - LOOKUP_BITS)) & mask)])
            if entry == 0:
                entry = np.int64(full[np.int64((acc >> np.uint64(nbits - 16)) & np.uint64(0xFFFF))])
                if entry == 0:
                    return -1
            length = entry & 31
            category = entry >> 5
            if category == 16:  # T.81 H.1.2.2: 32768, no extra bits
                nbits -= length
                diff = np.int64(32768)
            else:
                nbits -= length + category
                value = np.int64((acc >> np.uint64(nbits)) & np.uint64((1 << category) - 1))
                negative = (value - ((np.int64(1) << category) >> 1)) >> 63  # -1 or 0
                diff = value + (negative & ((np.int64(-1) << category) + 1))
            if predictor != 1 and not start and x > 0:
                ra = px
                rb = np.int64(flat[row - cols + x])
                rc = np.int64(flat[row - cols + x - 1])
                if predictor == 2:
                    px = rb
                elif predictor == 3:
                    px = rc
                elif predictor == 4:
                    px = ra + rb - rc
                elif predictor == 5:
                    px = ra + ((rb - rc) >> 1)
                elif predictor == 6:
                    px = rb + ((ra - rc) >> 1)
                else:
                    px = (ra + rb) >> 1
            px = (px + diff) & 0xFFFF  # modulo 2**16 (H.1.2.1)
            flat[row + x] = px
    if fake > nbits:
        return -3
    return 0


def _kernel() -> Callable[..., int]:
    kernel = compiled(_decode_scan)
    if kernel is None:  # available() said numba imports
        raise Declined("numba is not installed")
    return kernel


FAILURES = {-1: "a Huffman code its table does not define",
            -2: "a restart marker missing or out of order",
            -3: "entropy-coded data ends before the last sample"}  # fmt: skip


def decode_lossless(frame: bytes) -> np.ndarray:
    """The samples of a lossless JPEG frame (uint16); Declined when outside the scope."""
    scan = parse_scan(frame)
    short, full = code_tables(scan.counts, scan.symbols)
    out = np.empty((scan.rows, scan.columns), np.uint16)
    interval_rows = scan.restart_interval // scan.columns or scan.rows
    status = _kernel()(np.frombuffer(frame, np.uint8), scan.data_start, short, full, scan.rows,
                 scan.columns, scan.precision, scan.predictor, interval_rows, out)  # fmt: skip
    if status:
        raise Declined(FAILURES.get(status, f"status {status}"))
    return out


class NumbaLjpegDecoder(ReadsFrame):
    name = "numba-ljpeg"

    def available(self) -> bool:
        return importable("numba")

    def capabilities(self) -> Capabilities:
        return Capabilities(JPEG_LOSSLESS_SYNTAXES, ms_per_mpx=MS_PER_MPX)

    def decode_frame(self, frame: bytes, header: DicomHeader, reduce: int = 0) -> Decoded:
        return Decoded(to_stored(decode_lossless(frame), header), reduced=False)


DECODER = NumbaLjpegDecoder()
