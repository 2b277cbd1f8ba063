"""The numba lossless JPEG decoder beyond the shared exactness suite (tests/test_decoders.py):
what it declines by design, and a damaged scan declined so that ``auto`` hands the file to
libjpeg-turbo, which reports it as it did before this decoder existed."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from dicom_cases import LJPEG, encapsulated, ljpeg_frame, ljpeg_restart_frame, phantom, write

from rsna_pkg.dicom import decode_file
from rsna_pkg.dicom.backend import Declined
from rsna_pkg.errors import DicomError

pytest.importorskip("numba")

from rsna_pkg.dicom.numba_ljpeg_backend import (  # noqa: E402 - after the skip
    LOOKUP_BITS,
    code_tables,
    decode_lossless,
    parse_scan,
)


def _noise(shape: tuple[int, int], bits: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, shape).astype(np.uint16)


def _patched(frame: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    """``frame`` with ``value`` written ``offset`` bytes after the first ``marker``."""
    at = frame.index(marker) + offset
    return frame[:at] + value + frame[at + len(value) :]


def _scan_start(frame: bytes) -> int:
    return parse_scan(frame).data_start


def test_decodes_long_codes_through_the_second_table() -> None:
    """Differences whose category k comes with probability 2**-(k+1) get an optimised
    Huffman table (libjpeg-turbo's) with codes longer than the first-level lookup: both
    tables are used, and the pixels are exact."""
    rng = np.random.default_rng(1)
    shape = (64, 64)
    category = np.minimum(rng.geometric(0.5, shape) - 1, 15)
    half = np.left_shift(1, np.maximum(category, 1) - 1)
    magnitude = np.where(category == 0, 0, half + rng.integers(0, 1 << 16, shape) % half)
    diffs = magnitude * rng.choice([-1, 1], shape)
    img = ((np.cumsum(diffs, axis=1) + 32768) % 65536).astype(np.uint16)
    frame = ljpeg_frame(img, 16)
    scan = parse_scan(frame)
    assert max(i + 1 for i, n in enumerate(scan.counts) if n) > LOOKUP_BITS
    np.testing.assert_array_equal(decode_lossless(frame), img)


def test_declines_what_it_does_not_take_by_design() -> None:
    img = _noise((12, 10), 12)
    frame = ljpeg_frame(img, 12)
    sos = frame.index(b"\xff\xda")
    with_pt = frame[: sos + 9] + bytes([frame[sos + 9] | 1]) + frame[sos + 10 :]  # Ah/Al byte
    cases = {
        "point transform 1": with_pt,
        "2 components": _patched(frame, b"\xff\xc3", 9, b"\x02"),
        "precision 17": _patched(frame, b"\xff\xc3", 4, b"\x11"),
        "selection value 0": frame[: sos + 7] + b"\x00" + frame[sos + 8 :],
        "is not lossless Huffman": _patched(frame, b"\xff\xc3", 1, b"\xc1"),
        "not a JPEG frame": b"\x00" + frame[1:],
        "height defined by a DNL marker": ljpeg_frame(img, 12, dnl=True),
        "not whole rows": _patched(
            ljpeg_restart_frame(img, 12, 1, 1), b"\xff\xdd", 4, struct.pack(">H", 15)
        ),
    }
    for reason, bad in cases.items():
        with pytest.raises(Declined, match=reason):
            decode_lossless(bad)


def test_code_tables_match_the_canonical_codes() -> None:
    """T.81 C.2 on a small table: two 2-bit codes (00, 01), one 3-bit (100), two 4-bit
    (1010, 1011); the rest of the code space starts no code."""
    counts = (0, 2, 1, 2) + (0,) * 12
    short, full = code_tables(counts, (5, 0, 16, 3, 1))
    k = LOOKUP_BITS
    assert short[0] == 2 | 5 << 5 and short[(1 << (k - 2)) - 1] == 2 | 5 << 5
    assert short[1 << (k - 2)] == 2 | 0 << 5
    assert short[0b100 << (k - 3)] == 3 | 16 << 5
    assert short[0b1010 << (k - 4)] == 4 | 3 << 5 and short[0b1011 << (k - 4)] == 4 | 1 << 5
    assert short[0b1100 << (k - 4)] == 0 and full[0b1100 << 12] == 0
    with pytest.raises(Declined, match="more codes than"):
        code_tables((3,) + (0,) * 15, (0, 1, 2))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncated", "ends before the last sample"),
        ("truncated, no restart markers", "ends before the last sample"),
        ("early marker", "ends before the last sample"),
        ("undefined code", "does not define"),
        ("restart order", "restart marker"),
    ],
)
def test_a_damaged_scan_goes_to_libjpeg_turbo(damage: str, reason: str, tmp_path: Path) -> None:
    """Declined, never decoded into made-up pixels; through ``auto`` the file goes to the
    next decoder (libjpeg-turbo) with the reason in the note, and by name it is a
    DicomError naming the decoder and the reason."""
    img = phantom(29, 17, bits=12)
    frame = ljpeg_restart_frame(img, 12, 1, 3)  # 5-bit codes: 17 of the 32 are defined
    if "no restart" in damage:
        frame = ljpeg_frame(img, 12)  # libjpeg-turbo's: the end is found by the last sample
    start = _scan_start(frame)
    if damage.startswith("truncated"):
        bad = frame[: start + (len(frame) - start) // 2]
    elif damage == "early marker":
        middle = start + (len(frame) - start) // 2
        bad = frame[:middle] + b"\xff\xd9"
    elif damage == "undefined code":
        bad = frame[:start] + b"\xfe" * (len(frame) - start - 2) + b"\xff\xd9"
    else:
        first = frame.index(b"\xff\xd0", start)
        bad = frame[: first + 1] + b"\xd3" + frame[first + 2 :]
    with pytest.raises(Declined, match=reason):
        decode_lossless(bad)
    path = write(encapsulated(img, bad, LJPEG, 12), tmp_path / "bad.dcm")
    with pytest.raises(DicomError, match=f"numba-ljpeg.*{reason}"):
        decode_file(path, "numba-ljpeg")
    try:
        result = decode_file(path)
    except DicomError as exc:  # what the next decoder makes of it
        assert "numba-ljpeg" not in str(exc) or reason in str(exc)
    else:
        assert result.backend != "numba-ljpeg" and reason in result.note, result
