"""End-to-end gradient checks: whole nets from nets/, in float64.

For each net, the analytic gradient of a scalar objective (the loss, or
``<R, output>`` for a net without a loss) with respect to a few input
coordinates, from one ``net.backward()``, is compared with central
differences of that objective through the whole forward pass, with Caffe's
rule ``|a - n| <= threshold * max(|a|, |n|, 1)``, and, since these
gradients are often far below 1 where Caffe's rule would hide errors, also
``|a - n| <= rtol * max(|a|, |n|) + atol``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpinspect.backend import CPU, select_device, to_host
from bpinspect.engine.net import Net
from bpinspect.io.prototxt import load_net
from bpinspect.session.gradcheck import numerical_gradient, sample_coords

NETS = Path(__file__).resolve().parents[2] / "nets"
EPS = 1e-6
THRESHOLD = 1e-6
RTOL = 1e-5
ATOL = 1e-9


def device_of(xp):
    return CPU if xp is np else select_device("gpu")


def assert_gradients_match(analytic: np.ndarray, numeric: np.ndarray) -> None:
    """Caffe's rule, and also a relative one: these gradients are often far below 1."""
    analytic = np.asarray(analytic, dtype=np.float64)
    error = np.abs(analytic - numeric)
    caffe_scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1.0)
    assert (error / caffe_scale).max() <= THRESHOLD, (analytic, numeric)
    assert (error <= RTOL * np.maximum(np.abs(analytic), np.abs(numeric)) + ATOL).all(), (
        analytic, numeric,
    )


def check_blob(net: Net, blob: str, analytic, objective, n: int = 8, seed: int = 0) -> None:
    data = net.blobs[blob].data
    coords = sample_coords(tuple(data.shape), n, seed)
    analytic = to_host(analytic)
    numeric = numerical_gradient(objective, data, coords, EPS)
    assert_gradients_match(np.array([analytic[c] for c in coords]), numeric)
    assert np.abs(numeric).max() > 0  # the check is not vacuous


def test_concat_net(xp) -> None:
    net = Net(NETS / "concat.prototxt", dtype=np.float64, device=device_of(xp))
    x = np.random.default_rng(0).standard_normal(net.blobs["data"].shape)
    net.forward(data=x)
    net.clear_param_diffs()
    diffs = net.backward()
    data_diff = to_host(diffs["data"]).copy()
    a_weight_diff = to_host(net.params["A"][0].diff).copy()

    # Seed 000: C cuts its top diff along axis 0, AA's two slices both go to a.
    ab, aa = to_host(net.blobs["ab"].diff), to_host(net.blobs["aa"].diff)
    split = [to_host(net.blobs[f"a_A_0_split_{k}"].diff) for k in range(3)]
    assert net.bottom_names["C"] == ["a_A_0_split_0", "b"]
    assert net.bottom_names["AA"] == ["a_A_0_split_1", "a_A_0_split_2"]
    np.testing.assert_array_equal(split[0], ab[:2])
    np.testing.assert_array_equal(to_host(net.blobs["b"].diff), ab[2:])
    np.testing.assert_array_equal(split[1], aa[:2])
    np.testing.assert_array_equal(split[2], aa[2:])
    np.testing.assert_allclose(to_host(net.blobs["a"].diff), ab[:2] + aa[:2] + aa[2:], rtol=1e-13)

    def loss() -> float:
        net.forward()
        return net.loss

    check_blob(net, "data", data_diff, loss, n=10)
    coords = sample_coords(tuple(net.params["A"][0].shape), 6, 1)
    numeric = numerical_gradient(loss, net.params["A"][0].data, coords, EPS)
    assert_gradients_match(np.array([a_weight_diff[c] for c in coords]), numeric)


def test_lrn_pool_net(xp) -> None:
    net = Net(NETS / "lrn_pool.prototxt", dtype=np.float64, device=device_of(xp))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(net.blobs["data"].shape)
    r = rng.standard_normal(net.blobs["ip"].shape)
    net.forward(data=x)
    diffs = net.backward(ip=r)
    data_diff = to_host(diffs["data"]).copy()
    r_device = net.device.asarray(r, dtype=np.float64)

    def objective() -> float:
        return float(to_host((net.forward()["ip"] * r_device).sum()))

    check_blob(net, "data", data_diff, objective, n=12)


def test_train_softmax_net_in_train_phase() -> None:
    """Dropout draws the same mask on every forward (reset_rng), DummyData is not re-run."""
    param = load_net(NETS / "train_softmax.prototxt")
    param.force_backward = True  # so that data gets a gradient too
    net = Net(param, phase="train", dtype=np.float64)
    drop = net.layers[net.layer_index("drop1")]
    net.forward()  # the data layer fills data and label once

    def loss() -> float:
        drop.reset_rng(7)
        net.forward(start="conv1")
        return net.loss

    loss()
    net.clear_param_diffs()
    net.backward()
    data_diff = to_host(net.blobs["data"].diff).copy()
    w_diff = to_host(net.params["conv1"][0].diff).copy()
    check_blob(net, "data", data_diff, loss)
    coords = sample_coords(tuple(net.params["conv1"][0].shape), 6, 2)
    numeric = numerical_gradient(loss, net.params["conv1"][0].data, coords, EPS)
    assert_gradients_match(np.array([w_diff[c] for c in coords]), numeric)


def test_train_softmax_net_as_written_gives_data_no_gradient() -> None:
    net = Net(NETS / "train_softmax.prototxt", phase="train", dtype=np.float64)
    reason = dict(zip(net.layer_names, net.backward_reason, strict=True))
    assert reason["data"] == "no backward: input layer"
    assert net.bottom_need_backward[net.layer_index("conv1")] == [False]
    assert net.layer_need_backward[net.layer_index("conv1")]
    loss_index = net.layer_index("loss")
    assert net.bottom_need_backward[loss_index] == [True, False]  # no gradient for labels
    net.forward()
    net.backward()
    assert not to_host(net.blobs["data"].diff).any()
    assert to_host(net.params["conv1"][0].diff).any()
