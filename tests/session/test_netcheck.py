"""check_net: every layer of a net at its shapes; kinks left out; a wrong backward caught."""

from __future__ import annotations

import numpy as np

from bpinspect.session.netcheck import _coords, check_net

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
