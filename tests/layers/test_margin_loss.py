"""HingeLoss (L1, L2) and ContrastiveLoss (current and legacy): losses by loops,
gradients numerically (Contrastive's current gradient is Caffe's, with its 1e-4
guard, checked also against that formula)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

# ---- HingeLoss -------------------------------------------------------------------------


def hinge(text=""):
    return make_layer("HingeLoss", text, bottoms=("x", "label"), tops=("loss",))


def hinge_inputs(shape, seed=0):
    """Scores a step or more away from the margin's kinks at +-1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.5, 2.5, shape)
    x = np.where(np.abs(np.abs(x) - 1) < 0.05, x * 1.2, x)
    labels = rng.integers(0, int(np.prod(shape[1:])), shape[0]).astype(np.float64)
    return x, labels


def hinge_reference(x, labels, norm):
    n = x.shape[0]
    rows = x.reshape(n, -1)
    total = 0.0
    for i in range(n):
        for j, v in enumerate(rows[i].tolist()):
            s = -1.0 if j == int(labels[i]) else 1.0
            m = max(0.0, 1 + s * v)
            total += m if norm == "L1" else m * m
    return total / n


@pytest.mark.parametrize("norm", ["L1", "L2"])
@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 2, 2)])
def test_hinge_forward_and_gradient(xp, norm, shape):
    text = f"hinge_loss_param {{ norm: {norm} }}"
    x, labels = hinge_inputs(shape)
    label_blob = labels.reshape(shape[0], 1, 1, 1) if len(shape) == 4 else labels
    layer = hinge(text)
    _, tops = run_forward(layer, xp, [x, label_blob])
    assert float(to_host(tops[0].data)) == pytest.approx(hinge_reference(x, labels, norm),
                                                         rel=1e-12)
    margins = to_host(layer.internals()["margins"])
    assert margins.shape == (shape[0], int(np.prod(shape[1:]))) and (margins >= 0).all()
    assert_passed(check_layer(hinge(text), [xp.asarray(x), xp.asarray(label_blob)],
                              propagate_down=[True, False]))


def test_hinge_default_is_l1_and_labels_checked(xp):
    x, labels = hinge_inputs((4, 5))
    _, tops = run_forward(hinge(), xp, [x, labels])
    assert float(to_host(tops[0].data)) == pytest.approx(hinge_reference(x, labels, "L1"))
    with pytest.raises(BpinspectError, match="outside 0..4"):
        run_forward(hinge(), xp, [x, np.array([0.0, 5.0, 1.0, 1.0])])
    assert not hinge().allow_force_backward(1)


# ---- ContrastiveLoss -------------------------------------------------------------------


def contrastive(text=""):
    return make_layer("ContrastiveLoss", text, bottoms=("a", "b", "y"), tops=("loss",))


def pair_inputs(seed=0, n=6, c=3, margin=2.0, legacy=False):
    """Pairs whose dissimilar distances stay clear of the hinge at the margin."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, c, 1, 1))
    b = rng.standard_normal((n, c, 1, 1))
    y = (np.arange(n) % 2).astype(np.float64).reshape(n, 1, 1, 1)
    for i in range(n):
        for _ in range(100):
            dist_sq = float(((a[i] - b[i]) ** 2).sum())
            gap = margin - (dist_sq if legacy else math.sqrt(dist_sq))
            if abs(gap) > 0.1:
                break
            b[i] *= 1.3
    return a, b, y


def contrastive_reference(a, b, y, margin, legacy):
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        dist_sq = float(((a[i] - b[i]) ** 2).sum())
        if int(y.ravel()[i]):
            total += dist_sq
        elif legacy:
            total += max(margin - dist_sq, 0.0)
        else:
            total += max(margin - math.sqrt(dist_sq), 0.0) ** 2
    return total / n / 2


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_forward_and_gradient(xp, legacy):
    margin = 2.0
    text = (f"contrastive_loss_param {{ margin: {margin} "
            f"legacy_version: {str(legacy).lower()} }}")
    a, b, y = pair_inputs(margin=margin, legacy=legacy)
    layer = contrastive(text)
    _, tops = run_forward(layer, xp, [a, b, y])
    assert float(to_host(tops[0].data)) == pytest.approx(
        contrastive_reference(a, b, y, margin, legacy), rel=1e-12)
    np.testing.assert_allclose(to_host(layer.internals()["dist_sq"]),
                               ((a - b) ** 2).reshape(6, -1).sum(axis=1), rtol=1e-12)
    # Caffe's current gradient divides by dist + 1e-4, not dist: close, not exact.
    results = check_layer(contrastive(text), [xp.asarray(a), xp.asarray(b), xp.asarray(y)],
                          propagate_down=[True, True, False],
                          threshold=1e-6 if legacy else 1e-3)
    assert_passed(results)


def test_contrastive_gradient_is_caffes(xp):
    a, b, y = pair_inputs(seed=3, margin=3.0)
    layer = contrastive("contrastive_loss_param { margin: 3 }")
    bottoms, tops = run_forward(layer, xp, [a, b, y])
    tops[0].diff = xp.asarray(1.5)
    layer.backward(tops, [True, True, False], bottoms)
    expected = np.zeros((6, 3))
    for i in range(6):
        d = (a[i] - b[i]).ravel()
        dist = math.sqrt(float(d @ d))
        if int(y.ravel()[i]):
            expected[i] = d
        elif 3.0 - dist > 0:
            expected[i] = -(3.0 - dist) / (dist + 1e-4) * d
    expected *= 1.5 / 6
    np.testing.assert_allclose(to_host(bottoms[0].diff).reshape(6, 3), expected, rtol=1e-12)
    np.testing.assert_allclose(to_host(bottoms[1].diff).reshape(6, 3), -expected, rtol=1e-12)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(1)


def test_contrastive_shapes():
    with pytest.raises(BpinspectError, match=r"\(N, C, 1, 1\)"):
        contrastive().setup([(2, 3, 2, 1), (2, 3, 2, 1), (2, 1, 1, 1)])
    with pytest.raises(BpinspectError, match="similarity"):
        contrastive().setup([(2, 3), (2, 3), (2, 2)])
    assert contrastive().setup([(2, 3), (2, 3), (2,)]) == [()]
