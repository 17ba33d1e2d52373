"""Embed: rows of the weight picked by integer indices, plus the bias; weight and
bias gradients by central differences (repeated indices sum); no gradient to the
indices; bad indices are errors."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

TEXT = "embed_param {{ num_output: 3 input_dim: 5 bias_term: {bias} }}"


def indices(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 5, shape).astype(np.float64)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 2, 2)])
def test_forward_and_param_gradients(xp, bias, shape):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3))
    b = rng.standard_normal(3)
    params = [w, b] if bias else [w]
    text = TEXT.format(bias=str(bias).lower())
    idx = indices(shape)
    _, tops = run_forward(make_layer("Embed", text), xp, [idx], params)
    expected = np.empty(shape + (3,))
    for pos in np.ndindex(*shape):
        expected[pos] = w[int(idx[pos])] + (b if bias else 0)
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-14)
    results = check_layer(make_layer("Embed", text), [xp.asarray(idx)],
                          [xp.asarray(p) for p in params], propagate_down=[False])
    assert_passed(results)
    assert len(results) == len(params)


def test_repeated_indices_sum_their_gradients(xp):
    layer = make_layer("Embed", TEXT.format(bias="true"))
    idx = np.array([2.0, 0.0, 2.0, 2.0])
    bottoms, tops = run_forward(layer, xp, [idx], [np.zeros((5, 3)), np.zeros(3)])
    dy = np.arange(12, dtype=np.float64).reshape(4, 3)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [False], bottoms)
    expected = np.zeros((5, 3))
    expected[2] = dy[0] + dy[2] + dy[3]
    expected[0] = dy[1]
    np.testing.assert_array_equal(to_host(layer.blobs[0].diff), expected)
    np.testing.assert_array_equal(to_host(layer.blobs[1].diff), dy.sum(axis=0))
    np.testing.assert_array_equal(to_host(layer.internals()["indices"]), [2, 0, 2, 2])
    assert not layer.allow_force_backward(0)
    with pytest.raises(BpinspectError, match="cannot backpropagate"):
        layer.backward(tops, [True], bottoms)


@pytest.mark.parametrize("bad", [5.0, -1.0, 1.5])
def test_bad_indices(xp, bad):
    with pytest.raises(BpinspectError, match="not an integer in 0..4"):
        run_forward(make_layer("Embed", TEXT.format(bias="false")), xp,
                    [np.array([0.0, bad])], [np.zeros((5, 3))])


def test_params_and_fillers():
    text = ('embed_param { num_output: 3 input_dim: 5 weight_filler { type: "xavier" } }')
    layer = make_layer("Embed", text)
    layer.setup([(4,)])
    assert layer.param_shapes == [(5, 3), (3,)]
    assert layer.param_fillers()[0].type == "xavier" and layer.param_fillers()[1] is None
    with pytest.raises(BpinspectError, match="num_output"):
        make_layer("Embed", "embed_param { input_dim: 5 }").setup([(4,)])
