"""Binary erosion and dilation by a (2 r + 1)-pixel square, by running counts.

``roi.open_square`` opens the breast masks twice per image. scipy's separable minimum and
maximum filters take 0.56 ms an opening on a 287x240 probe (0.14 ms a pass); these four
passes of running counts, compiled by numba, 0.15 ms. A pixel survives erosion when all
2 r + 1 pixels of its window along the pass are set (outside the image counts as unset, as
``mode="constant", cval=0`` does), and dilation when any is: the same masks as scipy's,
bit for bit (tests/test_roi.py compares them). Without numba,
``open_square_counts`` returns None and scipy does the work.
"""

from __future__ import annotations

import numpy as np

from rsna_pkg.jit import compiled


def _along_rows(src: np.ndarray, radius: int, erode: bool, out: np.ndarray) -> None:
    """Each row's erosion (all set) or dilation (any set) by a window of 2 radius + 1."""
    rows, cols = src.shape
    width = 2 * radius + 1
    for y in range(rows):
        line, dst = src[y], out[y]
        count = 0
        for x in range(min(radius, cols)):
            count += line[x]
        for x in range(cols):
            if x + radius < cols:
                count += line[x + radius]
            if x > radius:
                count -= line[x - radius - 1]
            dst[x] = count == width if erode else count > 0


def _along_columns(src: np.ndarray, radius: int, erode: bool, out: np.ndarray,
                   count: np.ndarray) -> None:  # fmt: skip
    """The same down the columns, all columns at once (a row of counts slides down)."""
    rows, cols = src.shape
    width = 2 * radius + 1
    count[:] = 0
    for y in range(min(radius, rows)):
        line = src[y]
        for x in range(cols):
            count[x] += line[x]
    for y in range(rows):
        if y + radius < rows:
            line = src[y + radius]
            for x in range(cols):
                count[x] += line[x]
        if y > radius:
            line = src[y - radius - 1]
            for x in range(cols):
                count[x] -= line[x]
        dst = out[y]
        if erode:
            for x in range(cols):
                dst[x] = count[x] == width
        else:
            for x in range(cols):
                dst[x] = count[x] > 0


def open_square_counts(mask: np.ndarray, radius: int) -> np.ndarray | None:
    """Opening of a 2-D boolean ``mask`` by the square (erosion, then dilation), or None
    where numba does not import or the mask is not 2-D."""
    rows_pass, columns_pass = compiled(_along_rows), compiled(_along_columns)
    if rows_pass is None or columns_pass is None or mask.ndim != 2:
        return None
    src = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    a, b = np.empty_like(src), np.empty_like(src)
    count = np.empty(src.shape[1], np.int32)
    rows_pass(src, radius, True, a)
    columns_pass(a, radius, True, b, count)
    rows_pass(b, radius, False, a)
    columns_pass(a, radius, False, b, count)
    return b.view(bool)
