"""SigmoidCrossEntropyLoss: cross-entropy of sigmoid(x) against targets, every
normalization, ignore_label, the BATCH_SIZE default; gradients numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

IGNORE = -1
SHAPE = (3, 2, 2, 2)


def loss_layer(text=""):
    return make_layer("SigmoidCrossEntropyLoss", text, bottoms=("x", "t"), tops=("loss",))


def reference(x, t, ignore, mode):
    total, valid = 0.0, 0
    for v, target in zip(x.ravel().tolist(), t.ravel().tolist(), strict=True):
        if ignore is not None and int(target) == ignore:
            continue
        p = 1 / (1 + math.exp(-v))
        total -= target * math.log(p) + (1 - target) * math.log(1 - p)
        valid += 1
    normalizer = {"FULL": x.size, "VALID": valid, "BATCH_SIZE": x.shape[0], "NONE": 1}[mode]
    return total / max(1, normalizer)


def inputs(seed=0, ignored=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SHAPE) * 3
    t = rng.uniform(0, 1, SHAPE)
    t.flat[::4] = np.round(t.flat[::4])  # some hard 0/1 targets
    if ignored:
        t.flat[1::3] = IGNORE
    return x, t


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_forward_and_gradient(xp, mode, ignore):
    text = f"loss_param {{ normalization: {mode} "
    text += f"ignore_label: {ignore} }}" if ignore is not None else "}"
    x, t = inputs(ignored=ignore is not None)
    layer = loss_layer(text)
    _, tops = run_forward(layer, xp, [x, t])
    assert tops[0].shape == ()
    assert float(to_host(tops[0].data)) == pytest.approx(reference(x, t, ignore, mode),
                                                         rel=1e-12)
    np.testing.assert_allclose(to_host(layer.internals()["sigmoid_output"]),
                               1 / (1 + np.exp(-x)), rtol=1e-12)
    results = check_layer(loss_layer(text), [xp.asarray(x), xp.asarray(t)],
                          propagate_down=[True, False])
    assert_passed(results)


def test_default_is_batch_size_and_legacy_normalize(xp):
    x, t = inputs(ignored=True)
    text = f"loss_param {{ ignore_label: {IGNORE} }}"
    _, tops = run_forward(loss_layer(text), xp, [x, t])
    assert float(to_host(tops[0].data)) == pytest.approx(
        reference(x, t, IGNORE, "BATCH_SIZE"), rel=1e-12)
    _, tops = run_forward(loss_layer(f"loss_param {{ ignore_label: {IGNORE} normalize: true }}"),
                          xp, [x, t])
    assert float(to_host(tops[0].data)) == pytest.approx(reference(x, t, IGNORE, "VALID"),
                                                         rel=1e-12)


def test_large_scores_stay_finite(xp):
    x = np.array([[800.0, -800.0]])
    t = np.array([[0.0, 1.0]])
    _, tops = run_forward(loss_layer(), xp, [x, t])
    assert float(to_host(tops[0].data)) == pytest.approx(1600.0)


def test_ignored_positions_get_no_gradient_and_labels_none(xp):
    x, t = inputs(ignored=True)
    layer = loss_layer(f"loss_param {{ ignore_label: {IGNORE} }}")
    bottoms, tops = run_forward(layer, xp, [x, t])
    tops[0].diff = xp.asarray(2.0)
    layer.backward(tops, [True, False], bottoms)
    dx = to_host(bottoms[0].diff)
    ignored = t == IGNORE
    assert (dx[ignored] == 0).all()
    expected = (1 / (1 + np.exp(-x)) - t) * 2.0 / SHAPE[0]
    np.testing.assert_allclose(dx[~ignored], expected[~ignored], rtol=1e-12)
    assert not layer.allow_force_backward(1)
    with pytest.raises(BpinspectError, match="targets"):
        layer.backward(tops, [True, True], bottoms)


def test_counts_must_match():
    with pytest.raises(BpinspectError, match="same count"):
        loss_layer().setup([(3, 4), (3, 5)])
