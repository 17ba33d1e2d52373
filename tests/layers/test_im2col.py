"""im2col / col2im: the documented layout by loops, adjointness, valid ranges, scratch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.layers._im2col import Geometry, col2im, im2col, scratch, valid_range

GEOMETRIES = [
    # (kh, kw, sh, sw, ph, pw, dh, dw), input (N, C, H, W)
    ((3, 3, 1, 1, 0, 0, 1, 1), (2, 3, 5, 4)),
    ((3, 2, 2, 1, 1, 0, 1, 1), (2, 2, 7, 5)),
    ((3, 3, 2, 3, 2, 1, 2, 1), (1, 3, 9, 8)),   # dilation, pad > 1, unequal strides
    ((1, 1, 1, 1, 0, 0, 1, 1), (2, 4, 3, 3)),   # pointwise
    ((2, 4, 3, 2, 1, 3, 1, 2), (2, 2, 6, 7)),   # pad wider than the dilated overhang
    ((2, 1, 3, 2, 1, 0, 1, 1), (2, 2, 8, 7)),   # kernel below the stride: phases unread
    ((5, 5, 4, 4, 2, 1, 1, 1), (2, 2, 13, 11)),  # stride phases, pad, a partial kernel row
]


def im2col_loops(x, geometry):
    """The layout of the _im2col docstring, element by element."""
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    n, c, h, w = x.shape
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    col = np.zeros((c * kh * kw, n * ho * wo))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for ni in range(n):
                    for y in range(ho):
                        for z in range(wo):
                            yy, zz = y * sh - ph + i * dh, z * sw - pw + j * dw
                            if 0 <= yy < h and 0 <= zz < w:
                                col[(ci * kh + i) * kw + j, (ni * ho + y) * wo + z] = x[ni, ci, yy,
                                                                                        zz]
    return col


def col2im_loops(col, shape, geometry):
    """Each col entry added back to the pixel it was read from, in kernel-offset order
    from 0, in col's dtype."""
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    n, c, h, w = shape
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    x = np.zeros(shape, dtype=col.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for ni in range(n):
                    for y in range(ho):
                        for z in range(wo):
                            yy, zz = y * sh - ph + i * dh, z * sw - pw + j * dw
                            if 0 <= yy < h and 0 <= zz < w:
                                x[ni, ci, yy, zz] += col[(ci * kh + i) * kw + j,
                                                         (ni * ho + y) * wo + z]
    return x


@pytest.mark.parametrize("geometry, shape", GEOMETRIES)
def test_im2col_matches_the_documented_layout(geometry, shape, xp):
    x = np.random.default_rng(0).standard_normal(shape)
    col = im2col(xp.asarray(x), Geometry(*geometry))
    np.testing.assert_array_equal(to_host(col), im2col_loops(x, geometry))


@pytest.mark.parametrize("geometry, shape", GEOMETRIES)
def test_col2im_matches_loops_and_is_the_adjoint(geometry, shape, xp):
    g = Geometry(*geometry)
    rng = np.random.default_rng(1)
    ho, wo = g.out_size(*shape[2:])
    col = rng.standard_normal((shape[1] * g.kh * g.kw, shape[0] * ho * wo))
    x = rng.standard_normal(shape)
    back = to_host(col2im(xp.asarray(col), shape, g))
    np.testing.assert_allclose(back, col2im_loops(col, shape, geometry), rtol=1e-13, atol=1e-13)
    # <im2col(x), col> == <x, col2im(col)>: the backward of im2col is col2im.
    lhs = float((to_host(im2col(xp.asarray(x), g)) * col).sum())
    assert lhs == pytest.approx(float((x * back).sum()), rel=1e-12)


@pytest.mark.parametrize("geometry, shape", GEOMETRIES)
def test_col2im_in_float32_is_the_loops_sum_bit_for_bit(geometry, shape):
    # Each pixel's terms are added from 0 in kernel-offset order (in place, or in the
    # stride phases of a strided geometry): the same float32 roundings as the loops.
    g = Geometry(*geometry)
    ho, wo = g.out_size(*shape[2:])
    col = np.random.default_rng(2).standard_normal(
        (shape[1] * g.kh * g.kw, shape[0] * ho * wo)).astype(np.float32)
    back = col2im(col, shape, g, out=np.full(shape, np.nan, dtype=np.float32))
    np.testing.assert_array_equal(back, col2im_loops(col, shape, geometry))


def test_col2im_overwrites_the_given_output(xp):
    g = Geometry(2, 2, 1, 1, 0, 0)
    col = xp.ones((4, 4))  # C = 1, N = 1, 3x3 input -> 2x2 output
    out = xp.full((1, 1, 3, 3), 7.0)
    result = col2im(col, (1, 1, 3, 3), g, out=out)
    assert result is out
    # how many windows cover each pixel of a 3x3 image under a 2x2 kernel
    np.testing.assert_array_equal(to_host(out)[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_out_size_by_hand():
    assert Geometry(11, 11, 4, 4, 0, 0).out_size(227, 227) == (55, 55)  # (227 - 11) / 4 + 1
    assert Geometry(5, 5, 1, 1, 2, 2).out_size(27, 27) == (27, 27)  # 27 + 4 - 5 + 1
    assert Geometry(3, 3, 2, 2, 0, 0).out_size(8, 7) == (3, 3)  # floor(5 / 2) + 1, floor(4/2)+1
    # dilation 2: the 3-tap kernel spans 5 pixels: 7 - 5 + 1 = 3; 7 + 2 - 5 + 1 = 5
    assert Geometry(3, 3, 1, 1, 0, 1, 2, 2).out_size(7, 7) == (3, 5)


def test_valid_range_against_brute_force():
    for size, pad, stride, dilation, offset, out in itertools.product(
            (1, 4, 7), (0, 1, 3), (1, 2, 3), (1, 2), (0, 1, 4), (1, 3, 6)):
        inside = [o for o in range(out) if 0 <= o * stride - pad + offset * dilation < size]
        lo, hi, start = valid_range(size, pad, stride, dilation, offset, out)
        assert list(range(lo, hi)) == inside, (size, pad, stride, dilation, offset, out)
        if inside:
            assert start == inside[0] * stride - pad + offset * dilation


def test_pointwise_single_image_is_a_view_and_a_batch_is_copied():
    g = Geometry(1, 1, 1, 1, 0, 0)
    x = np.arange(12.0).reshape(1, 3, 2, 2)
    col = im2col(x, g, out=np.empty((3, 4)))
    assert np.shares_memory(col, x)
    np.testing.assert_array_equal(col, x.reshape(3, 4))
    batch = np.arange(24.0).reshape(2, 3, 2, 2)
    col = im2col(batch, g)
    assert not np.shares_memory(col, batch)
    np.testing.assert_array_equal(col, batch.transpose(1, 0, 2, 3).reshape(3, 8))


def test_scratch_reuses_memory_per_slot():
    a = scratch("test.a", (4, 5), np.float32, np)
    b = scratch("test.b", (4, 5), np.float32, np)
    again = scratch("test.a", (2, 3), np.float64, np)
    assert not np.shares_memory(a, b)
    assert np.shares_memory(a, again) and again.shape == (2, 3) and again.dtype == np.float64
    bigger = scratch("test.a", (100, 100), np.float32, np)  # grows: a new buffer
    assert bigger.shape == (100, 100) and not np.shares_memory(bigger, a)
