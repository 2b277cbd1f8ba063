"""Pure array steps shared by every decode backend.

Shape rule for ``reduce=r``: each side becomes ``ceil(n / 2**r)``, as OpenJPEG's resolution
level r does for an image anchored at 0; :func:`area_downsample` follows the same rule (the
last, partial block is averaged over the pixels it has), so all backends agree on shapes.
"""

from __future__ import annotations

import math

import numpy as np

from rsna_pkg.dicom.header import DicomHeader


def reduced_shape(rows: int, columns: int, reduce: int) -> tuple[int, int]:
    f = 2**reduce
    return math.ceil(rows / f), math.ceil(columns / f)


def area_downsample(arr: np.ndarray, reduce: int) -> np.ndarray:
    """Mean over 2**r x 2**r blocks (partial edge blocks over their own pixels), rounded
    to the nearest integer and returned in ``arr``'s dtype."""
    if reduce <= 0:
        return arr
    f = 2**reduce
    rows, cols = arr.shape
    h, w = reduced_shape(rows, cols, reduce)
    # int32 holds a block sum of 16-bit values for blocks up to 128 x 128.
    acc: type[np.signedinteger] = np.int32 if arr.dtype.itemsize <= 2 and f <= 128 else np.int64
    sums: np.ndarray = arr.astype(acc)
    for _ in range(reduce):  # 2x2 sums, level by level: ~2x faster than one reshape-sum
        if sums.shape[0] % 2:
            sums = np.concatenate([sums, np.zeros((1, sums.shape[1]), acc)], axis=0)
        sums = sums[0::2] + sums[1::2]
        if sums.shape[1] % 2:
            sums = np.concatenate([sums, np.zeros((sums.shape[0], 1), acc)], axis=1)
        sums = sums[:, 0::2] + sums[:, 1::2]
    row_n = np.full(h, f, dtype=np.int64)
    col_n = np.full(w, f, dtype=np.int64)
    row_n[-1] = rows - (h - 1) * f
    col_n[-1] = cols - (w - 1) * f
    mean = sums / np.outer(row_n, col_n)
    return np.rint(mean).astype(arr.dtype)


def stored_dtype(header: DicomHeader) -> np.dtype:
    """Container dtype of the stored values: BitsAllocated, signed when PixelRepresentation=1."""
    nbytes = max(1, (header.bits_allocated + 7) // 8)
    nbytes = {1: 1, 2: 2, 3: 4, 4: 4}.get(nbytes, 8)
    return np.dtype(f"{'i' if header.signed else 'u'}{nbytes}")


def to_stored(raw: np.ndarray, header: DicomHeader) -> np.ndarray:
    """Full-resolution decoder output -> stored values as the header describes them.

    The header's PixelRepresentation wins over the codestream's own signedness (a J2K
    codestream may say unsigned while the header says signed, PS3.5 8.2.4): signed values
    are the low BitsStored bits read as two's complement, as pydicom does.
    """
    dtype = stored_dtype(header)
    bits = header.bits_stored
    if header.signed and bits < 64:
        wide = raw.astype(np.int64) & ((1 << bits) - 1)
        sign = 1 << (bits - 1)
        return ((wide ^ sign) - sign).astype(dtype)
    if raw.dtype.kind == "i" and not header.signed:
        raw = raw.view(raw.dtype.str.replace("i", "u"))
    return raw.astype(dtype, copy=False)
