"""Concat, Slice and Split: where each value goes forward, which slice of a diff
each blob gets backward, and the sum a Split gives a blob used twice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward


def names(n, prefix):
    return tuple(f"{prefix}{i}" for i in range(n))


def concat_reference(arrays, axis):
    """Copy every value to its place in the top, index by index."""
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.full(shape, np.nan)
    offset = 0
    for a in arrays:
        for index in itertools.product(*map(range, a.shape)):
            target = list(index)
            target[axis] += offset
            out[tuple(target)] = a[index]
        offset += a.shape[axis]
    return out


# ---- Concat --------------------------------------------------------------------------

CONCAT_CASES = [  # (text, bottom shapes, canonical axis)
    ("", [(2, 3, 4), (2, 1, 4), (2, 2, 4)], 1),
    ("concat_param { axis: 0 }", [(1, 3, 2), (3, 3, 2)], 0),
    ("concat_param { axis: -1 }", [(2, 3, 1), (2, 3, 4)], 2),
    ("concat_param { axis: 2 }", [(2, 1, 3, 2), (2, 1, 2, 2), (2, 1, 1, 2)], 2),
    ("concat_param { concat_dim: 0 }", [(2, 3), (1, 3)], 0),
]


@pytest.mark.parametrize(("text", "shapes", "axis"), CONCAT_CASES)
def test_concat_forward_and_offsets(xp, text, shapes, axis):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    layer = make_layer("Concat", text, bottoms=names(len(shapes), "x"))
    _, tops = run_forward(layer, xp, arrays)
    assert layer.axis == axis
    np.testing.assert_array_equal(to_host(tops[0].data), concat_reference(arrays, axis))
    offsets = layer.internals()["offsets"]
    assert offsets.dtype == np.int64
    assert list(offsets) == list(np.cumsum([0] + [s[axis] for s in shapes]))


@pytest.mark.parametrize(("text", "shapes", "axis"), CONCAT_CASES)
def test_concat_gradients(xp, text, shapes, axis):
    rng = np.random.default_rng(1)
    arrays = [xp.asarray(rng.standard_normal(s)) for s in shapes]
    layer = make_layer("Concat", text, bottoms=names(len(shapes), "x"))
    results = check_layer(layer, arrays)
    assert len(results) == len(shapes)
    assert_passed(results)


def test_concat_backward_gives_each_bottom_its_slice(xp):
    rng = np.random.default_rng(2)
    shapes = [(2, 2, 3), (2, 4, 3), (2, 1, 3)]
    layer = make_layer("Concat", bottoms=names(3, "x"))
    bottoms, tops = run_forward(layer, xp, [rng.standard_normal(s) for s in shapes])
    dy = rng.standard_normal((2, 7, 3))
    tops[0].diff = xp.asarray(dy)
    bottoms[1].diff = xp.full((2, 4, 3), 9.0)
    layer.backward(tops, [True, False, True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), dy[:, 0:2])
    assert (to_host(bottoms[1].diff) == 9).all()  # propagate_down false: untouched
    np.testing.assert_array_equal(to_host(bottoms[2].diff), dy[:, 6:7])


def test_concat_of_one_array_given_twice_slices_each_copy(xp):
    # The same values as two separate bottoms: bottom 0 gets the first half of the
    # top diff, bottom 1 the second. (A net's Split then sums them: test_split_*.)
    x = np.random.default_rng(3).standard_normal((2, 3, 2))
    layer = make_layer("Concat", bottoms=("a", "b"))
    bottoms, tops = run_forward(layer, xp, [x, x])
    np.testing.assert_array_equal(to_host(tops[0].data), np.concatenate([x, x], axis=1))
    dy = np.arange(24.0).reshape(2, 6, 2)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True, True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), dy[:, :3])
    np.testing.assert_array_equal(to_host(bottoms[1].diff), dy[:, 3:])
    assert list(layer.internals()["offsets"]) == [0, 3, 6]


def test_concat_of_one_bottom_shares(xp):
    x = np.random.default_rng(4).standard_normal((2, 3))
    layer = make_layer("Concat")
    bottoms, tops = run_forward(layer, xp, [x])
    np.testing.assert_array_equal(to_host(tops[0].data), x)
    tops[0].diff = xp.ones((2, 3))
    layer.backward(tops, [True], bottoms)
    assert (to_host(bottoms[0].diff) == 1).all()


def test_concat_errors(xp):
    with pytest.raises(BpinspectError, match="not both"):
        make_layer("Concat", "concat_param { axis: 1 concat_dim: 1 }",
                   bottoms=("a", "b")).setup([(2, 3), (2, 3)])
    with pytest.raises(BpinspectError, match="same shape except along axis 1"):
        make_layer("Concat", bottoms=("a", "b")).setup([(2, 3, 4), (3, 3, 4)])
    with pytest.raises(BpinspectError, match="number of axes"):
        make_layer("Concat", bottoms=("a", "b")).setup([(2, 3, 4), (2, 3)])
    with pytest.raises(BpinspectError, match="axis 3 is out of range"):
        make_layer("Concat", "concat_param { axis: 3 }", bottoms=("a", "b")).setup(
            [(2, 3), (2, 3)])


# ---- Slice ---------------------------------------------------------------------------

SLICE_CASES = [  # (text, bottom shape, number of tops, canonical axis, points)
    ("slice_param { slice_point: 1 slice_point: 4 }", (2, 6, 3), 3, 1, [0, 1, 4, 6]),
    ("slice_param { axis: 0 }", (4, 3), 2, 0, [0, 2, 4]),
    ("slice_param { axis: -1 slice_point: 2 }", (2, 3, 5), 2, 2, [0, 2, 5]),
    ("slice_param { slice_dim: 2 }", (2, 3, 6), 3, 2, [0, 2, 4, 6]),
]


@pytest.mark.parametrize(("text", "shape", "n", "axis", "points"), SLICE_CASES)
def test_slice_forward_and_offsets(xp, text, shape, n, axis, points):
    x = np.random.default_rng(5).standard_normal(shape)
    layer = make_layer("Slice", text, tops=names(n, "y"))
    _, tops = run_forward(layer, xp, [x])
    assert layer.axis == axis
    assert list(layer.internals()["offsets"]) == points
    for t, (a, b) in zip(tops, zip(points, points[1:], strict=False), strict=True):
        expected = np.take(x, range(a, b), axis=axis)
        np.testing.assert_array_equal(to_host(t.data), expected)
    # Concatenating the tops gives the bottom back.
    np.testing.assert_array_equal(concat_reference([to_host(t.data) for t in tops], axis), x)


@pytest.mark.parametrize(("text", "shape", "n", "axis", "points"), SLICE_CASES)
def test_slice_gradients(xp, text, shape, n, axis, points):
    x = xp.asarray(np.random.default_rng(6).standard_normal(shape))
    assert_passed(check_layer(make_layer("Slice", text, tops=names(n, "y")), [x]))


def test_slice_backward_assembles_the_top_diffs(xp):
    layer = make_layer("Slice", "slice_param { slice_point: 2 }", tops=("a", "b"))
    bottoms, tops = run_forward(layer, xp, [np.zeros((2, 5))])
    tops[0].diff = xp.full((2, 2), 1.0)
    tops[1].diff = xp.full((2, 3), 2.0)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), [[1, 1, 2, 2, 2]] * 2)


def test_slice_errors(xp):
    with pytest.raises(BpinspectError, match="evenly divide"):
        make_layer("Slice", tops=("a", "b")).setup([(2, 3)])
    with pytest.raises(BpinspectError, match="slice_point"):
        make_layer("Slice", "slice_param { slice_point: 1 }", tops=("a", "b", "c")).setup([(2, 4)])
    with pytest.raises(BpinspectError, match="increase"):
        make_layer("Slice", "slice_param { slice_point: 3 slice_point: 2 }",
                   tops=("a", "b", "c")).setup([(2, 4)])
    with pytest.raises(BpinspectError, match="not both"):
        make_layer("Slice", "slice_param { axis: 1 slice_dim: 1 }", tops=("a", "b")).setup(
            [(2, 4)])


# ---- Split ---------------------------------------------------------------------------


def test_split_shares_the_data_and_sums_the_diffs(xp):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    layer = make_layer("Split", tops=names(3, "x_split_"))
    bottoms, tops = run_forward(layer, xp, [x])
    for t in tops:
        assert t.data is bottoms[0].data  # Caffe's ShareData
    diffs = [rng.standard_normal(x.shape) for _ in tops]
    for t, d in zip(tops, diffs, strict=True):
        t.diff = xp.asarray(d)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(to_host(bottoms[0].diff), diffs[0] + diffs[1] + diffs[2],
                               rtol=1e-14)
    for t, d in zip(tops, diffs, strict=True):  # the tops' diffs are left as they were
        np.testing.assert_array_equal(to_host(t.diff), d)


def test_split_of_a_concatenated_blob_gets_both_slices(xp):
    # A blob concatenated with itself: Split (2 tops) -> Concat. The bottom diff is
    # the sum of the two slices of the concat's top diff.
    x = np.random.default_rng(8).standard_normal((2, 3))
    split = make_layer("Split", tops=("x0", "x1"))
    s_bottoms, s_tops = run_forward(split, xp, [x])
    concat = make_layer("Concat", bottoms=("x0", "x1"))
    concat.setup([(2, 3), (2, 3)])
    top = Blob("y", (2, 6), xp, np.float64)
    concat.forward(s_tops, [top])
    dy = np.arange(12.0).reshape(2, 6)
    top.diff = xp.asarray(dy)
    concat.backward([top], [True, True], s_tops)
    split.backward(s_tops, [True], s_bottoms)
    np.testing.assert_array_equal(to_host(s_bottoms[0].diff), dy[:, :3] + dy[:, 3:])


def test_split_gradient(xp):
    x = xp.asarray(np.random.default_rng(9).standard_normal((3, 2, 5)))
    assert_passed(check_layer(make_layer("Split", tops=("a", "b")), [x]))


def test_split_refuses_in_place(xp):
    with pytest.raises(BpinspectError, match="in-place"):
        make_layer("Split", bottoms=("x",), tops=("x", "y")).setup([(2, 3)])
