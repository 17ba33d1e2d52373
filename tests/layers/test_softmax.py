"""Softmax along any axis: forward against loops, stability, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward


def reference(x, axis):
    """exp(x_c) / sum_c' exp(x_c') along ``axis``, one fibre at a time."""
    moved = np.moveaxis(x, axis, -1)
    out = np.empty_like(moved)
    for index in np.ndindex(*moved.shape[:-1]):
        fibre = moved[index]
        m = max(fibre)
        e = [math.exp(v - m) for v in fibre]
        out[index] = [v / sum(e) for v in e]
    return np.moveaxis(out, -1, axis)


CASES = [("", (2, 5, 3, 2), 1), ("softmax_param { axis: -1 }", (2, 3, 4), 2),
         ("softmax_param { axis: 0 }", (4, 3), 0), ("", (3, 7), 1)]


@pytest.mark.parametrize(("text", "shape", "axis"), CASES)
def test_forward_matches_loops(xp, text, shape, axis):
    x = np.random.default_rng(0).standard_normal(shape) * 3
    _, tops = run_forward(make_layer("Softmax", text), xp, [x])
    y = to_host(tops[0].data)
    np.testing.assert_allclose(y, reference(x, axis), rtol=1e-12)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)


@pytest.mark.parametrize(("text", "shape", "axis"), CASES)
def test_gradients(xp, text, shape, axis):
    x = xp.asarray(np.random.default_rng(1).standard_normal(shape))
    assert_passed(check_layer(make_layer("Softmax", text), [x]))


def test_large_inputs_do_not_overflow(xp):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    _, tops = run_forward(make_layer("Softmax"), xp, [x])
    y = to_host(tops[0].data)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[0], reference(np.array([[0.0, 1.0, -1.0]]), 1)[0], rtol=1e-6)
    np.testing.assert_allclose(y[1], 1 / 3, rtol=1e-6)


def test_in_place(xp):
    x = np.random.default_rng(2).standard_normal((3, 4))
    dy = np.random.default_rng(3).standard_normal((3, 4))
    layer = make_layer("Softmax")
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    shared = blob(xp, x)
    layer = make_layer("Softmax", bottoms=("x",), tops=("x",))
    layer.setup([(3, 4)])
    layer.forward([shared], [shared])
    shared.diff = xp.asarray(dy)
    layer.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.data), to_host(tops[0].data), rtol=1e-14)
    np.testing.assert_allclose(to_host(shared.diff), to_host(bottoms[0].diff), rtol=1e-12)


def test_keeps_no_internals(xp):
    layer = make_layer("Softmax")
    run_forward(layer, xp, [np.zeros((2, 3))])
    assert layer.internals() == {}


def test_axis_out_of_range(xp):
    with pytest.raises(BpinspectError, match="axis 2 is out of range"):
        make_layer("Softmax", "softmax_param { axis: 2 }").setup([(2, 3)])
