"""Eltwise SUM (with coeffs), PROD (both gradients) and MAX (argmax, Caffe's ties)."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward


def eltwise(op, n, extra=""):
    return make_layer("Eltwise", f"eltwise_param {{ operation: {op} {extra} }}",
                      bottoms=tuple(f"x{i}" for i in range(n)))


SHAPE = (2, 3, 2, 3)


def away_from_zero(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.2, 1.5, SHAPE) * rng.choice([-1.0, 1.0], SHAPE) for _ in range(n)]


def distinct(n, seed):
    """n arrays with no two values within 0.1 of each other at any position: no ties."""
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((n,) + SHAPE), axis=0).astype(float)
    return list(ranks * 0.5 + rng.uniform(-0.1, 0.1, (n,) + SHAPE))


def loop(arrays, f):
    out = np.empty(SHAPE)
    for index in np.ndindex(*SHAPE):
        out[index] = f([a[index] for a in arrays])
    return out


@pytest.mark.parametrize(("n", "coeff"), [(2, ""), (3, "coeff: 1 coeff: -0.5 coeff: 2"),
                                          (2, "coeff: 0.25 coeff: 3")])
def test_sum(xp, n, coeff):
    xs = away_from_zero(n, 0)
    layer = eltwise("SUM", n, coeff)
    c = [float(np.float32(v)) for v in coeff.replace("coeff:", "").split()] or [1.0] * n
    bottoms, tops = run_forward(layer, xp, xs)
    expected = loop(xs, lambda v: sum(ci * vi for ci, vi in zip(c, v, strict=True)))
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12)
    dy = np.random.default_rng(1).standard_normal(SHAPE)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True] * n, bottoms)
    for b, ci in zip(bottoms, c, strict=True):
        np.testing.assert_allclose(to_host(b.diff), ci * dy, rtol=1e-14)
    assert_passed(check_layer(eltwise("SUM", n, coeff), [xp.asarray(x) for x in xs]))


@pytest.mark.parametrize("stable", ["true", "false"])
@pytest.mark.parametrize("n", [2, 3])
def test_prod(xp, n, stable):
    xs = away_from_zero(n, 2)
    extra = f"stable_prod_grad: {stable}"
    _, tops = run_forward(eltwise("PROD", n, extra), xp, xs)
    np.testing.assert_allclose(to_host(tops[0].data), loop(xs, np.prod), rtol=1e-12)
    assert_passed(check_layer(eltwise("PROD", n, extra), [xp.asarray(x) for x in xs]))


def test_prod_stable_gradient_is_defined_at_zero(xp):
    xs = [np.array([0.0, 2.0]), np.array([3.0, 0.0]), np.array([5.0, 7.0])]
    layer = make_layer("Eltwise", "eltwise_param { operation: PROD }", bottoms=("a", "b", "c"))
    bottoms, tops = run_forward(layer, xp, xs)
    tops[0].diff = xp.ones(2)
    layer.backward(tops, [True, True, True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), [15.0, 0.0])
    np.testing.assert_array_equal(to_host(bottoms[1].diff), [0.0, 14.0])
    np.testing.assert_array_equal(to_host(bottoms[2].diff), [0.0, 0.0])


@pytest.mark.parametrize("n", [2, 3, 4])
def test_max_without_ties(xp, n):
    xs = distinct(n, 3)
    layer = eltwise("MAX", n)
    bottoms, tops = run_forward(layer, xp, xs)
    np.testing.assert_array_equal(to_host(tops[0].data), loop(xs, max))
    argmax = to_host(layer.internals()["argmax"])
    np.testing.assert_array_equal(argmax, loop(xs, lambda v: int(np.argmax(v))))
    dy = np.random.default_rng(4).standard_normal(SHAPE)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True] * n, bottoms)
    for i, b in enumerate(bottoms):
        np.testing.assert_array_equal(to_host(b.diff), np.where(argmax == i, dy, 0.0))
    assert_passed(check_layer(eltwise("MAX", n), [xp.asarray(x) for x in xs]))


def test_max_ties_follow_caffes_loop(xp):
    # Bottoms 0 and 1: "a > b ? 0 : 1", so a tie goes to 1. From bottom 2 on a bottom
    # must be strictly greater, so a tie keeps the earlier winner.
    a = np.array([1.0, 1.0, 2.0, 0.0])
    b = np.array([1.0, 1.0, 1.0, 3.0])
    c = np.array([0.0, 1.0, 2.0, 3.0])
    layer = make_layer("Eltwise", "eltwise_param { operation: MAX }", bottoms=("a", "b", "c"))
    run_forward(layer, xp, [a, b, c])
    np.testing.assert_array_equal(to_host(layer.internals()["argmax"]), [1, 1, 0, 1])


def test_propagate_down_is_honoured(xp):
    xs = away_from_zero(2, 5)
    layer = eltwise("PROD", 2)
    bottoms, tops = run_forward(layer, xp, xs)
    bottoms[0].diff = xp.full(SHAPE, 4.0)
    tops[0].diff = xp.ones(SHAPE)
    layer.backward(tops, [False, True], bottoms)
    assert (to_host(bottoms[0].diff) == 4).all()
    np.testing.assert_allclose(to_host(bottoms[1].diff), xs[0])


def test_max_accepts_and_ignores_coeffs(xp):
    """Caffe's EltwiseLayer::LayerSetUp rejects coeffs for PROD only; MAX ignores them."""
    xs = distinct(2, seed=11)
    layer = eltwise("MAX", 2, "coeff: 2 coeff: -3")
    _, tops = run_forward(layer, xp, xs)
    np.testing.assert_array_equal(to_host(tops[0].data), np.maximum(xs[0], xs[1]))


def test_errors(xp):
    with pytest.raises(BpinspectError, match="one coeff per bottom"):
        eltwise("SUM", 3, "coeff: 1 coeff: 2").setup([SHAPE] * 3)
    with pytest.raises(BpinspectError, match="only for operation SUM"):
        eltwise("PROD", 2, "coeff: 1 coeff: 2").setup([SHAPE] * 2)
    with pytest.raises(BpinspectError, match=r"bottom\[1\]"):
        eltwise("SUM", 2).setup([(2, 3), (3, 2)])
    with pytest.raises(BpinspectError, match="at least 2 bottom"):
        eltwise("SUM", 1).check_blob_counts(1, 1)
