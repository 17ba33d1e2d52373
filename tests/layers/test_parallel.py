"""The work split over threads (layers/_parallel.py) gives bit for bit what one
thread gives, for im2col and col2im at sizes that are split, and every part runs."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.layers import _parallel
from bpinspect.layers._im2col import Geometry, col2im, im2col

CASES = [((4, 3, 45, 45), Geometry(11, 11, 4, 4, 0, 0)),  # conv1-like, no pad
         ((3, 7, 17, 17), Geometry(5, 5, 1, 1, 2, 2)),  # pad: per-thread padded scratch
         ((2, 5, 16, 16), Geometry(3, 3, 2, 2, 1, 1, 2, 2))]  # dilation and stride


@pytest.mark.parametrize("shape, g", CASES)
def test_im2col_and_col2im_in_parts_equal_one_thread(monkeypatch, shape, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 1)  # split even these sizes
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
        col = im2col(x, g)
        results[threads] = (col.copy(), col2im(col, shape, g).copy())
    for threads in ("2", "3"):
        np.testing.assert_array_equal(results[threads][0], results["1"][0])
        np.testing.assert_array_equal(results[threads][1], results["1"][1])
    # And one thread against the definition: col[(c, i, j), (n, y, x)] = padded x.
    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    padded = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    col = results["1"][0].reshape(c, g.kh, g.kw, n, ho, wo)
    for ci, i, j in ((0, 0, 0), (c - 1, g.kh - 1, g.kw - 1), (c // 2, g.kh // 2, 0)):
        rows = padded[:, ci, i * g.dh: i * g.dh + g.sh * (ho - 1) + 1: g.sh,
                      j * g.dw: j * g.dw + g.sw * (wo - 1) + 1: g.sw]
        np.testing.assert_array_equal(col[ci, i, j], rows)


def test_every_part_runs_once_and_an_error_in_a_part_is_raised(monkeypatch):
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", "3")
    seen = []
    _parallel.parallel_parts(lambda a, b: seen.extend(range(a, b)), 10, 1 << 20)
    assert sorted(seen) == list(range(10))

    def fail(a, b):
        if a > 0:
            raise ValueError("part failed")

    with pytest.raises(ValueError, match="part failed"):
        _parallel.parallel_parts(fail, 10, 1 << 20)
