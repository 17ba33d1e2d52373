"""PReLU: a per-channel (or shared) learned negative slope; gradients to x and the
slope by central differences; in place it saves its input; Caffe's default filler."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward


def signed(shape, seed=0):
    """Values in +-[0.05, 2): no coordinate within a step of the kink at 0."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def loop_prelu(x, slopes, shared):
    y = np.empty_like(x)
    for index in itertools.product(*(range(s) for s in x.shape)):
        a = slopes if shared else slopes[index[1]]
        v = x[index]
        y[index] = v if v > 0 else a * v
    return y


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (2, 3, 2, 2, 3)])
@pytest.mark.parametrize("shared", [False, True])
def test_forward_and_gradients(xp, shape, shared):
    text = "prelu_param { channel_shared: true }" if shared else ""
    x = signed(shape)
    slopes = np.array(0.3) if shared else np.linspace(-0.5, 0.7, shape[1])
    _, tops = run_forward(make_layer("PReLU", text), xp, [x], [slopes])
    np.testing.assert_allclose(to_host(tops[0].data), loop_prelu(x, slopes, shared),
                               rtol=1e-14)
    layer = make_layer("PReLU", text)
    assert_passed(check_layer(layer, [xp.asarray(signed(shape, 1))], [xp.asarray(slopes)]))
    assert layer.param_shapes == [() if shared else (shape[1],)]


def test_in_place_keeps_the_input_for_backward(xp):
    x, dy = signed((2, 3, 4)), signed((2, 3, 4), 2)
    slopes = np.array([0.1, -0.2, 0.4])
    layer = make_layer("PReLU")
    bottoms, tops = run_forward(layer, xp, [x], [slopes])
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    assert layer.internals() == {}  # not in place: backward reads the bottom itself

    in_place = make_layer("PReLU", bottoms=("x",), tops=("x",))
    shared = blob(xp, x)
    in_place.setup([shared.shape])
    in_place.blobs = [blob(xp, slopes)]
    in_place.param_propagate_down = [True]
    in_place.forward([shared], [shared])
    np.testing.assert_array_equal(to_host(in_place.internals()["bottom_memory"]), x)
    shared.diff = xp.asarray(dy)
    in_place.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.data), to_host(tops[0].data), rtol=1e-14)
    np.testing.assert_allclose(to_host(shared.diff), to_host(bottoms[0].diff), rtol=1e-14)
    np.testing.assert_allclose(to_host(in_place.blobs[0].diff), to_host(layer.blobs[0].diff),
                               rtol=1e-14)
    # The slope gradient by hand: sum of dy * x where x <= 0, per channel.
    expected = [(dy[:, c] * x[:, c] * (x[:, c] <= 0)).sum() for c in range(3)]
    np.testing.assert_allclose(to_host(layer.blobs[0].diff), expected, rtol=1e-12)


def test_fillers():
    default = make_layer("PReLU").param_fillers()[0]
    assert (default.type, default.value) == ("constant", 0.25)  # Caffe's default
    given = make_layer("PReLU", 'prelu_param { filler { type: "constant" value: 0.5 } }')
    assert given.param_fillers()[0].value == 0.5


def test_needs_two_axes():
    with pytest.raises(BpinspectError, match="at least 2 axes"):
        make_layer("PReLU").setup([(5,)])
