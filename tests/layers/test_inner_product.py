"""InnerProduct: forward against loops, gradients by central differences."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward


def reference(x, w, b, axis, transpose):
    """top[m, n] = sum_k x[m, k] * W[n, k] + b[n], by loops."""
    m = int(np.prod(x.shape[:axis]))
    k = int(np.prod(x.shape[axis:]))
    x2 = x.reshape(m, k)
    n_out = w.shape[1] if transpose else w.shape[0]
    out = np.zeros((m, n_out))
    for i in range(m):
        for n in range(n_out):
            s = 0.0
            for j in range(k):
                s += x2[i, j] * (w[j, n] if transpose else w[n, j])
            out[i, n] = s + (b[n] if b is not None else 0.0)
    return out.reshape(x.shape[:axis] + (n_out,))


CASES = [
    ("num_output: 4", (2, 3, 2, 3), 1, False, True),
    ("num_output: 5 transpose: true", (3, 2, 5), 1, True, True),
    ("num_output: 3 axis: 2", (2, 3, 5), 2, False, True),
    ("num_output: 3 axis: -1 bias_term: false", (2, 3, 5), 2, False, False),
    ("num_output: 2 axis: 0 transpose: true bias_term: false", (3, 2), 0, True, False),
]


@pytest.mark.parametrize(("text", "shape", "axis", "transpose", "bias"), CASES)
def test_forward_matches_loops(xp, text, shape, axis, transpose, bias):
    rng = np.random.default_rng(0)
    layer = make_layer("InnerProduct", f"inner_product_param {{ {text} }}")
    x = rng.standard_normal(shape)
    layer.setup([shape])
    params = [rng.standard_normal(s) for s in layer.param_shapes]
    assert len(params) == (2 if bias else 1)
    _, tops = run_forward(layer, xp, [x], params)
    expected = reference(x, params[0], params[1] if bias else None, axis, transpose)
    assert tops[0].shape == expected.shape
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("text", "shape", "axis", "transpose", "bias"), CASES)
def test_gradients(xp, text, shape, axis, transpose, bias):
    layer = make_layer("InnerProduct", f"inner_product_param {{ {text} }}")
    x = xp.asarray(np.random.default_rng(1).standard_normal(shape))
    results = check_layer(layer, [x])
    assert [r.what for r in results] == ["bottom[0]", "param[0]"] + (["param[1]"] if bias else [])
    assert_passed(results)


def test_weight_shapes(xp):
    layer = make_layer("InnerProduct", "inner_product_param { num_output: 7 }")
    assert layer.setup([(2, 3, 4, 5)]) == [(2, 7)]
    assert layer.param_shapes == [(7, 60), (7,)]
    layer = make_layer("InnerProduct", "inner_product_param { num_output: 7 transpose: true }")
    layer.setup([(2, 3, 4, 5)])
    assert layer.param_shapes == [(60, 7), (7,)]


def test_param_diffs_accumulate(xp):
    rng = np.random.default_rng(2)
    layer = make_layer("InnerProduct", "inner_product_param { num_output: 3 }")
    bottoms, tops = run_forward(layer, xp, [rng.standard_normal((4, 5))],
                                [rng.standard_normal((3, 5)), rng.standard_normal(3)])
    tops[0].diff = xp.asarray(rng.standard_normal((4, 3)))
    for p in layer.blobs:
        p.diff = xp.zeros(p.shape)
    layer.backward(tops, [True], bottoms)
    once = [to_host(p.diff).copy() for p in layer.blobs]
    layer.backward(tops, [True], bottoms)
    for p, first in zip(layer.blobs, once, strict=True):
        np.testing.assert_allclose(to_host(p.diff), 2 * first, rtol=1e-12)
    dy, x = to_host(tops[0].diff), to_host(bottoms[0].data)
    np.testing.assert_allclose(once[0], dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(once[1], dy.sum(axis=0), rtol=1e-12)


def test_propagate_down_false_leaves_the_bottom(xp):
    rng = np.random.default_rng(3)
    layer = make_layer("InnerProduct", "inner_product_param { num_output: 3 }")
    bottoms, tops = run_forward(layer, xp, [rng.standard_normal((2, 4))],
                                [rng.standard_normal((3, 4)), rng.standard_normal(3)])
    bottoms[0].diff = xp.full((2, 4), 7.0)
    tops[0].diff = xp.ones((2, 3))
    layer.param_propagate_down = [False, False]
    layer.backward(tops, [False], bottoms)
    assert (to_host(bottoms[0].diff) == 7).all()
    assert all((to_host(p.diff) == 0).all() for p in layer.blobs)


def test_fillers_are_the_prototxts(xp):
    layer = make_layer("InnerProduct", """inner_product_param { num_output: 3
        weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.2 } }""")
    layer.setup([(2, 4)])
    weight, bias = layer.param_fillers()
    assert weight.type == "xavier" and bias.type == "constant" and bias.value == pytest.approx(0.2)
    layer = make_layer("InnerProduct", "inner_product_param { num_output: 3 bias_term: false }")
    layer.setup([(2, 4)])
    assert layer.param_fillers() == [None]  # no filler given: the net's default applies


def test_errors_name_the_layer(xp):
    with pytest.raises(BpinspectError, match="'layer'.*num_output"):
        make_layer("InnerProduct", "inner_product_param { }").setup([(2, 3)])
    with pytest.raises(BpinspectError, match="axis 3"):
        make_layer("InnerProduct", "inner_product_param { num_output: 2 axis: 3 }").setup([(2, 3)])
