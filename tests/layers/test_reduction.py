"""Reduction: SUM, ASUM, SUMSQ and MEAN over the tail from ``axis``, scaled by
``coeff``; forward by loops, gradients by central differences (ASUM away from 0)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

SHAPE = (2, 3, 4, 2)
OPS = {
    "SUM": lambda v: v,
    "ASUM": abs,
    "SUMSQ": lambda v: v * v,
    "MEAN": lambda v: v,
}


def signed(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 2.0, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)


def loop_reduce(x, op, axis, coeff):
    lead = x.shape[:axis]
    out = np.zeros(lead)
    tail = list(itertools.product(*(range(s) for s in x.shape[axis:])))
    for index in itertools.product(*(range(s) for s in lead)):
        total = sum(OPS[op](x[index + t]) for t in tail)
        out[index] = coeff * (total / len(tail) if op == "MEAN" else total)
    return out


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("axis", "coeff"), [(0, 1.0), (1, 0.5), (-1, -2.0), (3, 1.0)])
def test_forward_and_gradient(xp, op, axis, coeff):
    text = f"reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}"
    x = signed()
    _, tops = run_forward(make_layer("Reduction", text), xp, [x])
    canonical = axis % len(SHAPE)
    assert tops[0].shape == SHAPE[:canonical]
    np.testing.assert_allclose(to_host(tops[0].data), loop_reduce(x, op, canonical, coeff),
                               rtol=1e-12)
    assert_passed(check_layer(make_layer("Reduction", text), [xp.asarray(signed(1))]))


def test_defaults_sum_everything_to_a_scalar(xp):
    x = signed()
    _, tops = run_forward(make_layer("Reduction"), xp, [x])
    assert tops[0].shape == ()
    assert float(to_host(tops[0].data)) == pytest.approx(sum(x.ravel().tolist()), rel=1e-12)


def test_asum_gradient_at_zero_is_zero(xp):
    x = signed()
    x[0, 0, 0, 0] = 0.0
    layer = make_layer("Reduction", "reduction_param { operation: ASUM axis: 1 }")
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray([3.0, -1.0])
    layer.backward(tops, [True], bottoms)
    dx = to_host(bottoms[0].diff)
    assert dx[0, 0, 0, 0] == 0.0  # Caffe's sign(0) = 0
    np.testing.assert_array_equal(dx[1], -np.sign(x[1]))
