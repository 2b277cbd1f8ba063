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


def _accumulator(arr: np.ndarray, reduce: int) -> type[np.signedinteger]:
    # int32 holds a block sum of 16-bit values for blocks up to 128 x 128.
    return np.int32 if arr.dtype.itemsize <= 2 and 2**reduce <= 128 else np.int64


def _block_sums(a: np.ndarray, f: int, acc: type[np.signedinteger]) -> np.ndarray:
    """Sums over ``f`` x ``f`` blocks of ``a`` in ``acc`` (a partial last row or column of
    blocks summed over what it has): ``f`` strided row slices added into one array, then
    ``f`` strided column slices, straight from ``a``'s dtype with no widened copy. Integer
    sums, so the order does not matter; half the time of halving level by level (2.4 vs
    4.7 ms for level 3 of a 2776x2082 frame)."""
    if not np.can_cast(a.dtype, acc):  # e.g. uint64: widen (or wrap) as astype does
        a = a.astype(acc)
    h, w = a.shape
    rows = np.zeros((-(-h // f), w), dtype=acc)
    for k in range(min(f, h)):
        part = a[k::f]
        np.add(rows[: len(part)], part, out=rows[: len(part)])
    sums = np.zeros((rows.shape[0], -(-w // f)), dtype=acc)
    for k in range(min(f, w)):
        part = rows[:, k::f]
        np.add(sums[:, : part.shape[1]], part, out=sums[:, : part.shape[1]])
    return sums


def _block_mean(
    sums: np.ndarray, shape: tuple[int, int], reduce: int, dtype: np.dtype
) -> np.ndarray:
    f = 2**reduce
    rows, cols = shape
    h, w = reduced_shape(rows, cols, reduce)
    row_n = np.full(h, f, dtype=np.int64)
    col_n = np.full(w, f, dtype=np.int64)
    row_n[-1] = rows - (h - 1) * f
    col_n[-1] = cols - (w - 1) * f
    mean = sums / np.outer(row_n, col_n)
    return np.rint(mean).astype(dtype)


def area_downsample(arr: np.ndarray, reduce: int) -> np.ndarray:
    """Mean over 2**r x 2**r blocks (partial edge blocks over their own pixels), rounded
    to the nearest integer and returned in ``arr``'s dtype."""
    return AreaPyramid(arr).level(reduce)


class AreaPyramid:
    """``area_downsample`` of one array at several levels: the exact integer block sums of
    each level asked are kept, and a deeper level is summed from the deepest kept one below
    it, so every level equals ``area_downsample(arr, r)`` to the bit."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr
        self._sums: dict[int, np.ndarray] = {}

    def level(self, reduce: int) -> np.ndarray:
        if reduce <= 0:
            return self.arr
        acc = _accumulator(self.arr, reduce)
        if reduce not in self._sums or self._sums[reduce].dtype != acc:
            start = max((k for k in self._sums if k < reduce and self._sums[k].dtype == acc),
                        default=0)  # fmt: skip
            sums = self._sums[start] if start else self.arr
            self._sums[reduce] = _block_sums(sums, 2 ** (reduce - start), acc)
        return _block_mean(self._sums[reduce], self.arr.shape, reduce, self.arr.dtype)


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
