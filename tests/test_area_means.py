"""Area levels: the numba kernel (rsna_pkg.dicom.numba_means) and numpy's block sums give
the same means, to the bit, as a plain float64 reference: every stored dtype, odd sizes,
edge blocks, windows, negative values."""

from __future__ import annotations

import numpy as np
import pytest

from rsna_pkg.dicom import numba_means
from rsna_pkg.dicom.pixels import AreaPyramid, reduced_shape

DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4")
SHAPES = ((37, 53), (64, 64), (5, 3), (1, 1), (130, 7), (9, 200))


def reference(arr: np.ndarray, reduce: int) -> np.ndarray:
    """Each block's float64 mean, rounded half to even (exact: the sums stay far below
    2**53 and each is divided once)."""
    f = 2**reduce
    rows, cols = reduced_shape(*arr.shape, reduce)
    out = np.empty((rows, cols), arr.dtype)
    for by in range(rows):
        for bx in range(cols):
            block = arr[by * f : (by + 1) * f, bx * f : (bx + 1) * f].astype(np.float64)
            out[by, bx] = np.rint(block.sum() / block.size)
    return out


def windows(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """The whole level, a window reaching the last (cut) blocks, an inner one, one block."""
    return [(0, 0, rows, cols), (rows // 2, cols // 3, rows, cols),
            (rows // 4, cols // 4, max(rows // 4 + 1, rows - 1), max(cols // 4 + 1, cols - 1)),
            (0, 0, 1, 1)]  # fmt: skip


def stored(dtype: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, endpoint=True,
                                                dtype=dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_and_numpy_means_equal_the_float_reference(dtype: str) -> None:
    pytest.importorskip("numba")
    for seed, shape in enumerate(SHAPES):
        arr = stored(dtype, shape, seed)
        for reduce in range(1, 6):
            ref = reference(arr, reduce)
            fast, plain = AreaPyramid(arr), AreaPyramid(arr, use_kernel=False)
            for y0, x0, y1, x1 in windows(*ref.shape):
                want = ref[y0:y1, x0:x1]
                got = numba_means.window_means(arr, reduce, (y0, x0, y1, x1))
                assert got is not None and got.dtype == arr.dtype
                assert np.array_equal(got, want), (shape, reduce, (y0, x0, y1, x1))
                assert np.array_equal(fast.window(reduce, (y0, x0, y1, x1)), want)
                assert np.array_equal(plain.window(reduce, (y0, x0, y1, x1)), want)
            over = (ref.shape[0] // 2, 0, ref.shape[0] + 3, ref.shape[1] + 5)  # past the edge
            assert np.array_equal(fast.window(reduce, over), ref[over[0] :, :])
            assert np.array_equal(plain.window(reduce, over), ref[over[0] :, :])
            assert np.array_equal(fast.level(reduce), ref)
            assert np.array_equal(plain.level(reduce), ref)


def test_rounding_ties_go_to_even_for_full_and_cut_blocks() -> None:
    """Sums exactly halfway between two means: full blocks (shift rounding) and blocks cut
    by the edge (float rint) both round to the even mean, also below zero."""
    pytest.importorskip("numba")
    arr = np.array([[1, 2, 5], [2, 3, -7]], np.int16)  # blocks: 8/4 = 2, (5 - 7)/2 = -1
    arr2 = np.array([[0, 1, 1], [1, 0, 4]], np.int16)  # 2/4 = 0.5 -> 0, 5/2 = 2.5 -> 2
    arr3 = np.array([[1, 1, 3], [1, 3, 0]], np.int16)  # 6/4 = 1.5 -> 2, 3/2 = 1.5 -> 2
    arr4 = np.array([[-1, 0, -1], [-1, 0, -2]], np.int16)  # -2/4 = -0.5 -> 0, -3/2 -> -2
    for a, want in ((arr, [[2, -1]]), (arr2, [[0, 2]]), (arr3, [[2, 2]]), (arr4, [[0, -2]])):
        assert numba_means.window_means(a, 1, (0, 0, 1, 2)).tolist() == want
        assert AreaPyramid(a, use_kernel=False).level(1).tolist() == want


def test_numpy_does_the_work_where_the_kernel_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba, or for a dtype the kernel does not take, ``window_means`` answers None
    and the pyramid's numpy sums give the same means."""
    arr = stored("u2", (37, 53), 7)
    ref = reference(arr, 2)
    assert numba_means.window_means(arr.astype(np.uint64), 2, (0, 0, 10, 14)) is None
    assert numba_means.window_means(arr.astype(np.float32), 2, (0, 0, 10, 14)) is None
    monkeypatch.setattr(numba_means, "_kernel", lambda: None)
    assert numba_means.window_means(arr, 2, (0, 0, 10, 14)) is None
    assert np.array_equal(AreaPyramid(arr).level(2), ref)
    assert np.array_equal(AreaPyramid(arr).window(2, (3, 4, 10, 14)), ref[3:10, 4:14])
