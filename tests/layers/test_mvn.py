"""MVN: per-plane (or per-sample, across channels) mean subtraction and division by
std + eps; forward and internals by loops, gradients by central differences, and
Caffe's approximate gradient where eps is large."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

SHAPE = (2, 3, 4, 5)


def params(variance, across, eps=None):
    text = (f"mvn_param {{ normalize_variance: {str(variance).lower()} "
            f"across_channels: {str(across).lower()}")
    return text + (f" eps: {eps} }}" if eps is not None else " }")


def loop_mvn(x, variance, across, eps):
    """Group by group, in plain Python: (x - mean) [/ (std + eps)]."""
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    n, c = x4.shape[:2]
    out = np.empty(x4.shape)
    groups = [(i, slice(None)) for i in range(n)] if across else \
        [(i, j) for i in range(n) for j in range(c)]
    for i, j in groups:
        values = x4[i, j].ravel().tolist()
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) + eps
        out[i, j] = (x4[i, j] - mean) / (std if variance else 1.0)
    return out


@pytest.mark.parametrize("variance", [True, False])
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("shape", [SHAPE, (3, 4)])
def test_forward_and_gradient(xp, variance, across, shape):
    x = np.random.default_rng(0).standard_normal(shape) * 2 + 1
    text = params(variance, across)
    layer = make_layer("MVN", text)
    _, tops = run_forward(layer, xp, [x])
    expected = loop_mvn(x, variance, across, float(np.float32(1e-9)))
    assert tops[0].shape == expected.shape  # Caffe's 4-axis top
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-10, atol=1e-12)
    found = layer.internals()
    assert set(found) == ({"mean", "std"} if variance else {"mean"})
    groups = x.reshape(x.shape[0], -1) if across else x.reshape(x.shape[0] * x.shape[1], -1)
    np.testing.assert_allclose(to_host(found["mean"]).ravel(), groups.mean(axis=1), rtol=1e-12)
    if variance:
        eps = float(np.float32(1e-9))
        np.testing.assert_allclose(to_host(found["std"]).ravel(), groups.std(axis=1) + eps,
                                   rtol=1e-12)
    y = np.random.default_rng(1).standard_normal(shape)
    assert_passed(check_layer(make_layer("MVN", text), [xp.asarray(y)]))


def test_caffes_gradient_with_a_large_eps(xp):
    # With eps = 0.5 Caffe's gradient treats std + eps as the standard deviation:
    # dx = (dy - mean(dy) - y mean(dy y)) / (std + eps), per plane.
    x = np.random.default_rng(2).standard_normal((2, 2, 3, 3))
    dy = np.random.default_rng(3).standard_normal((2, 2, 3, 3))
    layer = make_layer("MVN", params(True, False, 0.5))
    bottoms, tops = run_forward(layer, xp, [x])
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    expected = np.empty_like(x)
    for i in range(2):
        for j in range(2):
            v, g = x[i, j], dy[i, j]
            std = math.sqrt(((v - v.mean()) ** 2).mean()) + 0.5
            y = (v - v.mean()) / std
            expected[i, j] = (g - g.mean() - y * (g * y).mean()) / std
    np.testing.assert_allclose(to_host(bottoms[0].diff), expected, rtol=1e-12)


def test_more_than_four_axes_is_an_error():
    with pytest.raises(BpinspectError, match="1 to 4 axes"):
        make_layer("MVN").setup([(1, 2, 3, 4, 5)])
