"""ArgMax: the top_k indices (or values) along an axis or per sample, ties to the
larger index as Caffe's sort of (value, index) pairs; no backward."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError

from ._harness import make_layer, run_forward


def ranked(values, k):
    """Caffe's order: sort (value, index) pairs, greatest first; the first k."""
    pairs = sorted(((v, j) for j, v in enumerate(values)), reverse=True)
    return pairs[:k]


def loop_no_axis(x, k, out_max_val):
    n = x.shape[0]
    rows = 2 if out_max_val else 1
    out = np.zeros((n, rows, k) + (1,) * (x.ndim - 3))
    for i in range(n):
        pairs = ranked(x[i].ravel().tolist(), k)
        for j, (value, index) in enumerate(pairs):
            out[(i, 0, j) + (0,) * (x.ndim - 3)] = index
            if out_max_val:
                out[(i, 1, j) + (0,) * (x.ndim - 3)] = value
    return out


def loop_axis(x, k, axis, out_max_val):
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (k,))
    for index in np.ndindex(*moved.shape[:-1]):
        pairs = ranked(moved[index].tolist(), k)
        out[index] = [v if out_max_val else j for v, j in pairs]
    return np.moveaxis(out, -1, axis)


def with_ties(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.float64)


@pytest.mark.parametrize("shape", [(3, 4, 2, 2), (2, 7), (2, 3, 5)])
@pytest.mark.parametrize(("k", "out_max_val"), [(1, False), (3, False), (2, True)])
def test_without_axis(xp, shape, k, out_max_val):
    x = with_ties(shape)
    text = f"argmax_param {{ top_k: {k} out_max_val: {str(out_max_val).lower()} }}"
    layer = make_layer("ArgMax", text)
    _, tops = run_forward(layer, xp, [x])
    expected = loop_no_axis(x, k, out_max_val)
    assert tops[0].shape == expected.shape
    np.testing.assert_array_equal(to_host(tops[0].data), expected)
    np.testing.assert_array_equal(to_host(layer.internals()["indices"])[:, :, 0],
                                  loop_no_axis(x, k, False)[:, 0, :, ...].reshape(shape[0], k))


@pytest.mark.parametrize(("axis", "k", "out_max_val"),
                         [(1, 1, False), (1, 2, True), (-1, 2, False), (0, 2, False), (2, 3, True)])
def test_along_an_axis(xp, axis, k, out_max_val):
    x = with_ties((3, 4, 5), seed=1)
    text = (f"argmax_param {{ axis: {axis} top_k: {k} "
            f"out_max_val: {str(out_max_val).lower()} }}")
    _, tops = run_forward(make_layer("ArgMax", text), xp, [x])
    np.testing.assert_array_equal(to_host(tops[0].data), loop_axis(x, k, axis, out_max_val))


def test_ties_go_to_the_larger_index(xp):
    x = np.array([[1.0, 5.0, 5.0, 2.0, 5.0]])
    _, tops = run_forward(make_layer("ArgMax", "argmax_param { top_k: 4 }"), xp, [x])
    assert to_host(tops[0].data).ravel().tolist() == [4.0, 2.0, 1.0, 3.0]


def test_no_backward(xp):
    layer = make_layer("ArgMax")
    bottoms, tops = run_forward(layer, xp, [with_ties((2, 3))])
    assert not layer.allow_force_backward(0)
    with pytest.raises(BpinspectError, match="no gradient"):
        layer.backward(tops, [True], bottoms)


@pytest.mark.parametrize(("text", "shape", "message"), [
    ("argmax_param { top_k: 7 }", (2, 3, 2), "top_k 7"),
    ("argmax_param { top_k: 4 axis: 1 }", (2, 3, 2), "top_k 4"),
    ("argmax_param { top_k: 0 }", (2, 3), "at least 1"),
])
def test_bad_params(text, shape, message):
    with pytest.raises(BpinspectError, match=message):
        make_layer("ArgMax", text).setup([shape])
