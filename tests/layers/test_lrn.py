"""LRN: the scale cache and forward by hand and by loops, backward numerically and
against seed 002's formula."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.layers.lrn import _pow_negative
from bpinspect.session.gradcheck import check_layer

from ._util import make_layer, run_forward


def lrn_reference(x, size, alpha, beta, k, within):
    """Caffe's LRN with explicit loops (float64): (top, scale)."""
    n, c, h, w = x.shape
    pre = (size - 1) // 2
    scale = np.zeros_like(x)
    for a in range(n):
        for ch in range(c):
            for y in range(h):
                for z in range(w):
                    if within:  # k plays no part; AVE pooling divides by size^2
                        acc = 0.0
                        for yy in range(y - pre, y - pre + size):
                            for zz in range(z - pre, z - pre + size):
                                if 0 <= yy < h and 0 <= zz < w:
                                    acc += x[a, ch, yy, zz] ** 2
                        scale[a, ch, y, z] = 1.0 + alpha * (acc / size**2)
                    else:
                        acc = sum(x[a, cc, y, z] ** 2 for cc in range(ch - pre, ch - pre + size)
                                  if 0 <= cc < c)
                        scale[a, ch, y, z] = k + alpha / size * acc
    return x * scale**-beta, scale


def _layer(text):
    return make_layer(f'name: "n" type: "LRN" lrn_param {{ {text} }}')


def test_scale_by_hand_on_one_pixel(xp):
    # 3 channels holding 1, 2, 3; local_size 3, alpha 3, beta 1, k 1 (the default):
    # scale_0 = 1 + 3/3 * (0 + 1 + 4) = 6; scale_1 = 1 + (1 + 4 + 9) = 15; scale_2 = 1 + 13 = 14
    layer = _layer("local_size: 3 alpha: 3 beta: 1")
    assert layer.k == 1.0
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_allclose(to_host(layer.internals()["scale"]).ravel(), [6.0, 15.0, 14.0])
    np.testing.assert_allclose(top.ravel(), [1 / 6, 2 / 15, 3 / 14])


def test_within_channel_by_hand_ignores_k(xp):
    # One channel, a 1 x 3 row holding 1, 2, 3; local_size 3 (pad 1), alpha 9, beta 1, k 5.
    # The 3x3 windows see only this row: sums of squares 0+1+4 = 5, 1+4+9 = 14, 4+9+0 = 13;
    # scale = 1 + 9 * sum / 9 = 6, 15, 14 (k is not used), top = x / scale.
    layer = _layer("local_size: 3 alpha: 9 beta: 1 k: 5 norm_region: WITHIN_CHANNEL")
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_allclose(to_host(layer.internals()["scale"]).ravel(), [6.0, 15.0, 14.0])
    np.testing.assert_allclose(top.ravel(), [1 / 6, 2 / 15, 3 / 14])


def test_window_wider_than_the_channels(xp):
    # local_size 5 on 2 channels: every window holds both channels.
    layer = _layer("local_size: 5 alpha: 5 beta: 1 k: 2")
    x = np.array([1.0, 3.0]).reshape(1, 2, 1, 1)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_allclose(to_host(layer.internals()["scale"]).ravel(), [12.0, 12.0])
    np.testing.assert_allclose(top.ravel(), [1 / 12, 3 / 12])


PARAMS = [
    "local_size: 5 alpha: 0.0001 beta: 0.75",          # CaffeNet's norm1/norm2 (k = 1)
    "local_size: 3 alpha: 0.5 beta: 0.6 k: 2",
    "local_size: 5 alpha: 2.0 beta: 0.75 k: 0.7",
    "local_size: 5 alpha: 2.0 beta: 1.3 k: 0.7",
    "local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL",
    "local_size: 5 alpha: 1.5 beta: 0.9 k: 3 norm_region: WITHIN_CHANNEL",  # k plays no part
]


def _parse(text):
    fields = dict(zip(text.split()[::2], text.split()[1::2], strict=True))
    return int(fields["local_size:"]), fields.get("norm_region:") == "WITHIN_CHANNEL"


@pytest.mark.parametrize("text", PARAMS)
def test_forward_and_scale_match_loops(text, xp):
    layer = _layer(text)
    x = np.random.default_rng(1).standard_normal((2, 7, 4, 3))
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    size, within = _parse(text)
    # The proto stores alpha/beta/k as float32: use the values the layer read.
    expected, scale = lrn_reference(x, size, layer.alpha, layer.beta, layer.k, within)
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    np.testing.assert_allclose(to_host(layer.internals()["scale"]), scale, rtol=1e-12)


@pytest.mark.parametrize("text", PARAMS)
def test_gradients(text, xp):
    layer = _layer(text)
    x = xp.asarray(np.random.default_rng(2).standard_normal((2, 7, 4, 3)))
    (result,) = check_layer(layer, [x])
    assert result.passed, result


def test_backward_is_seed_002s_formula():
    # bottom_diff = top_diff * scale^-beta
    #               - 2 alpha beta / n * x * window_sum(top_diff * top / scale)
    size, alpha, beta, k = 3, 0.5, 0.75, 2.0
    layer = _layer(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 1, 1))
    (top,), bottoms, tops = run_forward(layer, [x])
    dy = rng.standard_normal(top.shape)
    tops[0].diff = dy
    layer.backward(tops, [True], bottoms)
    _, scale = lrn_reference(x, size, alpha, beta, k, False)
    ratio = (dy * top / scale).ravel()
    window = np.array([ratio[max(c - 1, 0) : c + 2].sum() for c in range(4)]).reshape(x.shape)
    expected = dy * scale**-beta - 2 * alpha * beta / size * x * window
    np.testing.assert_allclose(bottoms[0].diff, expected, rtol=1e-12)


def test_backward_reuses_the_stored_scale(xp):
    layer = _layer("local_size: 3 alpha: 1 beta: 1")
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2))
    _, bottoms, tops = run_forward(layer, [x], xp=xp)
    tops[0].diff = xp.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    before = to_host(bottoms[0].diff).copy()
    scale = layer.internals()["scale"]
    scale *= 2.0  # the exposed cache is the one backward reads
    layer.backward(tops, [True], bottoms)
    assert layer.internals()["scale"] is scale
    # with scale doubled and beta 1, the first term halves exactly
    s, y = to_host(scale), to_host(tops[0].data)
    window = np.stack([(y / s)[:, max(c - 1, 0) : c + 2].sum(axis=1) for c in range(3)], axis=1)
    expected = 1.0 / s - 2.0 / 3.0 * x * window
    np.testing.assert_allclose(to_host(bottoms[0].diff), expected, rtol=1e-12)
    assert not np.allclose(before, expected)


def test_no_propagate_down_leaves_the_bottom_diff():
    layer = _layer("local_size: 3")
    x = np.ones((1, 3, 1, 1))
    _, bottoms, tops = run_forward(layer, [x])
    sentinel = bottoms[0].diff
    layer.backward(tops, [False], bottoms)
    assert bottoms[0].diff is sentinel


@pytest.mark.parametrize("beta", [0.75, 0.6, 1.0])
def test_pow_negative_agrees_with_power(beta):
    scale = np.random.default_rng(3).uniform(1.0, 50.0, 1000).astype(np.float32)
    np.testing.assert_allclose(_pow_negative(scale, beta), scale.astype(np.float64) ** -beta,
                               rtol=4e-7)


@pytest.mark.parametrize(
    "text, message",
    [("local_size: 4", "local_size must be odd"), ("local_size: 3 norm_region: 7", "norm_region")],
)
def test_bad_parameters(text, message):
    with pytest.raises((BpinspectError, Exception), match=message):
        _layer(text)


def test_in_place_is_refused():
    layer = make_layer('name: "n" type: "LRN" bottom: "x" top: "x" lrn_param { local_size: 3 }')
    with pytest.raises(BpinspectError, match="in place"):
        layer.setup([(1, 3, 2, 2)])
