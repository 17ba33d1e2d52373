"""check_net: every layer of a net at its shapes; kinks left out; a wrong backward caught."""

from __future__ import annotations

import numpy as np

from bpinspect.session.netcheck import _coords, check_layer_in_net, check_net

RELU_NET = """
name: "ReluSigmoid"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 6 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "sig" type: "Sigmoid" bottom: "ip" top: "sig" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sig" bottom: "label" top: "loss" }
"""


def _set_inputs(net, x):
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = 2


def test_every_layer_passes_and_inputs_are_skipped(make_net):
    net = make_net(RELU_NET)
    _set_inputs(net, np.random.default_rng(0).standard_normal((1, 2, 4)))
    results = {r.layer: r for r in check_net(net, max_coords=5)}
    assert list(results) == net.layer_names
    assert results["data"].note == "no bottoms or params" and results["data"].passed
    ip = results["ip"]
    assert [r.what for r in ip.results] == ["bottom[0]", "param[0]", "param[1]"]
    assert ip.passed and ip.checked == 5 + 5 + 5 and ip.max_rel_error < 1e-6
    loss = results["loss"]
    assert [r.what for r in loss.results] == ["bottom[0]"]  # no gradient to the labels
    assert all(r.passed for r in results.values())


def test_relu_at_zero_is_a_kink_not_a_failure(make_net):
    net = make_net(RELU_NET)
    _set_inputs(net, np.zeros((1, 2, 4)))  # ip = bias = 0: every ReLU input sits on the kink
    relu = next(r for r in check_net(net, max_coords=6) if r.layer == "relu")
    assert relu.kinks == 6 and relu.results[0].checked == 0 and relu.passed


def test_a_wrong_backward_fails(make_net, monkeypatch):
    from bpinspect.layers.registry import layer_class

    sigmoid = layer_class("Sigmoid")
    real = sigmoid.backward

    def off_by_ten_percent(self, top, propagate_down, bottom):
        real(self, top, propagate_down, bottom)
        bottom[0].diff = bottom[0].diff * 1.1

    monkeypatch.setattr(sigmoid, "backward", off_by_ten_percent)
    net = make_net(RELU_NET)
    _set_inputs(net, np.random.default_rng(1).standard_normal((1, 2, 4)))
    results = {r.layer: r for r in check_net(net, max_coords=4)}
    assert not results["sig"].passed
    assert results["sig"].max_rel_error > 0.01  # 10 % of diffs below 1, in Caffe's measure
    assert results["ip"].passed and results["loss"].passed


POOL_NET = """
name: "Pool"
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 4 dim: 8 dim: 8 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def test_sparse_gradients_are_checked_where_they_are_not_zero(make_net, monkeypatch):
    # 1 input in 4 wins a window: uniform sampling alone would mostly see zeros.
    from bpinspect.layers.registry import layer_class

    net = make_net(POOL_NET)
    net.blobs["data"].data[...] = np.random.default_rng(2).standard_normal((2, 4, 8, 8))
    (_, pool) = check_net(net, max_coords=4)
    assert pool.passed
    sparse = np.zeros((2, 4, 8, 8))
    sparse[0, 1, ::2, ::2] = 1.0
    picked = _coords(sparse, 4, seed=0)
    assert len(picked) >= 3 and sum(sparse[c] != 0 for c in picked) >= 2

    pooling = layer_class("Pooling")
    real = pooling.backward

    def halved(self, top, propagate_down, bottom):
        real(self, top, propagate_down, bottom)
        bottom[0].diff = bottom[0].diff * 0.5

    monkeypatch.setattr(pooling, "backward", halved)
    net = make_net(POOL_NET)
    net.blobs["data"].data[...] = np.random.default_rng(2).standard_normal((2, 4, 8, 8))
    (_, pool) = check_net(net, max_coords=4)
    assert not pool.passed


def test_every_sampled_coordinate_is_kept_with_its_analytic_and_numeric_value(make_net):
    net = make_net(RELU_NET)
    _set_inputs(net, np.random.default_rng(3).standard_normal((1, 2, 4)))
    ip = {r.layer: r for r in check_net(net, max_coords=5)}["ip"]
    bottom, weights, bias = ip.results
    # The objective is <top, R> with R drawn from the layer's seed (0 + its index 2):
    # an InnerProduct's gradients are then R @ W, R^T x and R, worked out by hand here.
    r = np.random.default_rng(2).standard_normal((1, 6))
    w = net.params["ip"][0].data.astype(np.float64)
    x = net.blobs["data"].data.reshape(1, 8).astype(np.float64)
    expected = {"bottom[0]": (r @ w).reshape(1, 2, 4), "param[0]": r.T @ x, "param[1]": r[0]}
    for result in (bottom, weights, bias):
        assert len(result.coords) == result.checked == 5
        want = [expected[result.what][c] for c in result.coords]
        np.testing.assert_allclose(result.analytic, want, rtol=1e-10)
        np.testing.assert_allclose(result.numeric, want, rtol=1e-6, atol=1e-8)
        a, n = np.array(result.analytic), np.array(result.numeric)
        rel = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), 1.0)
        np.testing.assert_allclose(result.rel_errors, rel)
        assert max(result.rel_errors) == result.max_rel_error
        assert all(result.coord_passed(k) for k in range(5))


def test_cancel_stops_between_coordinates_and_keeps_what_was_checked(make_net):
    net = make_net(RELU_NET)
    _set_inputs(net, np.random.default_rng(3).standard_normal((1, 2, 4)))
    for i in range(2):
        net.forward_layer(i)
    asked = []

    def cancel_after_seven() -> bool:
        asked.append(1)
        return len(asked) > 7

    check = check_layer_in_net(net, 2, max_coords=5, cancel=cancel_after_seven)
    assert check.cancelled
    # 5 coordinates of the bottom, 2 of the weights, nothing of the bias.
    assert [(r.what, r.checked) for r in check.results] == [("bottom[0]", 5), ("param[0]", 2)]
    assert len(asked) == 8
    whole = check_layer_in_net(net, 2, max_coords=5, cancel=lambda: False)
    assert not whole.cancelled and [r.what for r in whole.results] == [
        "bottom[0]", "param[0]", "param[1]"]
    assert whole.results[0] == check.results[0]


def test_check_net_stops_at_the_cancelled_layer(make_net):
    net = make_net(RELU_NET)
    _set_inputs(net, np.random.default_rng(3).standard_normal((1, 2, 4)))
    asked = []

    def cancel_in_the_third_layer() -> bool:
        asked.append(1)
        return len(asked) > 2  # asked once before data, once before label, then in ip

    results = check_net(net, max_coords=5, cancel=cancel_in_the_third_layer)
    assert [r.layer for r in results] == ["data", "label"]
