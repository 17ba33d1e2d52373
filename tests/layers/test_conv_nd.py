"""N-D Convolution and Deconvolution (layers/conv_nd.py, _im2col_nd.py): 1-D, 3-D and
4-D spatial axes, ``axis`` other than 1; forwards against loops, backwards numerically,
the 2-D path kept for (N, C, H, W) and cross-checked, the memory plan of a 3-D net."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net
from bpinspect.layers import _im2col, conv, conv_nd
from bpinspect.layers._im2col_nd import NdGeometry, col2im_nd, im2col_nd
from bpinspect.session.gradcheck import check_layer

from ._util import make_layer, run_forward

# -- loop references ---------------------------------------------------------------------


def conv_loops(x, w, b, stride, pad, dilation, group):
    """Direct convolution of (N, C, S...) over its d spatial axes, with explicit loops."""
    n, c, *size = x.shape
    m, cg, *kernel = w.shape
    out = [(s + 2 * p - (e * (k - 1) + 1)) // st + 1
           for s, p, e, k, st in zip(size, pad, dilation, kernel, stride, strict=True)]
    y = np.zeros((n, m, *out))
    for ni, o in itertools.product(range(n), range(m)):
        g = o // (m // group)
        for cell in itertools.product(*(range(v) for v in out)):
            acc = b[o] if b is not None else 0.0
            for ci in range(cg):
                for k in itertools.product(*(range(v) for v in kernel)):
                    src = [q * st - p + kk * e
                           for q, st, p, kk, e in zip(cell, stride, pad, k, dilation, strict=True)]
                    if all(0 <= s < lim for s, lim in zip(src, size, strict=True)):
                        acc += w[(o, ci, *k)] * x[(ni, g * cg + ci, *src)]
            y[(ni, o, *cell)] = acc
    return y


def deconv_loops(x, w, b, stride, pad, dilation, group, out):
    """Transposed convolution: each bottom cell sprays its value through the kernel."""
    n, c, *size = x.shape
    _, og, *kernel = w.shape
    cg = c // group
    y = np.zeros((n, og * group, *out))
    for ni, ci in itertools.product(range(n), range(c)):
        g = ci // cg
        for cell in itertools.product(*(range(v) for v in size)):
            for o in range(og):
                for k in itertools.product(*(range(v) for v in kernel)):
                    dst = [q * st - p + kk * e
                           for q, st, p, kk, e in zip(cell, stride, pad, k, dilation, strict=True)]
                    if all(0 <= t < lim for t, lim in zip(dst, out, strict=True)):
                        y[(ni, g * og + o, *dst)] += w[(ci, o, *k)] * x[(ni, ci, *cell)]
    if b is not None:
        y += b.reshape(1, -1, *([1] * len(out)))
    return y


def per_lead_index(reference, x, axis, *args):
    """Run a reference on each (1, C, S...) image of x's leading axes (before ``axis``)."""
    lead = x.shape[:axis]
    results = {idx: reference(x[idx][None], *args)[0] for idx in np.ndindex(*lead)}
    first = next(iter(results.values()))
    y = np.empty((*lead, *first.shape))
    for idx, value in results.items():
        y[idx] = value
    return y


def _layer(text, layer_type="Convolution", name="c"):
    return make_layer(f'name: "{name}" type: "{layer_type}" convolution_param {{ {text} }}')


def _params(layer, shape, seed=3):
    layer.setup([shape])
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in layer.param_shapes]


# -- cases ---------------------------------------------------------------------------------
# (param text, bottom shape, axis, stride, pad, dilation, group, top shape worked out by hand)
CONV_CASES = [
    ("num_output: 4 kernel_size: 3", (2, 3, 5, 6, 7), 1, (1, 1, 1), (0, 0, 0), (1, 1, 1), 1,
     (2, 4, 3, 4, 5)),  # 5 - 3 + 1, 6 - 3 + 1, 7 - 3 + 1
    ("num_output: 4 kernel_size: 3 kernel_size: 2 kernel_size: 3 stride: 2 pad: 1 group: 2",
     (2, 4, 5, 6, 7), 1, (2, 2, 2), (1, 1, 1), (1, 1, 1), 2,
     (2, 4, 3, 4, 4)),  # (5 + 2 - 3) / 2 + 1, (6 + 2 - 2) / 2 + 1, (7 + 2 - 3) / 2 + 1
    ("num_output: 6 kernel_size: 2 dilation: 2 dilation: 1 dilation: 3 pad: 1 group: 3 "
     "bias_term: false", (1, 3, 5, 4, 7), 1, (1, 1, 1), (1, 1, 1), (2, 1, 3), 3,
     (1, 6, 5, 5, 6)),  # spans 3, 2, 4: 5 + 2 - 3 + 1, 4 + 2 - 2 + 1, 7 + 2 - 4 + 1
    ("num_output: 2 kernel_size: 1 stride: 1 stride: 2 stride: 3", (2, 2, 3, 5, 7), 1,
     (1, 2, 3), (0, 0, 0), (1, 1, 1), 1, (2, 2, 3, 3, 3)),  # 1x1x1: 3, (5 - 1) / 2 + 1, ...
    ("num_output: 3 kernel_size: 2 pad: 0 pad: 1 pad: 2 stride: 2", (1, 2, 4, 3, 3), 1,
     (2, 2, 2), (0, 1, 2), (1, 1, 1), 1,
     (1, 3, 2, 2, 3)),  # (4 - 2) / 2 + 1, (3 + 2 - 2) / 2 + 1, (3 + 4 - 2) / 2 + 1
    ("num_output: 3 kernel_size: 3 stride: 2 pad: 1 dilation: 2", (2, 4, 11), 1, (2,), (1,),
     (2,), 1, (2, 3, 5)),  # 1-D, the kernel spans 5: (11 + 2 - 5) / 2 + 1
    ("num_output: 4 kernel_size: 2 group: 2", (3, 2, 6), 1, (1,), (0,), (1,), 2,
     (3, 4, 5)),  # 1-D, grouped
    ("num_output: 2 kernel_size: 2 kernel_size: 1 kernel_size: 2 kernel_size: 2",
     (1, 2, 3, 3, 4, 3), 1, (1,) * 4, (0,) * 4, (1,) * 4, 1, (1, 2, 2, 3, 3, 2)),  # 4-D
    ("num_output: 3 kernel_size: 3 pad: 1 axis: 2", (2, 3, 4, 7), 2, (1,), (1,), (1,), 1,
     (2, 3, 3, 7)),  # (N, T) folded into 6 images of 4 channels x 7
    ("num_output: 2 kernel_size: 3 stride: 2 axis: -2", (2, 3, 2, 7), 2, (2,), (0,), (1,), 1,
     (2, 3, 2, 3)),  # axis -2 is axis 2 here: (7 - 3) / 2 + 1
    ("num_output: 4 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1 group: 2 axis: 2",
     (2, 2, 4, 5, 4), 2, (2, 1), (0, 1), (1, 1), 2,
     (2, 2, 4, 2, 4)),  # 2 spatial axes after axis 2: _h/_w allowed; (5 - 2) / 2 + 1, 4 + 2 - 2
    ("num_output: 2 kernel_size: 3 axis: 0", (3, 8), 0, (1,), (0,), (1,), 1,
     (2, 6)),  # channel axis 0: one image, no leading axes
]

DECONV_CASES = [
    ("num_output: 3 kernel_size: 3", (2, 2, 3, 2, 4), 1, (1, 1, 1), (0, 0, 0), (1, 1, 1), 1,
     (2, 3, 5, 4, 6)),  # 1 * (S - 1) + 3
    ("num_output: 4 kernel_size: 3 kernel_size: 2 kernel_size: 3 stride: 2 pad: 1 group: 2",
     (1, 4, 3, 2, 3), 1, (2, 2, 2), (1, 1, 1), (1, 1, 1), 2,
     (1, 4, 5, 2, 5)),  # 2 * 2 + 3 - 2, 2 * 1 + 2 - 2, 2 * 2 + 3 - 2
    ("num_output: 2 kernel_size: 2 dilation: 2 stride: 3 stride: 1 stride: 2 bias_term: false",
     (1, 3, 2, 3, 2), 1, (3, 1, 2), (0, 0, 0), (2, 2, 2), 1,
     (1, 2, 6, 5, 5)),  # spans 3: 3 * 1 + 3, 1 * 2 + 3, 2 * 1 + 3
    ("num_output: 2 kernel_size: 3 stride: 2 axis: 2", (2, 2, 3, 4), 2, (2,), (0,), (1,), 1,
     (2, 2, 2, 9)),  # 1-D over 4 folded images: 2 * 3 + 3
]

_ids = [c[0] for c in CONV_CASES]
_deconv_ids = [c[0] for c in DECONV_CASES]


# -- forward --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_forward_matches_loops(case, xp):
    text, shape, axis, stride, pad, dilation, group, top_shape = case
    layer = _layer(text)
    assert layer.setup([shape]) == [top_shape]
    assert isinstance(layer, conv_nd.ConvolutionNd)  # handed over by conv.py's setup
    x = np.random.default_rng(3).standard_normal(shape)
    params = _params(layer, shape)
    (top,), _, _ = run_forward(layer, [x], params, xp)
    bias = params[1] if len(params) > 1 else None
    expected = per_lead_index(conv_loops, x, axis, params[0], bias, stride, pad, dilation,
                              group)
    np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", DECONV_CASES, ids=_deconv_ids)
def test_deconvolution_forward_matches_loops(case, xp):
    text, shape, axis, stride, pad, dilation, group, top_shape = case
    layer = _layer(text, "Deconvolution", "d")
    assert layer.setup([shape]) == [top_shape]
    assert isinstance(layer, conv_nd.DeconvolutionNd)
    # weight: (C_bottom, num_output / group, k...)
    assert layer.param_shapes[0][:2] == (shape[axis], layer.num_output // group)
    x = np.random.default_rng(6).standard_normal(shape)
    params = _params(layer, shape)
    (top,), _, _ = run_forward(layer, [x], params, xp)
    bias = params[1] if len(params) > 1 else None
    expected = per_lead_index(deconv_loops, x, axis, params[0], bias, stride, pad, dilation,
                              group, top_shape[axis + 1:])
    np.testing.assert_allclose(top, expected, rtol=1e-12, atol=1e-12)


def test_weight_and_bias_shapes():
    layer = _layer("num_output: 6 kernel_size: 3 kernel_size: 1 kernel_size: 2 group: 3")
    layer.setup([(1, 9, 5, 5, 5)])
    assert layer.param_shapes == [(6, 3, 3, 1, 2), (6,)]  # (num_output, C / group, k...)
    layer = _layer("num_output: 4 kernel_size: 3 bias_term: false")
    layer.setup([(2, 5, 8)])
    assert layer.param_shapes == [(4, 5, 3)]


# -- backward -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_gradients(case, xp):
    text, shape, *_ = case
    layer = _layer(text)
    x = xp.asarray(np.random.default_rng(5).standard_normal(shape))
    results = check_layer(layer, [x])
    assert [r.what for r in results] == ["bottom[0]", "param[0]"] + (
        [] if "bias_term: false" in text else ["param[1]"])
    for r in results:
        assert r.passed, r


@pytest.mark.parametrize("case", DECONV_CASES, ids=_deconv_ids)
def test_deconvolution_gradients(case, xp):
    text, shape, *_ = case
    layer = _layer(text, "Deconvolution", "d")
    x = xp.asarray(np.random.default_rng(7).standard_normal(shape))
    results = check_layer(layer, [x])
    assert len(results) == (2 if "bias_term: false" in text else 3)
    for r in results:
        assert r.passed, r


def test_several_bottoms_share_the_weights():
    layer = make_layer('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "ta" '
                       'top: "tb" convolution_param { num_output: 2 kernel_size: 2 }')
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 2, 3, 3, 4)) for _ in range(2)]
    assert layer.setup([(2, 2, 3, 3, 4)] * 2) == [(2, 2, 2, 2, 3)] * 2
    results = check_layer(layer, xs)
    assert [r.what for r in results] == ["bottom[0]", "bottom[1]", "param[0]", "param[1]"]
    assert all(r.passed for r in results), results


def test_param_diffs_accumulate_and_bottom_diffs_are_assigned():
    layer = _layer("num_output: 2 kernel_size: 2")
    x = np.random.default_rng(0).standard_normal((1, 1, 3, 3, 3))
    params = [np.ones((2, 1, 2, 2, 2)), np.zeros(2)]
    _, bottoms, tops = run_forward(layer, [x], params)
    tops[0].diff = np.ones(tops[0].shape)
    bottoms[0].diff = np.full(x.shape, 7.0)
    layer.backward(tops, [True], bottoms)
    once = layer.blobs[0].diff.copy()
    # dW[o, 0, i, j, k] = sum over the 2x2x2 outputs of x[i + a, j + b, k + c]
    expected = np.array([[[x[0, 0, i:i + 2, j:j + 2, k:k + 2].sum() for k in range(2)]
                          for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(once[0, 0], expected)
    # A cell's diff counts the windows over it, once per output channel (all weights 1),
    # and is not added to the 7s: a corner is in 1 window, the centre in 8.
    assert bottoms[0].diff[0, 0, 0, 0, 0] == 2 * 1
    assert bottoms[0].diff[0, 0, 1, 1, 1] == 2 * 8
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)
    np.testing.assert_allclose(layer.blobs[1].diff, [16.0, 16.0])  # 2 passes x 8 outputs


def test_propagate_down_flags_are_honoured():
    layer = _layer("num_output: 2 kernel_size: 2 axis: 2")
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 4))
    _, bottoms, tops = run_forward(layer, [x], _params(layer, x.shape))
    tops[0].diff = np.ones(tops[0].shape)
    sentinel = np.full(x.shape, 7.0)
    bottoms[0].diff = sentinel
    layer.param_propagate_down = [False, True]
    layer.backward(tops, [False], bottoms)
    assert bottoms[0].diff is sentinel  # not touched
    assert not layer.blobs[0].diff.any()
    assert layer.blobs[1].diff.tolist() == [12.0, 12.0]  # 4 folded images x 3 outputs
    layer.param_propagate_down = [True, False]
    layer.backward(tops, [True], bottoms)
    assert layer.blobs[0].diff.any() and layer.blobs[1].diff.tolist() == [12.0, 12.0]
    assert bottoms[0].diff is not sentinel and bottoms[0].diff.shape == x.shape


@pytest.mark.parametrize("layer_type", ["Convolution", "Deconvolution"])
def test_batches_in_chunks_give_the_same_result(layer_type, monkeypatch):
    text = "num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 2 axis: 2"
    shape = (5, 1, 4, 5, 4, 3)  # 5 folded images of 4 channels x 5 x 4 x 3
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    results = []
    for budget in (64 << 20, 1):  # one GEMM for the batch; one per image
        monkeypatch.setattr(conv, "COL_BUDGET", budget)
        layer = _layer(text, layer_type)
        params = _params(layer, shape)
        (top,), bottoms, tops = run_forward(layer, [x], params)
        conv_input = layer._fold(tops[0].data if layer.transposed else x)
        assert len(list(layer._chunks(conv_input))) == (1 if budget > 1 else 5)
        tops[0].diff = np.random.default_rng(9).standard_normal(tops[0].shape)
        layer.backward(tops, [True], bottoms)
        results.append((top, bottoms[0].diff, layer.blobs[0].diff, layer.blobs[1].diff))
    for whole, chunked in zip(*results, strict=True):
        np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_deconvolution_is_the_transpose_of_convolution():
    # Same weights, no bias: <conv(x), y> == <x, deconv(y)>, in 3-D.
    text = "num_output: {} kernel_size: 3 stride: 2 pad: 1 group: 2 bias_term: false"
    forward = _layer(text.format(6))
    backward = _layer(text.format(4), "Deconvolution", "d")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 5, 7, 3))  # sizes that the deconvolution gives back
    (y_shape,) = forward.setup([x.shape])
    weight = rng.standard_normal(forward.param_shapes[0])
    (conv_x,), _, _ = run_forward(forward, [x], [weight])
    y = rng.standard_normal(y_shape)
    (deconv_y,), _, _ = run_forward(backward, [y], [weight])
    assert deconv_y.shape == x.shape
    assert float((conv_x * y).sum()) == pytest.approx(float((x * deconv_y).sum()), rel=1e-12)


# -- the 2-D path and the dispatch ------------------------------------------------------------

CROSS_CASES = [
    ("Convolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 6)),
    ("Convolution", "num_output: 6 kernel_h: 3 kernel_w: 2 dilation: 2 pad_h: 2 group: 3",
     (2, 3, 7, 5)),
    ("Convolution", "num_output: 3 kernel_size: 1", (2, 5, 3, 4)),
    ("Deconvolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2", (1, 4, 4, 3)),
]


@pytest.mark.parametrize("case", CROSS_CASES, ids=lambda c: f"{c[0]} {c[1]}")
def test_the_2d_case_keeps_the_2d_path_and_agrees_with_the_nd_code(case):
    layer_type, text, shape = case
    two_d = _layer(text, layer_type)
    nd_class = conv_nd.DeconvolutionNd if layer_type == "Deconvolution" else conv_nd.ConvolutionNd
    nd = nd_class(two_d.param, "test")  # the N-D code run directly on the (N, C, H, W) bottom
    assert two_d.setup([shape]) == nd.setup([shape])
    assert type(two_d) in (conv.Convolution, conv.Deconvolution)  # not handed over
    assert two_d.param_shapes == nd.param_shapes
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    params = _params(two_d, shape)
    outcomes = []
    for layer in (two_d, nd):
        (top,), bottoms, tops = run_forward(layer, [x], params)
        tops[0].diff = np.random.default_rng(12).standard_normal(tops[0].shape)
        layer.backward(tops, [True], bottoms)
        outcomes.append((top, bottoms[0].diff, layer.blobs[0].diff, layer.blobs[1].diff))
    for fast, general in zip(*outcomes, strict=True):
        np.testing.assert_allclose(general, fast, rtol=1e-12, atol=1e-12)


def test_the_2d_im2col_and_the_nd_one_lay_out_the_same_matrix():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 7, 6))
    g2 = _im2col.Geometry(3, 2, 2, 1, 1, 0, 1, 2)  # kh kw sh sw ph pw dh dw
    gn = NdGeometry((3, 2), (2, 1), (1, 0), (1, 2))
    assert gn.out_size((7, 6)) == g2.out_size(7, 6)
    col = im2col_nd(x, gn)
    np.testing.assert_array_equal(col, _im2col.im2col(x, g2))
    dcol = rng.standard_normal(col.shape)
    np.testing.assert_allclose(col2im_nd(dcol, x.shape, gn), _im2col.col2im(dcol, x.shape, g2),
                               rtol=1e-12, atol=1e-12)


def test_im2col_nd_matches_its_documented_layout_and_col2im_nd_is_its_adjoint(xp):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 2, 4, 3, 5))
    g = NdGeometry((2, 1, 3), (2, 1, 2), (1, 0, 2), (1, 2, 1))
    out = g.out_size((4, 3, 5))
    assert out == (3, 3, 4)  # (4 + 2 - 2) / 2 + 1, 3 - 1 + 1, (5 + 4 - 3) / 2 + 1
    col = to_host(im2col_nd(xp.asarray(x), g))
    assert col.shape == (2 * 6, 2 * 36)
    expected = np.zeros_like(col)
    for c, k0, k1, k2 in itertools.product(range(2), range(2), range(1), range(3)):
        for n, o0, o1, o2 in itertools.product(range(2), *(range(v) for v in out)):
            src = (o0 * 2 - 1 + k0, o1 - 0 + 2 * k1, o2 * 2 - 2 + k2)
            if all(0 <= s < lim for s, lim in zip(src, x.shape[2:], strict=True)):
                row = ((c * 2 + k0) * 1 + k1) * 3 + k2
                column = ((n * 3 + o0) * 3 + o1) * 4 + o2
                expected[row, column] = x[(n, c, *src)]
    np.testing.assert_array_equal(col, expected)
    dcol = rng.standard_normal(col.shape)
    back = to_host(col2im_nd(xp.asarray(dcol), x.shape, g))
    assert float((col * dcol).sum()) == pytest.approx(float((x * back).sum()), rel=1e-12)


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("num_output: 4 kernel_size: 3 kernel_size: 3", (1, 3, 5, 5, 5),
         r"kernel_size has 2 values; give 1, or one per spatial axis \(3 for this bottom\)"),
        ("num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 3, 5, 5),
         r"kernel_size has 3 values; .*\(2 for this bottom\)"),
        ("num_output: 4 kernel_size: 3 kernel_size: 3", (1, 3, 5), "kernel_size has 2 values"),
        ("num_output: 4 kernel_size: 3 stride: 1 stride: 2", (1, 3, 5, 5, 5), "stride has 2"),
        ("num_output: 4 kernel_size: 3 pad: 1 pad: 1 pad: 1 pad: 1", (1, 3, 5, 5, 5),
         "pad has 4 values"),
        ("num_output: 4 kernel_size: 3 dilation: 1 dilation: 2", (1, 3, 5), "dilation has 2"),
        ("num_output: 4 kernel_h: 3 kernel_w: 3", (1, 3, 5, 5, 5),
         "kernel_h/kernel_w are for a 2-D convolution; this one has 3 spatial axes"),
        ("num_output: 4 kernel_size: 3 stride_h: 2 stride_w: 2", (1, 3, 5),
         "stride_h/stride_w are for a 2-D"),
        ("num_output: 4 kernel_size: 3 kernel_size: 0 kernel_size: 3", (1, 3, 5, 5, 5),
         "kernel size must be > 0, got 3x0x3"),
        ("num_output: 4 kernel_size: 3 dilation: 0", (1, 3, 5, 5, 5), "stride and dilation"),
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5, 5), "group 2 must divide"),
        ("num_output: 4 kernel_size: 3 kernel_size: 7 kernel_size: 3", (1, 3, 5, 5, 5),
         "the kernel 3x7x3 leaves no output for the input 5x5x5"),
        ("kernel_size: 3", (1, 3, 5, 5, 5), "num_output"),
        ("num_output: 4 kernel_size: 3 axis: 3", (1, 3, 5), "axis 3 is out of range"),
        ("num_output: 4 kernel_size: 3 axis: -4", (1, 3, 5), "axis -4 is out of range"),
        ("num_output: 4 kernel_size: 1 axis: -1", (2, 3, 5), "leaves no spatial axis"),
    ],
)
def test_bad_parameters_at_setup_name_the_layer(text, shape, message):
    layer = _layer(text, name="bad")
    with pytest.raises(BpinspectError, match=message) as err:
        layer.setup([shape])
    assert "'bad' (Convolution)" in str(err.value)
    assert "\n" not in str(err.value)


def test_deconvolution_that_leaves_no_output_is_refused():
    layer = _layer("num_output: 2 kernel_size: 1 pad: 1", "Deconvolution", "bad")
    with pytest.raises(BpinspectError, match=r"'bad' \(Deconvolution\).*leaves no output"):
        layer.setup([(1, 2, 1, 3, 3)])  # 1 * 0 + 1 - 2 along the first axis


def test_in_place_and_mismatched_bottoms_are_refused():
    layer = make_layer('name: "c" type: "Convolution" bottom: "x" top: "x" '
                       'convolution_param { num_output: 3 kernel_size: 1 }')
    with pytest.raises(BpinspectError, match="in place"):
        layer.setup([(1, 3, 4, 4, 4)])
    layer = _layer("num_output: 3 kernel_size: 1")
    with pytest.raises(BpinspectError, match="one shape"):
        layer.setup([(1, 3, 4, 4, 4), (1, 3, 4, 4, 5)])


# -- in a Net: setup, memory plan, a pass -------------------------------------------------

NET_3D = """
name: "volumes"
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 5 dim: 6 dim: 7 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "conv1" top: "up"
        convolution_param { num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 3
                            stride: 2 } }
layer { name: "seq" type: "Convolution" bottom: "up" top: "seq"
        convolution_param { num_output: 3 kernel_size: 2 axis: 3 } }
"""


def test_a_3d_net_builds_runs_and_plans_its_col_buffers():
    net = Net(parse_net(NET_3D, "<test>"), dtype=np.float64)
    conv1, up, seq = (net.layers[net.layer_index(n)] for n in ("conv1", "up", "seq"))
    assert isinstance(conv1, conv_nd.ConvolutionNd) and isinstance(up, conv_nd.DeconvolutionNd)
    # conv1: (5 + 2 - 3) / 2 + 1 = 3, (6 + 2 - 3) / 2 + 1 = 3, (7 + 2 - 3) / 2 + 1 = 4
    assert net.blobs["conv1"].shape == (2, 4, 3, 3, 4)
    # up: 2 * 2 + 2, 2 * 2 + 3, 2 * 3 + 3
    assert net.blobs["up"].shape == (2, 2, 6, 7, 9)
    # seq: channel axis 3 (the 7 cells), (2, 2, 6) folded images, 9 - 2 + 1
    assert net.blobs["seq"].shape == (2, 2, 6, 3, 8)
    assert net.params["seq"][0].shape == (3, 7, 2)
    # The col matrices (C k... x images * outputs, float64), one chunk each:
    conv1_col = 3 * 27 * 2 * 36  # conv input data: 3 channels, 2 images of 3x3x4 outputs
    up_col = 2 * 18 * 2 * 36  # conv input up: 2 channels, 2 images; output conv1's 3x3x4
    seq_col = 7 * 2 * 24 * 8  # conv input up, channel axis 3: 24 images of 7 x 9 -> 8
    assert net.memory.im2col == max(conv1_col, up_col, seq_col) * 8
    assert conv.COL_BUDGET >= net.memory.im2col  # the figure is not a chunk limit here

    rng = np.random.default_rng(4)
    x = rng.standard_normal(net.blobs["data"].shape)
    net.forward(data=x)
    w1, b1 = (to_host(p.data) for p in net.params["conv1"])
    wu, bu = (to_host(p.data) for p in net.params["up"])
    ws, bs = (to_host(p.data) for p in net.params["seq"])
    c1 = conv_loops(x, w1, b1, (2, 2, 2), (1, 1, 1), (1, 1, 1), 1)
    np.testing.assert_allclose(to_host(net.blobs["conv1"].data), c1, rtol=1e-10, atol=1e-10)
    u = deconv_loops(c1, wu, bu, (2, 2, 2), (0, 0, 0), (1, 1, 1), 1, (6, 7, 9))
    np.testing.assert_allclose(to_host(net.blobs["up"].data), u, rtol=1e-10, atol=1e-10)
    s = per_lead_index(conv_loops, u, 3, ws, bs, (1,), (0,), (1,), 1)
    np.testing.assert_allclose(to_host(net.blobs["seq"].data), s, rtol=1e-10, atol=1e-10)
    net.backward(seq=rng.standard_normal(net.blobs["seq"].shape))
    assert to_host(net.blobs["data"].diff).shape == x.shape
    assert np.abs(to_host(net.params["conv1"][0].diff)).max() > 0


def test_the_memory_plan_of_a_chunked_nd_convolution(monkeypatch):
    budget = 3 * 27 * 36 * 4 * 2  # two images of conv1's col matrix, float32: 23328 bytes
    monkeypatch.setattr(conv, "COL_BUDGET", budget)
    net = Net(parse_net(NET_3D.replace("dim: 2 dim: 3", "dim: 5 dim: 3", 1), "<test>"))
    # conv1: 5 images of 11664 bytes need 3 chunks, of 2 images: 23328 bytes
    # up: 5 images of 2 * 18 * 36 * 4 = 5184 bytes need 2 chunks, of 3 images: 15552
    # seq: 60 images of 7 * 2 * 8 * 4 = 448 bytes need 2 chunks, of 30 images: 13440
    assert net.memory.im2col == 23328
    monkeypatch.setattr(conv, "COL_BUDGET", 1 << 30)
    net = Net(parse_net(NET_3D.replace("dim: 2 dim: 3", "dim: 5 dim: 3", 1), "<test>"))
    assert net.memory.im2col == 5 * 11664  # one chunk: all 5 images
