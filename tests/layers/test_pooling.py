"""Pooling: Caffe's output sizes by hand, forward against loops, backward numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.layers.pooling import pooled_size
from bpinspect.session.gradcheck import check_layer

from ._util import distinct_values, make_layer, run_forward


@pytest.mark.parametrize(
    "size, kernel, pad, stride, expected",
    [
        (6, 3, 0, 2, 3),    # ceil((6-3)/2)+1 = ceil(1.5)+1 = 3: the last window hangs over
        (7, 3, 0, 2, 3),    # (7-3)/2+1 = 3 exactly
        (55, 3, 0, 2, 27),  # CaffeNet pool1: ceil(26)+1 = 27
        (13, 3, 0, 2, 6),   # CaffeNet pool5: ceil(5)+1 = 6
        (5, 2, 1, 2, 3),    # ceil((5+2-2)/2)+1 = 4, but window 3 starts at 6 >= 5+1: 3
        (4, 3, 1, 2, 3),    # ceil((4+2-3)/2)+1 = 3; window 2 starts at 4-1 = 3 < 4+1: kept
        (3, 2, 1, 1, 4),    # ceil((3+2-2)/1)+1 = 4; window 3 starts at 3 < 3+1: kept
    ],
)
def test_output_size_by_hand(size, kernel, pad, stride, expected):
    assert pooled_size(size, kernel, pad, stride) == expected


def pool_reference(x, method, kh, kw, sh, sw, ph, pw):
    """Caffe's pooling loops, written out (float64); returns (top, argmax)."""
    n, c, h, w = x.shape
    ho = pooled_size(h, kh, ph, sh)
    wo = pooled_size(w, kw, pw, sw)
    top = np.zeros((n, c, ho, wo))
    arg = np.full((n, c, ho, wo), -1)
    for a in range(n):
        for ch in range(c):
            for y in range(ho):
                for z in range(wo):
                    hs, ws = y * sh - ph, z * sw - pw
                    if method == "MAX":
                        he, we = min(hs + kh, h), min(ws + kw, w)
                        hs, ws = max(hs, 0), max(ws, 0)
                        best, where = -np.finfo(np.float64).max, -1
                        for yy in range(hs, he):
                            for xx in range(ws, we):
                                if x[a, ch, yy, xx] > best:
                                    best, where = x[a, ch, yy, xx], yy * w + xx
                        top[a, ch, y, z], arg[a, ch, y, z] = best, where
                    else:
                        he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                        size = (he - hs) * (we - ws)
                        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                        top[a, ch, y, z] = x[a, ch, hs:he, ws:we].sum() / size
    return top, arg


CASES = [
    # (pooling_param text, shape, (kh, kw, sh, sw, ph, pw))
    ("kernel_size: 3 stride: 2", (2, 3, 7, 6), (3, 3, 2, 2, 0, 0)),
    ("kernel_size: 3 stride: 2", (1, 2, 6, 6), (3, 3, 2, 2, 0, 0)),
    ("kernel_size: 2 stride: 2 pad: 1", (2, 2, 5, 5), (2, 2, 2, 2, 1, 1)),
    ("kernel_size: 3 stride: 2 pad: 1", (1, 3, 4, 7), (3, 3, 2, 2, 1, 1)),
    ("kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0", (2, 2, 5, 7),
     (3, 2, 1, 2, 1, 0)),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_forward_matches_loops(case, method, xp):
    text, shape, geometry = case
    layer = make_layer(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} {text} }}')
    x = distinct_values(shape, seed=1)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    expected, argmax = pool_reference(x, method, *geometry)
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    if method == "MAX":
        np.testing.assert_array_equal(to_host(layer.internals()["argmax"]), argmax)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_gradients(case, method, xp):
    text, shape, _ = case
    layer = make_layer(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} {text} }}')
    # Distinct values spaced far apart compared to eps: no max ties, no kinks.
    x = xp.asarray(distinct_values(shape, seed=2))
    (result,) = check_layer(layer, [x])
    assert result.passed, result


def test_max_ties_go_to_the_first_in_scan_order():
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 }')
    x = np.ones((1, 1, 2, 2))
    run_forward(layer, [x])
    assert int(layer.internals()["argmax"][0, 0, 0, 0]) == 0


def test_overlapping_windows_sum_their_gradients():
    # 3x3 input, kernel 2, stride 1: the centre wins all four windows.
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                       'stride: 1 }')
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    _, bottoms, tops = run_forward(layer, [x])
    tops[0].diff = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    layer.backward(tops, [True], bottoms)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(bottoms[0].diff, expected)


def test_backward_reads_the_argmax_it_exposes():
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                       'stride: 2 }')
    x = distinct_values((1, 1, 4, 4))
    _, bottoms, tops = run_forward(layer, [x])
    argmax = layer.internals()["argmax"]
    argmax[...] = 0  # corrupt the exposed mask: every window now "won" at (0, 0)
    tops[0].diff = np.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    assert bottoms[0].diff[0, 0, 0, 0] == 4.0 and bottoms[0].diff.sum() == 4.0


def test_global_pooling(xp):
    layer = make_layer('name: "g" type: "Pooling" pooling_param { pool: AVE global_pooling: '
                       'true }')
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    assert top.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(top[..., 0, 0], x.mean(axis=(2, 3)))


def test_ave_padding_counts_as_zeros_near_the_edge():
    # 2x2 input of ones, kernel 2, stride 2, pad 1: windows clipped to the padded input
    # hold 1 real cell of 4 -> 1/4 each.
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: AVE kernel_size: 2 '
                       'stride: 2 pad: 1 }')
    (top,), _, _ = run_forward(layer, [np.ones((1, 1, 2, 2))])
    np.testing.assert_allclose(top, np.full((1, 1, 2, 2), 0.25))
    assert math.isclose(top.sum(), 1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("pool: STOCHASTIC kernel_size: 2", "STOCHASTIC pooling is not supported"),
        ("pool: MAX", "needs kernel_size"),
        ("pool: MAX kernel_size: 2 pad: 2", "smaller than the kernel"),
    ],
)
def test_bad_parameters(text, message):
    with pytest.raises(BpinspectError, match=message):
        layer = make_layer(f'name: "p" type: "Pooling" pooling_param {{ {text} }}')
        layer.setup([(1, 1, 5, 5)])
