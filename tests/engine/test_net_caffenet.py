"""Seed 003: CaffeNet's deploy net, no loss layer, force_backward: true; a
one-hot top diff at fc8 (class 281) backpropagated to the image gives the
class-score gradient (a saliency map, Simonyan et al. 2013)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.net import Net
from bpinspect.session.gradcheck import numerical_gradient

CAFFENET = Path(__file__).resolve().parents[2] / "nets" / "caffenet.prototxt"
CLASS = 281


@pytest.fixture(scope="module")
def caffenet() -> Net:
    return Net(CAFFENET, seed=0)


def test_structure(caffenet: Net) -> None:
    net = caffenet
    assert net.name == "CaffeNet"
    assert net.force_backward
    assert net.inputs == ["data"]
    assert net.outputs == ["fc8"]
    assert net.blobs["data"].shape == (1, 3, 227, 227)
    assert net.blobs["fc8"].shape == (1, 1000)
    assert net.layer_names[0] == "input"  # the legacy `input:` became an Input layer
    assert not any(layer.type == "Split" for layer in net.layers)
    assert net.layer_need_backward == [False] + [True] * (len(net.layers) - 1)
    assert net.backward_reason[0] == "no backward: input layer"
    assert net.backward_reason[net.layer_index("conv1")] == (
        "needs backward: force_backward: true (without it: no path from its tops to a loss)"
    )
    assert net.bottom_need_backward[net.layer_index("conv1")] == [True]
    assert net.weights_source == "seeded MSRA filler (seed 0): no --weights given"
    assert list(net.params) == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8",
    ]
    assert net.params["conv2"][0].shape == (256, 48, 5, 5)  # group: 2
    assert net.params["fc6"][0].shape == (4096, 9216)


def test_one_hot_backward_to_the_image(caffenet: Net) -> None:
    net = caffenet
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227)).astype(np.float32) * 50
    out = net.forward(data=x)
    assert np.isfinite(to_host(out["fc8"])).all()
    one_hot = np.zeros((1, 1000), dtype=np.float32)
    one_hot[0, CLASS] = 1
    diffs = net.backward(fc8=one_hot)
    saliency = to_host(diffs["data"])
    assert saliency.shape == (1, 3, 227, 227)
    assert np.isfinite(saliency).all()
    assert np.abs(saliency).max() > 0
    assert (saliency != 0).mean() > 0.5

    # Central differences of fc8[281] at 3 coordinates, in float64, with the same weights.
    net64 = Net(CAFFENET, seed=0, dtype=np.float64)
    for name, blobs in net.params.items():
        for b32, b64 in zip(blobs, net64.params[name], strict=True):
            b64.data[...] = b32.data
    net64.forward(data=x.astype(np.float64))
    analytic = to_host(net64.backward(fc8=one_hot.astype(np.float64))["data"]).copy()
    np.testing.assert_allclose(saliency, analytic, rtol=0, atol=1e-3 * np.abs(analytic).max())

    peak = np.unravel_index(np.argmax(np.abs(analytic)), analytic.shape)
    coords = [tuple(int(i) for i in peak), (0, 1, 113, 113), (0, 2, 40, 190)]

    def score() -> float:
        return float(net64.forward(start="conv1")["fc8"][0, CLASS])

    # fc8[281] is about 30 and each forward sums ~1e8 products: with eps 1e-5 on
    # pixels of about 50, central differences are good to about 1e-6 relative.
    numeric = numerical_gradient(score, net64.blobs["data"].data, coords, 1e-5)
    expected = np.array([analytic[c] for c in coords])
    assert np.abs(numeric).min() > 0
    np.testing.assert_allclose(numeric, expected, rtol=1e-5, atol=0)
