"""Convolution and Deconvolution: forward against loops, backward numerically."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.layers import conv
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


def deconv_reference(x, w, b, stride, pad, dilation, group, out_hw):
    """Transposed convolution with explicit loops: each bottom pixel sprays its
    value through the kernel onto the top (float64)."""
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    cg = c // group
    out = np.zeros((n, og * group, *out_hw))
    for ni in range(n):
        for ci in range(c):
            g = ci // cg
            for y in range(h):
                for xi in range(wd):
                    for o in range(og):
                        for i in range(kh):
                            for j in range(kw):
                                ty, tx = y * sh - ph + i * dh, xi * sw - pw + j * dw
                                if 0 <= ty < out_hw[0] and 0 <= tx < out_hw[1]:
                                    out[ni, g * og + o, ty, tx] += w[ci, o, i, j] * x[ni, ci, y, xi]
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


CASES = [
    # (param text, bottom shape, stride, pad, dilation, group, top H x W worked out by hand)
    ("num_output: 4 kernel_size: 3", (2, 3, 7, 5), (1, 1), (0, 0), (1, 1), 1,
     (5, 3)),  # 7 - 3 + 1, 5 - 3 + 1
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 6), (2, 2), (1, 1), (1, 1), 1,
     (4, 3)),  # (7 + 2 - 3) / 2 + 1 = 4, (6 + 2 - 3) / 2 + 1 = 3 (floor)
    ("num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2",
     (1, 4, 7, 5), (2, 1), (1, 0), (1, 1), 2, (4, 4)),  # (7 + 2 - 3) / 2 + 1, 5 - 2 + 1
    ("num_output: 6 kernel_size: 3 dilation: 2 pad: 2 group: 3", (2, 3, 7, 7), (1, 1), (2, 2),
     (2, 2), 3, (7, 7)),  # the kernel spans 5: 7 + 4 - 5 + 1
    ("num_output: 2 kernel_size: 2 kernel_size: 3 stride: 3 bias_term: false", (1, 2, 8, 9),
     (3, 3), (0, 0), (1, 1), 1, (3, 3)),  # (8 - 2) / 3 + 1, (9 - 3) / 3 + 1
    ("num_output: 3 kernel_size: 1", (2, 5, 3, 4), (1, 1), (0, 0), (1, 1), 1,
     (3, 4)),  # pointwise: no im2col
    ("num_output: 4 kernel_size: 3 stride: 2 stride: 1 pad: 0 pad: 2 dilation: 1 dilation: 2",
     (2, 2, 6, 5), (2, 1), (0, 2), (1, 2), 1, (2, 5)),  # (6 - 3) / 2 + 1, 5 + 4 - 5 + 1
]


def _layer(text, layer_type="Convolution", name="c"):
    return make_layer(f'name: "{name}" type: "{layer_type}" convolution_param {{ {text} }}')


def _params(layer, seed=3, shape=None):
    """Gaussian params of the layer's shapes (set up on ``shape`` first, if given)."""
    if shape is not None:
        layer.setup([shape])
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in layer.param_shapes]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_forward_matches_loops(case, xp):
    text, shape, stride, pad, dilation, group, top_hw = case
    layer = _layer(text)
    assert layer.setup([shape]) == [(shape[0], layer.num_output, *top_hw)]
    x = np.random.default_rng(3).standard_normal(shape)
    params = _params(layer)
    (top,), _, _ = run_forward(layer, [x], params, xp)
    bias = params[1] if len(params) > 1 else None
    expected = conv_reference(x, params[0], bias, stride, pad, dilation, group)
    np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_gradients(case, xp):
    text, shape, *_ = case
    layer = _layer(text)
    x = xp.asarray(np.random.default_rng(5).standard_normal(shape))
    results = check_layer(layer, [x])
    assert [r.what for r in results] == ["bottom[0]", "param[0]"] + (
        [] if "bias_term: false" in text else ["param[1]"])
    for r in results:
        assert r.passed, r


def test_weight_and_bias_shapes():
    layer = _layer("num_output: 6 kernel_h: 3 kernel_w: 2 group: 3")
    layer.setup([(1, 9, 5, 5)])
    assert layer.param_shapes == [(6, 3, 3, 2), (6,)]  # (num_output, C / group, kh, kw)
    layer = _layer("num_output: 6 kernel_size: 3 bias_term: false")
    layer.setup([(1, 2, 5, 5)])
    assert layer.param_shapes == [(6, 2, 3, 3)]


def test_batches_in_chunks_give_the_same_result(monkeypatch):
    text = "num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 2"
    shape = (5, 4, 9, 8)  # top 5 x 4; one image's col: (4 * 3 * 3) x (5 * 4) float64
    one_image = 36 * 20 * 8
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    dtop = rng.standard_normal((5, 4, 5, 4))
    results = []
    # A budget just under two images splits the batch of 5 into GEMMs of 2, 2 and 1.
    for budget, chunks in ((64 << 20, 1), (2 * one_image - 1, 3)):
        monkeypatch.setattr(conv, "COL_BUDGET", budget)
        layer = _layer(text)
        params = _params(layer, shape=shape)
        (top,), bottoms, tops = run_forward(layer, [x], params)
        assert len(list(layer._chunks(x))) == chunks
        tops[0].diff = dtop
        layer.backward(tops, [True], bottoms)
        results.append((top, bottoms[0].diff, layer.blobs[0].diff, layer.blobs[1].diff))
        expected = conv_reference(x, params[0], params[1], (2, 2), (1, 1), (1, 1), 2)
        np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)
    for whole, chunked in zip(*results, strict=True):
        np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_several_bottoms_share_the_weights(xp):
    layer = make_layer('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "ta" '
                       'top: "tb" convolution_param { num_output: 3 kernel_size: 2 stride: 2 }')
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 2, 5, 4)) for _ in range(2)]
    assert layer.setup([(2, 2, 5, 4)] * 2) == [(2, 3, 2, 2)] * 2
    params = _params(layer, seed=4)
    tops, _, _ = run_forward(layer, xs, params, xp)
    for x, top in zip(xs, tops, strict=True):
        expected = conv_reference(x, params[0], params[1], (2, 2), (0, 0), (1, 1), 1)
        np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)
    # The weight diff sums both bottoms' contributions (checked numerically).
    results = check_layer(layer, [xp.asarray(x) for x in xs])
    assert [r.what for r in results] == ["bottom[0]", "bottom[1]", "param[0]", "param[1]"]
    assert all(r.passed for r in results), results


def test_param_diffs_accumulate():
    layer = _layer("num_output: 2 kernel_size: 2")
    x = np.random.default_rng(0).standard_normal((1, 1, 3, 3))
    params = [np.ones((2, 1, 2, 2)), np.zeros(2)]
    _, bottoms, tops = run_forward(layer, [x], params)
    tops[0].diff = np.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    once = layer.blobs[0].diff.copy()
    # dW[o, 0, i, j] = sum over the 2x2 outputs of x[y + i, x + j]
    expected = np.array([[x[0, 0, i:i + 2, j:j + 2].sum() for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(once[0, 0], expected)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)
    np.testing.assert_allclose(layer.blobs[1].diff, [8.0, 8.0])  # 2 passes x 4 outputs


def test_propagate_down_flags_are_honoured():
    layer = _layer("num_output: 2 kernel_size: 2")
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3))
    _, bottoms, tops = run_forward(layer, [x], _params(layer, shape=x.shape))
    tops[0].diff = np.ones(tops[0].shape)
    sentinel = np.full(x.shape, 7.0)
    bottoms[0].diff = sentinel
    layer.param_propagate_down = [False, True]
    layer.backward(tops, [False], bottoms)
    assert bottoms[0].diff is sentinel  # not touched
    assert not layer.blobs[0].diff.any() and layer.blobs[1].diff.tolist() == [4.0, 4.0]
    layer.param_propagate_down = [True, False]
    layer.backward(tops, [True], bottoms)
    assert layer.blobs[0].diff.any() and layer.blobs[1].diff.tolist() == [4.0, 4.0]
    assert bottoms[0].diff is not sentinel


def test_param_fillers_come_from_the_prototxt():
    layer = _layer('num_output: 2 kernel_size: 2 weight_filler { type: "xavier" } '
                   'bias_filler { type: "constant" value: 0.1 }')
    layer.setup([(1, 1, 3, 3)])
    weight, bias = layer.param_fillers()
    assert weight.type == "xavier" and bias.value == pytest.approx(0.1)
    layer = _layer("num_output: 2 kernel_size: 2")
    layer.setup([(1, 1, 3, 3)])
    assert layer.param_fillers() == [None, None]


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2 must divide"),
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "group 2 must divide"),
        ("num_output: 4 kernel_size: 7", (1, 3, 5, 5), "leaves no output"),
        ("num_output: 4 kernel_size: 3 dilation: 3", (1, 3, 6, 6), "leaves no output"),
        # Not (N, C, H, W) with channel axis 1: handed to conv_nd, whose checks name the layer
        ("num_output: 4 kernel_size: 3 axis: 4", (1, 3, 5, 5), "axis 4 is out of range"),
        ("num_output: 4 kernel_size: 3 kernel_size: 3", (3, 5, 5), "kernel_size has 2 values"),
        ("kernel_size: 3", (1, 3, 5, 5), "num_output"),
        ("num_output: 4 kernel_h: 3", (1, 3, 5, 5), "kernel size must be > 0"),
        ("num_output: 4 kernel_size: 3 stride_h: 2", (1, 3, 5, 5), "stride and dilation"),
    ],
)
def test_bad_parameters_at_setup_name_the_layer(text, shape, message):
    layer = _layer(text, name="bad")
    with pytest.raises(BpinspectError, match=message) as err:
        layer.setup([shape])
    assert "'bad'" in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("num_output: 4", "kernel_size \\(or kernel_h and kernel_w\\) must be given"),
        ("num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3", "either kernel_size or"),
        ("num_output: 4 kernel_size: 3 pad: 1 pad_h: 1", "either pad or pad_h"),
    ],
)
def test_bad_spatial_fields_name_the_layer(text, message):
    with pytest.raises(BpinspectError, match=message) as err:
        _layer(text, name="bad")
    assert "'bad'" in str(err.value)


def test_in_place_and_mismatched_bottoms_are_refused():
    layer = make_layer('name: "c" type: "Convolution" bottom: "x" top: "x" '
                       'convolution_param { num_output: 3 kernel_size: 1 }')
    with pytest.raises(BpinspectError, match="in place"):
        layer.setup([(1, 3, 4, 4)])
    layer = _layer("num_output: 3 kernel_size: 1")
    with pytest.raises(BpinspectError, match="one shape"):
        layer.setup([(1, 3, 4, 4), (1, 3, 4, 5)])
    with pytest.raises(BpinspectError, match="one top per bottom"):
        layer.check_blob_counts(2, 1)


# -- Deconvolution --------------------------------------------------------------------

DECONV_CASES = [
    # (param text, bottom shape, stride, pad, dilation, group, top H x W worked out by hand)
    ("num_output: 3 kernel_size: 3", (2, 2, 4, 3), (1, 1), (0, 0), (1, 1), 1,
     (6, 5)),  # 1 * (4 - 1) + 3, 1 * (3 - 1) + 3
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2", (1, 4, 4, 3), (2, 2), (1, 1),
     (1, 1), 2, (7, 5)),  # 2 * 3 + 3 - 2, 2 * 2 + 3 - 2
    ("num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 1 dilation: 2 bias_term: false",
     (1, 3, 3, 4), (3, 1), (0, 0), (2, 2), 1, (9, 8)),  # 3 * 2 + 2 * 1 + 1, 3 + 2 * 2 + 1
]


@pytest.mark.parametrize("case", DECONV_CASES, ids=lambda c: c[0])
def test_deconvolution_forward_matches_loops(case, xp):
    text, shape, stride, pad, dilation, group, top_hw = case
    layer = _layer(text, "Deconvolution", "d")
    assert layer.setup([shape]) == [(shape[0], layer.num_output, *top_hw)]
    # weight: (C_bottom, num_output / group, kh, kw)
    assert layer.param_shapes[0][:2] == (shape[1], layer.num_output // group)
    x = np.random.default_rng(6).standard_normal(shape)
    params = _params(layer)
    (top,), _, _ = run_forward(layer, [x], params, xp)
    bias = params[1] if len(params) > 1 else None
    expected = deconv_reference(x, params[0], bias, stride, pad, dilation, group, top_hw)
    np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", DECONV_CASES, ids=lambda c: c[0])
def test_deconvolution_gradients(case, xp):
    text, shape, *_ = case
    layer = _layer(text, "Deconvolution", "d")
    x = xp.asarray(np.random.default_rng(7).standard_normal(shape))
    results = check_layer(layer, [x])
    assert len(results) == (2 if "bias_term: false" in text else 3)
    for r in results:
        assert r.passed, r


def test_deconvolution_is_the_transpose_of_convolution():
    # Same weights, no bias: <conv(x), y> == <x, deconv(y)>.
    text = "num_output: {} kernel_size: 3 stride: 2 pad: 1 group: 2 bias_term: false"
    forward = _layer(text.format(6))
    backward = _layer(text.format(4), "Deconvolution", "d")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 7, 5))  # sizes that the deconvolution gives back
    (y_shape,) = forward.setup([x.shape])
    weight = rng.standard_normal(forward.param_shapes[0])
    (conv_x,), _, _ = run_forward(forward, [x], [weight])
    y = rng.standard_normal(y_shape)
    (deconv_y,), _, _ = run_forward(backward, [y], [weight])
    assert deconv_y.shape == x.shape
    assert float((conv_x * y).sum()) == pytest.approx(float((x * deconv_y).sum()), rel=1e-12)


def test_deconvolution_bottom_diff_is_convolution_of_the_top_diff():
    layer = _layer("num_output: 2 kernel_size: 2 stride: 2", "Deconvolution", "d")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 3, 2, 2))
    params = _params(layer, shape=x.shape)
    _, bottoms, tops = run_forward(layer, [x], params)
    dtop = rng.standard_normal(tops[0].shape)
    tops[0].diff = dtop
    layer.backward(tops, [True], bottoms)
    # conv of dtop with weight (3, 2, 2, 2) read as (out = 3, in = 2): stride 2, no bias
    expected = conv_reference(dtop, params[0], None, (2, 2), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(to_host(bottoms[0].diff), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].diff, dtop.sum(axis=(0, 2, 3)))


def test_top_is_a_new_array_each_forward():
    # The session keeps what a step produced; a layer never writes into old tops.
    layer = _layer("num_output: 2 kernel_size: 1")
    x = np.ones((1, 1, 2, 2))
    _, bottoms, tops = run_forward(layer, [x], [np.ones((2, 1, 1, 1)), np.zeros(2)])
    first = tops[0].data
    layer.forward(bottoms, tops)
    assert tops[0].data is not first
