"""Filter: the items whose selector is nonzero, in order; their top diffs go back to
those items (zeros for the others), none to the selector."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.errors import BpinspectError

from ._harness import blob, make_layer


def filter_layer(k=2):
    bottoms = tuple(f"x{i}" for i in range(k)) + ("sel",)
    return make_layer("Filter", bottoms=bottoms, tops=tuple(f"y{i}" for i in range(k)))


def loop_filter(x, selector):
    """Item by item: the rows n with selector[n] != 0, stacked in order."""
    rows = [x[n] for n in range(x.shape[0]) if selector.reshape(-1)[n] != 0]
    return np.array(rows).reshape((len(rows), *x.shape[1:]))


def setup_and_forward(layer, xp, arrays):
    bottoms = [blob(xp, a, f"b{i}") for i, a in enumerate(arrays)]
    shapes = layer.setup([b.shape for b in bottoms])
    tops = [Blob(f"t{i}", s, xp, np.float64) for i, s in enumerate(shapes)]
    layer.forward(bottoms, tops)
    return bottoms, tops, shapes


SELECTORS = [
    np.array([0, 1, 1, 0.]).reshape(4, 1, 1, 1),  # Caffe's test: items 1 and 2 stay
    np.array([1, 1, 1, 1.]).reshape(4, 1, 1, 1),
    np.array([0, 0, 0, 3.]).reshape(4, 1),  # any nonzero value keeps, any axes of size 1
    np.array([-2, 0, np.nan, 0.5]),  # NaN is not zero: kept (Caffe's `if (value)`)
    np.zeros(4),  # nothing kept: tops of 0 items
]


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda s: str(s.reshape(-1)))
def test_forward_keeps_the_selected_items(xp, selector):
    rng = np.random.default_rng(0)
    data, labels = rng.standard_normal((4, 3, 6, 4)), rng.integers(0, 5, (4, 1, 1, 1)) * 1.0
    _, tops, shapes = setup_and_forward(filter_layer(), xp, [data, labels, selector])
    assert shapes == [(4, 3, 6, 4), (4, 1, 1, 1)]  # the first reshape: the whole batch
    kept = [n for n in range(4) if selector.reshape(-1)[n] != 0]
    for top, x in zip(tops, (data, labels), strict=True):
        assert top.shape == (len(kept), *x.shape[1:])
        assert top.diff.shape == top.shape
        np.testing.assert_array_equal(to_host(top.data), loop_filter(x, selector))
    layer = filter_layer()
    setup_and_forward(layer, xp, [data, labels, selector])
    assert list(to_host(layer.internals()["indices"])) == kept


def test_a_later_forward_sees_the_new_selector(xp):
    layer = filter_layer(1)
    x = np.arange(5 * 2, dtype=np.float64).reshape(5, 2)
    bottoms, tops, _ = setup_and_forward(layer, xp, [x, np.array([1, 0, 0, 1, 1.])])
    assert tops[0].shape == (3, 2)
    bottoms[1].data = xp.asarray(np.array([0, 1, 0, 0, 0.]))
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(to_host(tops[0].data), x[1:2])


def numeric_gradient(layer, xp, arrays, k, projections, eps=1e-6):
    """d sum_t <top_t, r_t> / d arrays[k], by central differences, one value at a time."""
    grad = np.zeros_like(arrays[k])
    for index in np.ndindex(arrays[k].shape):
        values = []
        for sign in (1, -1):
            shifted = [a.copy() for a in arrays]
            shifted[k][index] += sign * eps
            _, tops, _ = setup_and_forward(layer, xp, shifted)
            values.append(sum(float((to_host(t.data) * r).sum())
                              for t, r in zip(tops, projections, strict=True)))
        grad[index] = (values[0] - values[1]) / (2 * eps)
    return grad


@pytest.mark.parametrize("selector", SELECTORS[:3] + SELECTORS[4:], ids=lambda s: str(s.ravel()))
def test_gradient_goes_to_the_kept_items_only(xp, selector):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 5)), selector]
    layer = filter_layer()
    bottoms, tops, _ = setup_and_forward(layer, xp, arrays)
    projections = [rng.standard_normal(t.shape) for t in tops]
    for t, r in zip(tops, projections, strict=True):
        t.diff = xp.asarray(r)
    for b in bottoms:
        b.diff = xp.full(b.shape, np.nan)  # assigned, not added to
    layer.backward(tops, [True, True, False], bottoms)
    for k in (0, 1):
        expected = numeric_gradient(filter_layer(), xp, arrays, k, projections)
        np.testing.assert_allclose(to_host(bottoms[k].diff), expected, rtol=1e-6, atol=1e-8)
    assert np.isnan(to_host(bottoms[2].diff)).all()  # the selector's diff is left alone


def test_propagate_down_false_leaves_a_bottom_alone(xp):
    layer = filter_layer()
    bottoms, tops, _ = setup_and_forward(layer, xp, [np.ones((3, 2)), np.ones(3),
                                                     np.array([1, 0, 1.])])
    for t in tops:
        t.diff = xp.ones(t.shape)
    bottoms[1].diff = xp.full((3,), 7.0)
    layer.backward(tops, [True, False, False], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), [[1, 1], [0, 0], [1, 1]])
    assert (to_host(bottoms[1].diff) == 7).all()


def test_backward_to_the_selector_is_refused_as_caffe_does(xp):
    layer = filter_layer(1)
    bottoms, tops, _ = setup_and_forward(layer, xp, [np.ones((3, 2)), np.array([1, 0, 1.])])
    tops[0].diff = xp.ones(tops[0].shape)
    with pytest.raises(BpinspectError, match="cannot backpropagate to the selector 'sel'") as e:
        layer.backward(tops, [True, True], bottoms)
    assert "'layer' (Filter)" in str(e.value) and "\n" not in str(e.value)


def test_a_top_diff_of_another_batch_is_a_one_line_error(xp):
    layer = filter_layer(1)
    bottoms, tops, _ = setup_and_forward(layer, xp, [np.ones((3, 2)), np.array([1, 0, 1.])])
    tops[0].diff = xp.ones((3, 2))  # from a forward that kept all three
    with pytest.raises(BpinspectError, match="kept 2 item"):
        layer.backward(tops, [True, False], bottoms)


@pytest.mark.parametrize(("shapes", "tops", "message"), [
    ([(4, 3), (4, 2)], ("y0",), "every axis but the first must be 1"),
    ([(4, 3), (5, 1)], ("y0",), "differ in their first axis"),
    ([(4, 3), (4, 3), (4,)], ("y0",), "one top per filtered bottom"),
    ([(4, 3), ()], ("y0",), "no axes"),
])
def test_bad_shapes_are_one_line_errors(shapes, tops, message):
    bottoms = tuple(f"x{i}" for i in range(len(shapes)))
    layer = make_layer("Filter", bottoms=bottoms, tops=tops)
    with pytest.raises(BpinspectError, match=message) as info:
        layer.setup(shapes)
    assert "'layer' (Filter)" in str(info.value) and "\n" not in str(info.value)


def test_in_place_is_refused():
    layer = make_layer("Filter", bottoms=("x", "sel"), tops=("x",))
    with pytest.raises(BpinspectError, match="in place"):
        layer.setup([(3, 2), (3,)])
