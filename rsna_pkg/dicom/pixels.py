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
    rows = _strided_sums(a, f, acc)
    return _strided_sums(rows.T, f, acc).T


def _strided_sums(a: np.ndarray, f: int, acc: type[np.signedinteger]) -> np.ndarray:
    """Sums of every ``f`` consecutive rows (the last group over what it has). The first
    two slices are added straight into a new array (no zero-filled start: a 2x2 level is
    one add per axis)."""
    h = a.shape[0]
    if f == 1 or h == 1:
        return a.astype(acc)
    first, second = a[0::f], a[1::f]
    if len(second) == len(first):
        out = np.add(first, second, dtype=acc)
    else:  # the last group holds one row only
        out = first.astype(acc)
        np.add(out[: len(second)], second, out=out[: len(second)])
    for k in range(2, min(f, h)):
        part = a[k::f]
        np.add(out[: len(part)], part, out=out[: len(part)])
    return out


def _block_counts(n: int, reduce: int) -> np.ndarray:
    """Pixels of a side ``n`` in each block of level ``reduce`` (2**reduce, the last fewer)."""
    f = 2**reduce
    counts = np.full(-(-n // f), f, dtype=np.int64)
    counts[-1] = n - (len(counts) - 1) * f
    return counts


def _block_mean(sums: np.ndarray, row_n: np.ndarray, col_n: np.ndarray, reduce: int,
                dtype: np.dtype) -> np.ndarray:  # fmt: skip
    """``rint(sums / (row_n x col_n))`` in ``dtype``. Full blocks hold 4**reduce pixels, a
    power of two, so their mean is rounded half to even by integer shifts (exact, and no
    float pass: 0.6 ms for a 1300x785 level-1 crop against 16 ms through float64); blocks
    cut by the image's last row or column are divided as they are."""
    k = 2 * reduce
    mean = np.right_shift(sums, k)  # rint(sums / 2**k) = (sums + 2**(k-1) - 1 + odd) >> k
    np.bitwise_and(mean, 1, out=mean)
    mean += sums
    mean += (1 << (k - 1)) - 1
    mean >>= k
    f = 2**reduce
    if len(row_n) and row_n[-1] != f:
        mean[-1] = np.rint(sums[-1] / (row_n[-1] * col_n))
    if len(col_n) and col_n[-1] != f:
        mean[:, -1] = np.rint(sums[:, -1] / (row_n * col_n[-1]))
    return mean.astype(dtype)


def area_downsample(arr: np.ndarray, reduce: int) -> np.ndarray:
    """Mean over 2**r x 2**r blocks (partial edge blocks over their own pixels), rounded
    to the nearest integer and returned in ``arr``'s dtype."""
    return AreaPyramid(arr).level(reduce)


class AreaPyramid:
    """``area_downsample`` of one array at several levels. Where numba is installed, each
    level, or a window of one, is one pass of ``numba_means`` over the pixels under it.
    Without numba (or ``use_kernel=False``), numpy sums: the exact integer block sums of
    each level asked are kept, and a deeper level is summed from the deepest kept one below
    it. Either way every level equals ``area_downsample(arr, r)`` to the bit, and
    ``window`` sums only the pixels under the window."""

    def __init__(self, arr: np.ndarray, use_kernel: bool = True) -> None:
        self.arr = arr
        self.use_kernel = use_kernel  # rsna_pkg.dicom.numba_means where numba is installed
        self._sums: dict[int, np.ndarray] = {}

    def level(self, reduce: int) -> np.ndarray:
        if reduce <= 0:
            return self.arr
        if not self._sums and self.arr.ndim == 2:
            rows, cols = self.arr.shape
            fast = self._kernel_means(reduce, (0, 0, *reduced_shape(rows, cols, reduce)))
            if fast is not None:
                return fast
        acc = _accumulator(self.arr, reduce)
        if reduce not in self._sums or self._sums[reduce].dtype != acc:
            start = max((k for k in self._sums if k < reduce and self._sums[k].dtype == acc),
                        default=0)  # fmt: skip
            sums = self._sums[start] if start else self.arr
            self._sums[reduce] = _block_sums(sums, 2 ** (reduce - start), acc)
        return self._mean(self._sums[reduce], reduce, (0, 0, *self._sums[reduce].shape))

    def window(self, reduce: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """``level(reduce)[y0:y1, x0:x1]`` for ``window`` = (y0, x0, y1, x1), from the
        level's kept sums if any, else from the full-resolution pixels under the window."""
        y0, x0, y1, x1 = window
        if reduce <= 0:
            return self.arr[y0:y1, x0:x1]
        acc = _accumulator(self.arr, reduce)
        kept = self._sums.get(reduce)
        if kept is not None and kept.dtype == acc:
            sums = kept[y0:y1, x0:x1]
        elif (fast := self._kernel_means(reduce, window)) is not None:
            return fast
        else:
            f = 2**reduce
            sums = _block_sums(self.arr[y0 * f : y1 * f, x0 * f : x1 * f], f, acc)
        return self._mean(sums, reduce, window)

    def _kernel_means(self, reduce: int, window: tuple[int, int, int, int]) -> np.ndarray | None:
        """The window's means in one pass by the compiled kernel (None: numpy computes
        them, where numba is missing, the dtype is not the kernel's or ``use_kernel`` is
        off)."""
        if not self.use_kernel:
            return None
        from rsna_pkg.dicom.numba_means import window_means

        return window_means(self.arr, reduce, window)

    def _mean(self, sums: np.ndarray, reduce: int, window: tuple[int, int, int, int]) -> np.ndarray:
        y0, x0, y1, x1 = window
        rows, cols = self.arr.shape
        row_n = _block_counts(rows, reduce)[y0:y1]
        col_n = _block_counts(cols, reduce)[x0:x1]
        return _block_mean(sums, row_n, col_n, reduce, self.arr.dtype)


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
