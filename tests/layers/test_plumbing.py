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


def test_silence_gradient_check_each_bottom_is_assigned_zero(xp):
    # No top: the objective (a projection of the tops) is 0 and so is every central
    # difference. What the check can catch is a backward that leaves a diff alone:
    # check_layer fills the bottoms' diffs with NaN first, so each must be assigned 0.
    a, b = xp.asarray(randn((2, 3))), xp.asarray(randn((4,), 1))
    for down in ([True, True], [False, True]):
        layer = make_layer("Silence", bottoms=("a", "b"), tops=())
        results = check_layer(layer, [a, b], propagate_down=down)
        assert [r.what for r in results] == [f"bottom[{i}]" for i, d in enumerate(down) if d]
        for r in results:
            assert r.checked == (6 if r.what == "bottom[0]" else 4)
            assert r.numeric == (0.0,) * r.checked and r.analytic == (0.0,) * r.checked
        assert_passed(results)


SILENCE_NET = """
name: "silence_shared"
force_backward: true
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
%s
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "Reduction" bottom: "ip" top: "loss" loss_weight: 0.5
        reduction_param { operation: SUMSQ } }
%s
"""
SILENCE = 'layer { name: "silence" type: "Silence" bottom: "x" }'


@pytest.mark.parametrize("first", [True, False], ids=["silence-first", "silence-last"])
def test_silence_beside_another_consumer_adds_nothing_to_the_gradient(xp, first):
    """x feeds Silence and an InnerProduct (a Split between): x's diff is the loss's
    gradient by central differences, the Silence branch of the Split holds 0."""
    from bpinspect.backend import CPU, select_device
    from bpinspect.engine.net import Net
    from bpinspect.io.prototxt import parse_net
    from bpinspect.session.gradcheck import numerical_gradient, sample_coords

    text = SILENCE_NET % ((SILENCE, "") if first else ("", SILENCE))
    net = Net(parse_net(text, "<test>"), dtype=np.float64,
              device=CPU if xp is np else select_device("gpu"))
    silence = net.layer_index("silence")
    (branch,) = net.bottom_blobs(silence)
    x = net.blobs["x"]
    assert branch is not x  # a Split feeds the two consumers
    net.forward(x=randn((2, 3), 2))

    def objective() -> float:
        net.forward()
        return 0.5 * float(to_host(net.blobs["loss"].data))

    # Every diff NaN first, and no clearing (backward from a start): each layer must
    # assign its bottoms' diffs, Silence included, or the NaN reaches x through the Split.
    for each in net.blobs.values():
        each.diff = xp.full(each.shape, np.nan)
    net.backward(start=net.layer_names[-1])
    analytic = to_host(x.diff).copy()
    np.testing.assert_array_equal(to_host(branch.diff), np.zeros((2, 3)))
    coords = sample_coords((2, 3), None, 0)
    numeric = numerical_gradient(objective, x.data, coords, 1e-6)
    assert np.abs(numeric).min() > 1e-3  # a real gradient for the other consumer to give
    np.testing.assert_allclose([analytic[c] for c in coords], numeric, rtol=1e-6, atol=1e-8)


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


@pytest.mark.parametrize("dims", [(2, 3), (4,), (2, 1, 3)])
def test_parameter_gradient_check(xp, dims):
    # No bottom: the only gradient is the param's, d<top, R>/dparam = R (the top diff).
    shape = " ".join(f"dim: {d}" for d in dims)
    text = f"parameter_param {{ shape {{ {shape} }} }}"
    w = xp.asarray(randn(dims, 3))
    results = check_layer(make_layer("Parameter", text, bottoms=(), tops=("p",)), [], [w])
    assert [r.what for r in results] == ["param[0]"]
    assert results[0].checked == int(np.prod(dims))
    assert np.abs(results[0].numeric).min() > 1e-3
    assert_passed(results)


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
