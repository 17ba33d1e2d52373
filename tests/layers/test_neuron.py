"""Neuron layers: forward against textbook formulas (element by element), gradients
by central differences away from kinks, in-place use, and Dropout's mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward


def away_from_zero(shape, seed=0, margin=0.05):
    """Values in +-[margin, 2): no coordinate within a step of a kink at 0."""
    rng = np.random.default_rng(seed)
    magnitude = rng.uniform(margin, 2.0, shape)
    return magnitude * rng.choice([-1.0, 1.0], shape)


def elementwise(f, x):
    return np.vectorize(f, otypes=[np.float64])(x)


SHAPE = (2, 3, 4, 5)
SLOPE = float(np.float32(0.1))  # the proto's fields are float32

# (type, params text, scalar reference f(x), domain of x)
CASES = [
    ("ReLU", "", lambda x: max(x, 0.0), "signed"),
    ("ReLU", "relu_param { negative_slope: 0.1 }", lambda x: x if x > 0 else SLOPE * x, "signed"),
    ("Sigmoid", "", lambda x: 1 / (1 + math.exp(-x)), "signed"),
    ("TanH", "", math.tanh, "signed"),
    ("AbsVal", "", abs, "signed"),
    ("BNLL", "", lambda x: math.log(1 + math.exp(x)), "signed"),
    ("ELU", "", lambda x: x if x > 0 else math.exp(x) - 1, "signed"),
    ("ELU", "elu_param { alpha: 0.5 }", lambda x: x if x > 0 else 0.5 * (math.exp(x) - 1),
     "signed"),
    ("Power", "power_param { power: 2 scale: 0.5 shift: 1 }", lambda x: (1 + 0.5 * x) ** 2,
     "signed"),
    ("Power", "power_param { power: 1.5 scale: 2 shift: 0 }", lambda x: (2 * x) ** 1.5,
     "positive"),
    ("Power", "power_param { power: -0.5 scale: 1 shift: 3 }", lambda x: (3 + x) ** -0.5,
     "signed"),
    ("Power", "power_param { power: 1 scale: -2 shift: 0.5 }", lambda x: 0.5 - 2 * x, "signed"),
]
IDS = [f"{t}-{p.split('{')[-1].strip(' }') or 'default'}" for t, p, _, _ in CASES]


def inputs(domain, seed=0):
    x = away_from_zero(SHAPE, seed)
    return np.abs(x) if domain == "positive" else x


@pytest.mark.parametrize(("type_name", "text", "f", "domain"), CASES, ids=IDS)
def test_forward_matches_the_formula(xp, type_name, text, f, domain):
    x = inputs(domain)
    _, tops = run_forward(make_layer(type_name, text), xp, [x])
    np.testing.assert_allclose(to_host(tops[0].data), elementwise(f, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("type_name", "text", "f", "domain"), CASES, ids=IDS)
def test_gradients(xp, type_name, text, f, domain):
    x = xp.asarray(inputs(domain, seed=1))
    assert_passed(check_layer(make_layer(type_name, text), [x]))


def test_power_constant_cases(xp):
    x = away_from_zero((3, 4))
    for text, value in [("power: 0 scale: 2 shift: 5", 1.0), ("power: 2 scale: 0 shift: 3", 9.0)]:
        layer = make_layer("Power", f"power_param {{ {text} }}")
        bottoms, tops = run_forward(layer, xp, [x])
        assert (to_host(tops[0].data) == value).all()
        tops[0].diff = xp.ones((3, 4))
        layer.backward(tops, [True], bottoms)
        assert (to_host(bottoms[0].diff) == 0).all()


@pytest.mark.parametrize(("type_name", "text", "f", "domain"),
                         [c for c in CASES if c[0] != "AbsVal"],
                         ids=[i for i, c in zip(IDS, CASES, strict=True) if c[0] != "AbsVal"])
def test_in_place_gives_the_same_top_and_bottom_diff(xp, type_name, text, f, domain):
    x = inputs(domain, seed=2)
    dy = np.random.default_rng(3).standard_normal(SHAPE)
    # Reference: separate bottom and top blobs.
    layer = make_layer(type_name, text)
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    # In place: one blob is bottom and top.
    layer = make_layer(type_name, text, bottoms=("x",), tops=("x",))
    shared = blob(xp, x)
    layer.setup([shared.shape])
    layer.forward([shared], [shared])
    np.testing.assert_allclose(to_host(shared.data), to_host(tops[0].data), rtol=1e-12)
    shared.diff = xp.asarray(dy)
    layer.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.diff), to_host(bottoms[0].diff), rtol=1e-10)


def test_absval_refuses_in_place(xp):
    with pytest.raises(BpinspectError, match="in-place"):
        make_layer("AbsVal", bottoms=("x",), tops=("x",)).setup([(2, 3)])


def test_relu_backward_uses_the_sign_of_the_bottom(xp):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    layer = make_layer("ReLU", "relu_param { negative_slope: 0.25 }")
    bottoms, tops = run_forward(layer, xp, [x])
    np.testing.assert_allclose(to_host(tops[0].data), [-0.5, -0.125, 0, 0.5, 3.0])
    tops[0].diff = xp.full(5, 2.0)
    layer.backward(tops, [True], bottoms)
    # Caffe: (x > 0) + negative_slope * (x <= 0); at 0 the slope is negative_slope.
    np.testing.assert_allclose(to_host(bottoms[0].diff), [0.5, 0.5, 0.5, 2.0, 2.0])


@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_relu_backward_multiplies_as_caffe_so_nan_and_signed_zeros_pass(xp, slope):
    """Caffe multiplies the top diff by (x > 0) + slope * (x <= 0): a NaN or Inf diff
    where x <= 0 stays NaN (Inf * 0), and -2 * 0 is -0."""
    x = np.array([-1.0, -1.0, -1.0, 1.0, 0.0], dtype=np.float32)
    dy = np.array([np.nan, np.inf, -2.0, np.nan, 3.0], dtype=np.float32)
    layer = make_layer("ReLU", f"relu_param {{ negative_slope: {slope} }}")
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray(dy)
    with np.errstate(invalid="ignore"):  # Inf * 0, as in Caffe
        layer.backward(tops, [True], bottoms)
    got = to_host(bottoms[0].diff)
    factor = np.where(x > 0, 1, slope).astype(np.float32)
    with np.errstate(invalid="ignore"):
        expected = dy * factor
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_propagate_down_false_leaves_the_bottom_diff(xp):
    layer = make_layer("TanH")
    bottoms, tops = run_forward(layer, xp, [away_from_zero((3,))])
    bottoms[0].diff = xp.full(3, 5.0)
    tops[0].diff = xp.ones(3)
    layer.backward(tops, [False], bottoms)
    assert (to_host(bottoms[0].diff) == 5).all()


def test_bnll_is_stable_for_large_inputs(xp):
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    layer = make_layer("BNLL")
    bottoms, tops = run_forward(layer, xp, [x])
    y = to_host(tops[0].data)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, [0.0, math.log1p(math.exp(-40)), math.log(2), 40.0, 800.0],
                               rtol=1e-12, atol=1e-300)
    tops[0].diff = xp.ones(5)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(to_host(bottoms[0].diff),
                               [0.0, 1 / (1 + math.exp(40)), 0.5, 1 / (1 + math.exp(-40)), 1.0],
                               rtol=1e-12, atol=1e-300)


# ---- Dropout ---------------------------------------------------------------------------


def dropout(phase, ratio=0.5, **kw):
    return make_layer("Dropout", f"dropout_param {{ dropout_ratio: {ratio} }}", phase=phase, **kw)


def test_dropout_train_scales_kept_values_and_masks_the_rest(xp):
    x = away_from_zero((50, 40, 10), seed=4)
    layer = dropout("train", 0.3)
    layer.reset_rng(11)
    bottoms, tops = run_forward(layer, xp, [x])
    mask = to_host(layer.internals()["mask"])
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert mask.mean() == pytest.approx(0.7, abs=5 * math.sqrt(0.21 / mask.size))
    scale = 1 / (1 - np.float64(np.float32(0.3)))  # dropout_ratio is a float in the proto
    np.testing.assert_allclose(to_host(tops[0].data), x * mask * scale, rtol=1e-12)
    dy = np.random.default_rng(5).standard_normal(x.shape)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_allclose(to_host(bottoms[0].diff), dy * mask * scale, rtol=1e-12)


def test_dropout_reset_rng_replays_the_mask(xp):
    x = away_from_zero((4, 30), seed=6)
    layer = dropout("train")
    layer.reset_rng(3)
    run_forward(layer, xp, [x])
    first = to_host(layer.internals()["mask"]).copy()
    run_forward(layer, xp, [x])
    second = to_host(layer.internals()["mask"]).copy()
    assert not np.array_equal(first, second)  # the generator moves on
    layer.reset_rng(3)
    run_forward(layer, xp, [x])
    np.testing.assert_array_equal(to_host(layer.internals()["mask"]), first)
    layer.reset_rng(4)
    run_forward(layer, xp, [x])
    assert not np.array_equal(to_host(layer.internals()["mask"]), first)


def test_dropout_train_gradient(xp):
    # check_layer re-seeds (reset_rng) before every forward, so the mask holds still.
    x = xp.asarray(away_from_zero((3, 4, 5), seed=7))
    layer = dropout("train", 0.4)
    assert_passed(check_layer(layer, [x]))
    assert 0 < float(to_host(layer.internals()["mask"]).mean()) < 1


def test_dropout_test_phase_is_the_identity(xp):
    x = away_from_zero((3, 7), seed=8)
    layer = dropout("test")
    bottoms, tops = run_forward(layer, xp, [x])
    np.testing.assert_array_equal(to_host(tops[0].data), x)
    assert layer.internals() == {}
    tops[0].diff = xp.asarray(x * 2)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), x * 2)
    assert_passed(check_layer(dropout("test"), [xp.asarray(x)]))


def test_dropout_in_place_reuses_the_mask(xp):
    x = away_from_zero((6, 5), seed=9)
    layer = dropout("train", bottoms=("x",), tops=("x",))
    layer.reset_rng(0)
    shared = blob(xp, x)
    layer.setup([shared.shape])
    layer.forward([shared], [shared])
    mask = to_host(layer.internals()["mask"])
    np.testing.assert_allclose(to_host(shared.data), x * mask * 2)
    shared.diff = xp.ones(x.shape)
    layer.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.diff), mask * 2)


def test_dropout_ratio_must_be_below_one(xp):
    with pytest.raises(BpinspectError, match="dropout_ratio"):
        dropout("train", 1.0).setup([(2, 2)])


def test_dropout_mask_is_the_same_on_every_device_and_dtype(xp):
    # Drawn on the host from one seed: a GPU run replays a CPU run's mask.
    x = away_from_zero((5, 8), seed=10)
    masks = []
    for module, dtype in ((np, np.float64), (xp, np.float64), (xp, np.float32)):
        layer = dropout("train")
        layer.reset_rng(21)
        run_forward(layer, module, [x.astype(dtype)])
        masks.append(to_host(layer.internals()["mask"]).astype(np.float64))
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])
