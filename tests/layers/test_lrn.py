"""LRN: the scale cache and forward by hand and by loops, backward numerically."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
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
                    if within:
                        acc = 0.0
                        for yy in range(y - pre, y - pre + size):
                            for zz in range(z - pre, z - pre + size):
                                if 0 <= yy < h and 0 <= zz < w:
                                    acc += x[a, ch, yy, zz] ** 2
                        scale[a, ch, y, z] = 1.0 + alpha / size**2 * acc
                    else:
                        acc = sum(x[a, cc, y, z] ** 2 for cc in range(ch - pre, ch - pre + size)
                                  if 0 <= cc < c)
                        scale[a, ch, y, z] = k + alpha / size * acc
    return x * scale**-beta, scale


def test_scale_by_hand_on_one_pixel():
    # 3 channels holding 1, 2, 3; local_size 3, alpha 3, beta 1, k 1:
    # scale_0 = 1 + 3/3 * (0 + 1 + 4) = 6; scale_1 = 1 + (1 + 4 + 9) = 15; scale_2 = 1 + 13 = 14
    layer = make_layer('name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 3 beta: 1 }')
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    (top,), _, _ = run_forward(layer, [x])
    np.testing.assert_allclose(layer.internals()["scale"].ravel(), [6.0, 15.0, 14.0])
    np.testing.assert_allclose(top.ravel(), [1 / 6, 2 / 15, 3 / 14])


PARAMS = [
    "local_size: 5 alpha: 0.0001 beta: 0.75",          # CaffeNet's norm1/norm2 (k = 1)
    "local_size: 3 alpha: 0.5 beta: 0.6 k: 2",
    "local_size: 5 alpha: 2.0 beta: 1.3 k: 0.7",
    "local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL",
    "local_size: 5 alpha: 1.5 beta: 0.9 k: 3 norm_region: WITHIN_CHANNEL",  # k plays no part
]


def _parse(text):
    fields = dict(zip(text.split()[::2], text.split()[1::2], strict=True))
    return (int(fields["local_size:"]), float(fields["alpha:"]), float(fields["beta:"]),
            float(fields.get("k:", 1.0)), fields.get("norm_region:") == "WITHIN_CHANNEL")


@pytest.mark.parametrize("text", PARAMS)
def test_forward_and_scale_match_loops(text, xp):
    layer = make_layer(f'name: "n" type: "LRN" lrn_param {{ {text} }}')
    x = np.random.default_rng(1).standard_normal((2, 7, 4, 3))
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    size, _, _, _, within = _parse(text)
    # The proto stores alpha/beta/k as float32: use the values the layer read.
    expected, scale = lrn_reference(x, size, layer.alpha, layer.beta, layer.k, within)
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    np.testing.assert_allclose(to_host(layer.internals()["scale"]), scale, rtol=1e-12)


@pytest.mark.parametrize("text", PARAMS)
def test_gradients(text, xp):
    layer = make_layer(f'name: "n" type: "LRN" lrn_param {{ {text} }}')
    x = xp.asarray(np.random.default_rng(2).standard_normal((2, 7, 4, 3)))
    (result,) = check_layer(layer, [x])
    assert result.passed, result


def test_backward_is_seed_002s_formula():
    # bottom_diff = top_diff * scale^-beta - 2 alpha beta / n * x * window_sum(top_diff * top / scale)
    size, alpha, beta, k = 3, 0.5, 0.75, 2.0
    layer = make_layer(f'name: "n" type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} '
                       f'beta: {beta} k: {k} }}')
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


def test_backward_reuses_the_stored_scale():
    layer = make_layer('name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 1 beta: 1 }')
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2))
    _, bottoms, tops = run_forward(layer, [x])
    tops[0].diff = np.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    before = bottoms[0].diff.copy()
    layer.internals()["scale"][...] *= 2.0  # the exposed cache is the one backward reads
    layer.backward(tops, [True], bottoms)
    assert not np.allclose(before, bottoms[0].diff)


@pytest.mark.parametrize(
    "text, message",
    [("local_size: 4", "local_size must be odd"), ("local_size: 3 norm_region: 7", "norm_region")],
)
def test_bad_parameters(text, message):
    with pytest.raises((BpinspectError, Exception), match=message):
        make_layer(f'name: "n" type: "LRN" lrn_param {{ {text} }}')
