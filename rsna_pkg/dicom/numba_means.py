"""Block means of a window in one pass, compiled by numba where it is installed.

``pixels.AreaPyramid`` gives the area levels of a full decode: the probe that finds the box,
and the crop's window at the level the crop allows (files without J2K resolution levels).
Its numpy route sums ``f`` strided row slices into a new array, then ``f`` strided column
slices, then rounds in five more passes: each step a sweep over an array larger than the
caches, right after the decode has filled them with something else. This kernel adds the
``f`` rows of a block row into one accumulator row that stays in the L1 cache, then sums
and rounds each block from it, writing the means straight out. On a 2294x1914 RLE frame,
in the pipeline right after the decode: the level-3 probe 2.16 -> 0.57 ms, the level-1
crop window (1824x1440 pixels) 2.47 -> 1.29 ms; alone, best of 30: 1.49 -> 0.47 and
1.01 -> 0.72 ms. The values are numpy's to the bit, the same integer sums and the
same rounding (tests/test_area_means.py checks every dtype, edge and level).

numba is optional: without it ``window_means`` returns None and numpy does the work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rsna_pkg.jit import compiled

# stored values the kernel takes: a block sum of 4**5 of them fits int64 with room to spare
KERNEL_DTYPES = frozenset(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4"))


def _block_means(a: np.ndarray, f: int, k: int, y0: int, x0: int, out: np.ndarray,
                 acc: np.ndarray, sums: np.ndarray) -> None:  # fmt: skip
    """``out`` = the ``f`` x ``f`` block means (``f`` = 2**``k``) of ``a`` whose top-left
    block is (``y0``, ``x0``); blocks cut by the image's last row or column are averaged
    over the pixels they have. Full blocks are rounded half to even by shifts, cut ones by
    rint of the float64 quotient: ``pixels._block_mean``'s arithmetic. ``acc`` (a row) and
    ``sums`` (a row of blocks) are scratch in the accumulator's dtype.

    Every loop runs over slices, not ``a[y, c0 + x]``: with the offset in the index the
    row loop is not vectorised (3.3 ms against 0.17 for the rows of a 2294x1914 frame)."""
    rows, cols = a.shape
    out_rows, out_cols = out.shape
    c0 = x0 * f
    n = min((x0 + out_cols) * f, cols) - c0
    whole = n // f  # blocks of f columns; a last one cut by the image's edge is apart
    acc = acc[:n]
    sums = sums[:whole]
    shift = 2 * k
    half = (1 << (shift - 1)) - 1  # rint(s / 4**k) = (s + 2**(2k-1) - 1 + odd) >> 2k
    for by in range(out_rows):
        r0 = (y0 + by) * f
        r1 = min(r0 + f, rows)
        src = a[r0, c0 : c0 + n]
        for x in range(n):
            acc[x] = src[x]
        for y in range(r0 + 1, r1):
            src = a[y, c0 : c0 + n]
            for x in range(n):
                acc[x] += src[x]
        part = acc[0 : whole * f : f]
        for bx in range(whole):
            sums[bx] = part[bx]
        for j in range(1, f):
            part = acc[j : whole * f : f]
            for bx in range(whole):
                sums[bx] += part[bx]
        dst = out[by, :whole]
        if r1 - r0 == f:
            for bx in range(whole):
                s = sums[bx]
                dst[bx] = (s + half + ((s >> shift) & 1)) >> shift
        else:
            count = np.float64((r1 - r0) * f)
            for bx in range(whole):
                dst[bx] = np.rint(sums[bx] / count)
        if whole < out_cols:
            s = acc[whole * f]
            for x in range(whole * f + 1, n):
                s += acc[x]
            out[by, whole] = np.rint(np.float64(s) / np.float64((r1 - r0) * (n - whole * f)))


def _kernel() -> Callable[..., None] | None:
    return compiled(_block_means)


def window_means(
    arr: np.ndarray, reduce: int, window: tuple[int, int, int, int]
) -> np.ndarray | None:
    """Level ``reduce``'s means over ``window`` = (y0, x0, y1, x1) in that level's pixels,
    in ``arr``'s dtype (``area_downsample(arr, reduce)[y0:y1, x0:x1]``); None where numba
    is missing or the dtype is not one the kernel takes (then numpy computes them)."""
    kernel = _kernel()
    if kernel is None or arr.dtype not in KERNEL_DTYPES or arr.ndim != 2 or reduce < 1:
        return None
    from rsna_pkg.dicom.pixels import _accumulator, reduced_shape

    # clipped to the level as numpy's slices are (the kernel does not check its indices)
    rows, cols = reduced_shape(arr.shape[0], arr.shape[1], reduce)
    y1, x1 = min(window[2], rows), min(window[3], cols)
    y0, x0 = min(max(0, window[0]), y1), min(max(0, window[1]), x1)
    out = np.empty((y1 - y0, x1 - x0), arr.dtype)
    if out.size:
        acc, f = _accumulator(arr, reduce), 2**reduce
        pixels = min(x1 * f, arr.shape[1]) - x0 * f  # the window's full-resolution columns
        kernel(arr, f, reduce, y0, x0, out, np.empty(pixels, acc), np.empty(out.shape[1], acc))
    return out
