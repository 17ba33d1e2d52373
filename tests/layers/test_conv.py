"""Convolution: forward against a loop reference, backward numerically."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._util import make_layer, run_forward


def conv_reference(x, w, b, stride, pad, dilation, group):
    """Direct convolution with explicit loops (float64)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((n, m, ho, wo))
    mg = m // group
    for ni in range(n):
        for o in range(m):
            g = o // mg
            for y in range(ho):
                for xo in range(wo):
                    acc = b[o] if b is not None else 0.0
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                yy = y * sh - ph + i * dh
                                xx = xo * sw - pw + j * dw
                                if 0 <= yy < h and 0 <= xx < wd:
                                    acc += w[o, ci, i, j] * x[ni, g * cg + ci, yy, xx]
                    out[ni, o, y, xo] = acc
    return out


CASES = [
    # (param text, bottom shape, stride, pad, dilation, group)
    ("num_output: 4 kernel_size: 3", (2, 3, 7, 5), (1, 1), (0, 0), (1, 1), 1),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 6), (2, 2), (1, 1), (1, 1), 1),
    ("num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2",
     (1, 4, 7, 5), (2, 1), (1, 0), (1, 1), 2),
    ("num_output: 6 kernel_size: 3 dilation: 2 pad: 2 group: 3", (2, 3, 7, 7), (1, 1), (2, 2),
     (2, 2), 3),
    ("num_output: 2 kernel_size: 2 kernel_size: 3 stride: 3 bias_term: false", (1, 2, 8, 9),
     (3, 3), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_forward_matches_loops(case, xp):
    text, shape, stride, pad, dilation, group = case
    layer = make_layer(f'name: "c" type: "Convolution" convolution_param {{ {text} }}')
    layer.setup([shape])
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    params = [rng.standard_normal(s) for s in layer.param_shapes]
    (top,), _, _ = run_forward(layer, [x], params, xp)
    bias = params[1] if len(params) > 1 else None
    expected = conv_reference(x, params[0], bias, stride, pad, dilation, group)
    np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_gradients(case, xp):
    text, shape, *_ = case
    layer = make_layer(f'name: "c" type: "Convolution" convolution_param {{ {text} }}')
    x = xp.asarray(np.random.default_rng(5).standard_normal(shape))
    results = check_layer(layer, [x])
    assert len(results) == (3 if "bias_term: false" not in text else 2)
    for r in results:
        assert r.passed, r


def test_param_diffs_accumulate():
    layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                       'kernel_size: 2 }')
    x = np.random.default_rng(0).standard_normal((1, 1, 3, 3))
    params = [np.ones((2, 1, 2, 2)), np.zeros(2)]
    _, bottoms, tops = run_forward(layer, [x], params)
    tops[0].diff = np.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    once = layer.blobs[0].diff.copy()
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)
    np.testing.assert_allclose(layer.blobs[1].diff, [8.0, 8.0])  # 2 passes x 4 outputs


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2 must divide"),
        ("num_output: 4", (1, 3, 5, 5), "kernel_size"),
        ("num_output: 4 kernel_size: 7", (1, 3, 5, 5), "does not fit"),
        ("num_output: 4 kernel_size: 3 axis: 2", (1, 3, 5, 5), "axis 2 is not supported"),
    ],
)
def test_bad_parameters_name_the_layer(text, shape, message):
    layer = make_layer(f'name: "bad" type: "Convolution" convolution_param {{ {text} }}')
    with pytest.raises(BpinspectError, match=message) as err:
        layer.setup([shape])
    assert "'bad'" in str(err.value)
