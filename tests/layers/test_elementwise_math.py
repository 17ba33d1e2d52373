"""Exp, Log, Threshold, Clip and Swish: forward against the scalar formulas, element
by element; gradients by central differences (away from Clip's corners); in place."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward

SHAPE = (2, 3, 4, 5)


def elementwise(f, x):
    return np.vectorize(f, otypes=[np.float64])(x)


def signed(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 2.0, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)


def positive(seed=0):
    return np.random.default_rng(seed).uniform(0.2, 3.0, SHAPE)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


CASES = [
    ("Exp", "", math.exp, signed),
    ("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }", lambda v: 2 ** (1 + 0.5 * v), signed),
    ("Exp", "exp_param { scale: -1.5 shift: 0.25 }", lambda v: math.exp(0.25 - 1.5 * v), signed),
    ("Log", "", math.log, positive),
    ("Log", "log_param { base: 10 scale: 2 shift: 0.5 }",
     lambda v: math.log10(0.5 + 2 * v), positive),
    ("Log", "log_param { base: 0.5 }", lambda v: math.log(v, 0.5), positive),
    ("Clip", "clip_param { min: -1 max: 0.5 }", lambda v: max(-1.0, min(v, 0.5)), signed),
    ("Swish", "", lambda v: v * sigmoid(v), signed),
    ("Swish", "swish_param { beta: 2.5 }", lambda v: v * sigmoid(2.5 * v), signed),
]
IDS = [f"{t}-{p.split('{')[-1].strip(' }') or 'default'}" for t, p, _, _ in CASES]


@pytest.mark.parametrize(("type_name", "text", "f", "inputs"), CASES, ids=IDS)
def test_forward(xp, type_name, text, f, inputs):
    x = inputs()
    _, tops = run_forward(make_layer(type_name, text), xp, [x])
    np.testing.assert_allclose(to_host(tops[0].data), elementwise(f, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("type_name", "text", "f", "inputs"), CASES, ids=IDS)
def test_gradients(xp, type_name, text, f, inputs):
    x = inputs(seed=1)
    if type_name == "Clip":  # keep every value a step away from the corners -1 and 0.5
        x = np.where(np.abs(x + 1) < 0.01, x - 0.05, x)
        x = np.where(np.abs(x - 0.5) < 0.01, x + 0.05, x)
    assert_passed(check_layer(make_layer(type_name, text), [xp.asarray(x)]))


@pytest.mark.parametrize(("type_name", "text", "f", "inputs"), CASES, ids=IDS)
def test_in_place_matches(xp, type_name, text, f, inputs):
    x, dy = inputs(seed=2), signed(seed=3)
    layer = make_layer(type_name, text)
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    in_place = make_layer(type_name, text, bottoms=("x",), tops=("x",))
    shared = blob(xp, x)
    in_place.setup([shared.shape])
    in_place.forward([shared], [shared])
    shared.diff = xp.asarray(dy)
    in_place.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.diff), to_host(bottoms[0].diff), rtol=1e-12)
    if type_name in ("Log", "Clip"):
        np.testing.assert_array_equal(to_host(in_place.internals()["bottom_memory"]), x)


def test_threshold_forward_and_no_gradient(xp):
    x = signed()
    x.flat[0] = 0.3  # exactly the threshold: not above it
    layer = make_layer("Threshold", "threshold_param { threshold: 0.3 }")
    bottoms, tops = run_forward(layer, xp, [x])
    t = float(np.float32(0.3))
    np.testing.assert_array_equal(to_host(tops[0].data),
                                  elementwise(lambda v: 1.0 if v > t else 0.0, x))
    assert to_host(tops[0].data).flat[0] == (1.0 if 0.3 > t else 0.0)
    assert not layer.allow_force_backward(0)
    layer.backward(tops, [False], bottoms)  # nothing asked: nothing done
    with pytest.raises(BpinspectError, match="no gradient"):
        layer.backward(tops, [True], bottoms)


def test_swish_keeps_its_sigmoid(xp):
    x = signed()
    layer = make_layer("Swish", "swish_param { beta: 2 }")
    run_forward(layer, xp, [x])
    np.testing.assert_allclose(to_host(layer.internals()["sigmoid_output"]),
                               elementwise(lambda v: sigmoid(2 * v), x), rtol=1e-12)


@pytest.mark.parametrize(("type_name", "text", "message"), [
    ("Exp", "exp_param { base: -2 }", "strictly positive"),
    ("Log", "log_param { base: 0 }", "strictly positive"),
    ("Log", "log_param { base: 1 }", "not finite"),
])
def test_bad_bases(type_name, text, message):
    with pytest.raises(BpinspectError, match=message):
        make_layer(type_name, text).setup([SHAPE])


def test_clip_needs_both_bounds():
    with pytest.raises(BpinspectError, match="min and max"):
        make_layer("Clip", "clip_param { min: 0 }")
