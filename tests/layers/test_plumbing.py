"""Silence, Parameter, BatchReindex and Tile: values moved, repeated or dropped;
forward by loops, gradients by central differences and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- Silence ---------------------------------------------------------------------------


def test_silence_zeros_the_diffs_asked_for(xp):
    layer = make_layer("Silence", bottoms=("a", "b"), tops=())
    a, b = blob(xp, randn((2, 3))), blob(xp, randn((4,)))
    assert layer.setup([a.shape, b.shape]) == []
    layer.forward([a, b], [])
    a.diff, b.diff = xp.ones(a.shape), xp.ones(b.shape)
    layer.backward([], [True, False], [a, b])
    assert (to_host(a.diff) == 0).all() and (to_host(b.diff) == 1).all()


# ---- Parameter -------------------------------------------------------------------------


def test_parameter_is_its_top(xp):
    layer = make_layer("Parameter", "parameter_param { shape { dim: 2 dim: 3 } }",
                       bottoms=(), tops=("p",))
    w = randn((2, 3))
    assert layer.setup([]) == [(2, 3)] and layer.param_shapes == [(2, 3)]
    layer.blobs = [blob(xp, w)]
    layer.param_propagate_down = [True]
    top = blob(xp, np.zeros((2, 3)))
    layer.forward([], [top])
    np.testing.assert_array_equal(to_host(top.data), w)
    for _ in range(2):  # the param's diff is the top's diff (Caffe shares it), not a sum
        top.diff = xp.asarray(randn((2, 3), 1))
        layer.backward([top], [], [])
        np.testing.assert_array_equal(to_host(layer.blobs[0].diff), randn((2, 3), 1))


# ---- BatchReindex ----------------------------------------------------------------------


def reindex(text=""):
    return make_layer("BatchReindex", text, bottoms=("x", "idx"), tops=("y",))


@pytest.mark.parametrize("shape", [(4, 3, 2), (5,)])
def test_batch_reindex_forward_and_gradient(xp, shape):
    x = randn(shape)
    idx = np.array([3.0, 0.0, 3.0, 1.0, 3.0, 2.0])
    _, tops = run_forward(reindex(), xp, [x, idx])
    expected = np.stack([x[int(i)] for i in idx])
    np.testing.assert_array_equal(to_host(tops[0].data), expected)
    assert_passed(check_layer(reindex(), [xp.asarray(randn(shape, 1)), xp.asarray(idx)],
                              propagate_down=[True, False]))


def test_batch_reindex_backward_sums_repeats_and_zeros_the_rest(xp):
    layer = reindex()
    x = randn((4, 2))
    bottoms, tops = run_forward(layer, xp, [x, np.array([1.0, 1.0, 3.0])])
    tops[0].diff = xp.asarray([[1.0, 2.0], [10.0, 20.0], [5.0, 6.0]])
    layer.backward(tops, [True, False], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff),
                                  [[0, 0], [11, 22], [0, 0], [5, 6]])
    np.testing.assert_array_equal(to_host(layer.internals()["indices"]), [1, 1, 3])
    assert not layer.allow_force_backward(1)
    with pytest.raises(BpinspectError, match="indices"):
        layer.backward(tops, [True, True], bottoms)


def test_batch_reindex_errors(xp):
    with pytest.raises(BpinspectError, match="outside 0..3"):
        run_forward(reindex(), xp, [randn((4, 2)), np.array([4.0])])
    with pytest.raises(BpinspectError, match="one axis"):
        reindex().setup([(4, 2), (2, 1)])


# ---- Tile ------------------------------------------------------------------------------


def loop_tile(x, axis, tiles):
    """Each block x[i0.., :, ...] (the axes from ``axis``) repeated ``tiles`` times."""
    lead = x.shape[:axis]
    out = np.empty(lead + (x.shape[axis] * tiles,) + x.shape[axis + 1:])
    size = x.shape[axis]
    for index in np.ndindex(*lead):
        for t in range(tiles):
            out[index][t * size : (t + 1) * size] = x[index]
    return out


@pytest.mark.parametrize(("axis", "tiles"), [(1, 3), (0, 2), (-1, 4), (2, 1)])
def test_tile_forward_and_gradient(xp, axis, tiles):
    x = randn((2, 3, 4))
    text = f"tile_param {{ axis: {axis} tiles: {tiles} }}"
    _, tops = run_forward(make_layer("Tile", text), xp, [x])
    np.testing.assert_array_equal(to_host(tops[0].data), loop_tile(x, axis % 3, tiles))
    assert_passed(check_layer(make_layer("Tile", text), [xp.asarray(randn((2, 3, 4), 1))]))


def test_tile_needs_tiles():
    with pytest.raises(BpinspectError, match="tiles must be given"):
        make_layer("Tile").setup([(2, 3)])
    with pytest.raises(BpinspectError, match="positive"):
        make_layer("Tile", "tile_param { tiles: 0 }").setup([(2, 3)])
