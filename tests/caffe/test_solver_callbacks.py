"""Solver.add_callback as pycaffe's: on_start before each iteration's forward (after the
tests due), on_gradients after its backward and before the update; what a callback
does to the diffs is what the update applies; step and solve both call them."""

from __future__ import annotations

import numpy as np
import pytest

import bpinspect.caffe as caffe
from bpinspect.errors import BpinspectError

TRAIN_NET = """name: 'reg' force_backward: true
layer { name: 'data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'gaussian' std: 1 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 0.3 } } }
layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""
LR = 0.1


def make_solver(tmp_path, extra=""):
    (tmp_path / "train.prototxt").write_text(TRAIN_NET)
    (tmp_path / "solver.prototxt").write_text(
        f"train_net: 'train.prototxt'\nbase_lr: {LR}\nlr_policy: 'fixed'\nmax_iter: 3\n"
        f"momentum: 0\nweight_decay: 0\nsnapshot_prefix: '{tmp_path}/snap'\n"
        "random_seed: 1\n" + extra)
    return caffe.get_solver(str(tmp_path / "solver.prototxt"))


def gradient_by_hand(net):
    """d/dW and d/db of 1/(2N) |W x + b - y|^2 at the net's current blobs and params."""
    x, y = net.blobs["data"].data.astype(np.float64), net.blobs["label"].data
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    residual = x @ w.T + b - y
    return residual.T @ x / len(x), residual.sum(0) / len(x)


def test_on_start_runs_before_the_forward_and_on_gradients_before_the_update(tmp_path):
    solver = make_solver(tmp_path)
    net = solver.net
    seen = []

    def on_start():
        weight = net.params["ip"][0]
        seen.append(("start", solver.iter, weight.data.copy(), weight.diff.copy(),
                     net.blobs["data"].data.copy()))

    def on_gradients():
        weight = net.params["ip"][0]
        seen.append(("gradients", solver.iter, weight.data.copy(), weight.diff.copy(),
                     gradient_by_hand(net)[0]))

    solver.add_callback(on_start, on_gradients)
    first_weights = net.params["ip"][0].data.copy()
    solver.step(2)
    assert [(kind, it) for kind, it, *_ in seen] == [
        ("start", 0, ), ("gradients", 0), ("start", 1), ("gradients", 1)]
    for start, gradients in ((seen[0], seen[1]), (seen[2], seen[3])):
        _, _, start_w, start_diff, start_data = start
        _, _, grad_w, grad_diff, by_hand = gradients
        assert not start_diff.any()  # the diffs were cleared, nothing computed yet
        np.testing.assert_array_equal(grad_w, start_w)  # no update before on_gradients
        np.testing.assert_allclose(grad_diff, by_hand, rtol=1e-4, atol=1e-7)  # backward done
    np.testing.assert_array_equal(seen[0][2], first_weights)
    # the forward after on_start read a new batch (DummyData refills its gaussian)
    assert not np.array_equal(seen[0][4], net.blobs["data"].data)
    # iteration 1 began from iteration 0's update: data - lr * gradient
    np.testing.assert_allclose(seen[2][2], seen[1][2] - LR * seen[1][3], rtol=1e-5, atol=1e-7)
    assert solver.iter == 2


def test_a_change_to_the_diffs_in_on_gradients_is_what_the_update_applies(tmp_path):
    solver = make_solver(tmp_path)
    weight, bias = solver.net.params["ip"]

    def on_gradients():
        weight.diff[...] = 0.5  # replace the gradient
        bias.diff[...] *= 2    # scale it

    held = {}

    def on_start():
        held["w"], held["b"] = weight.data.copy(), bias.data.copy()

    solver.add_callback(on_start, on_gradients)
    solver.step(1)
    np.testing.assert_allclose(weight.data, held["w"] - LR * 0.5, rtol=1e-6)
    _, bias_gradient = gradient_by_hand_before_update(solver, held)
    np.testing.assert_allclose(bias.data, held["b"] - LR * 2 * bias_gradient, rtol=1e-4,
                               atol=1e-7)


def gradient_by_hand_before_update(solver, held):
    """The gradient at the weights the iteration began with (the batch is still there)."""
    net = solver.net
    x, y = net.blobs["data"].data.astype(np.float64), net.blobs["label"].data
    residual = x @ held["w"].T + held["b"] - y
    return residual.T @ x / len(x), residual.sum(0) / len(x)


def test_a_change_to_the_weights_in_on_start_is_what_the_forward_uses(tmp_path):
    solver = make_solver(tmp_path)
    net = solver.net
    weight, bias = net.params["ip"]
    seen = {}

    def on_start():
        weight.data[...] = 0

    def on_gradients():  # before the update: the bias is still the forward's
        seen.update(ip=net.blobs["ip"].data.copy(), diff=weight.diff.copy(),
                    b=bias.data.copy(), x=net.blobs["data"].data.copy(),
                    y=net.blobs["label"].data.copy())

    solver.add_callback(on_start, on_gradients)
    solver.step(1)
    # with W = 0 the forward gives the bias alone, and the gradient is taken at W = 0
    np.testing.assert_allclose(seen["ip"], np.broadcast_to(seen["b"], (4, 2)), atol=1e-7)
    np.testing.assert_allclose(seen["diff"], (seen["b"] - seen["y"]).T @ seen["x"] / 4,
                               rtol=1e-4, atol=1e-7)


def test_callbacks_run_in_the_order_added_after_the_tests_due(tmp_path, monkeypatch):
    (tmp_path / "test.prototxt").write_text(TRAIN_NET)
    solver = make_solver(tmp_path, "test_net: 'test.prototxt'\ntest_iter: 1\n"
                                   "test_interval: 2\ntest_initialization: true\n")
    events = []
    run_tests = solver.engine.test_all
    monkeypatch.setattr(solver.engine, "test_all",
                        lambda: (events.append(("test", solver.iter)), run_tests())[1])
    solver.add_callback(lambda: events.append(("a start", solver.iter)),
                        lambda: events.append(("a gradients", solver.iter)))
    solver.add_callback(lambda: events.append(("b start", solver.iter)),
                        lambda: events.append(("b gradients", solver.iter)))
    solver.step(3)
    one = ["a start", "b start", "a gradients", "b gradients"]
    assert events == [("test", 0)] + [(e, 0) for e in one] + [(e, 1) for e in one] + \
        [("test", 2)] + [(e, 2) for e in one]


def test_iter_size_calls_each_callback_once_per_iteration(tmp_path):
    solver = make_solver(tmp_path, "iter_size: 3\n")
    forwards = []
    engine = solver.engine
    counted = engine.forward_backward
    engine.forward_backward = lambda: (forwards.append(engine.iter), counted())[1]
    calls = []
    solver.add_callback(lambda: calls.append(("start", len(forwards))),
                        lambda: calls.append(("gradients", len(forwards))))
    solver.step(2)
    assert calls == [("start", 0), ("gradients", 3), ("start", 3), ("gradients", 6)]


def test_solve_calls_the_callbacks_every_iteration(tmp_path):
    solver = make_solver(tmp_path)
    calls = []
    solver.add_callback(lambda: calls.append(solver.iter), lambda: None)
    solver.solve()
    assert calls == [0, 1, 2] and solver.iter == 3
    assert (tmp_path / "snap_iter_3.caffemodel").is_file()  # the rest of Solve ran too
    assert "step" not in vars(solver.engine)  # the engine's own step is back


def test_step_without_callbacks_is_the_engines(tmp_path):
    plain, hooked = make_solver(tmp_path), make_solver(tmp_path)
    hooked.add_callback(lambda: None, lambda: None)
    plain.step(3)
    hooked.step(3)
    np.testing.assert_array_equal(plain.net.params["ip"][0].data,
                                  hooked.net.params["ip"][0].data)
    assert plain.smoothed_loss == pytest.approx(hooked.smoothed_loss, rel=1e-6)


def test_a_callback_that_is_not_a_function_is_one_line(tmp_path):
    solver = make_solver(tmp_path)
    with pytest.raises(BpinspectError, match="on_gradients is a int, not a function"):
        solver.add_callback(lambda: None, 3)


def test_host_copies_as_on_a_gpu_reach_the_net_and_are_fresh_in_each_callback(tmp_path):
    """On a GPU the callbacks see host copies of the arrays (pycaffe's NumPy view): their
    writes must reach the device before the forward and the update, and each callback
    must see what the part before it computed. Exercised with the CPU's arrays."""
    solver = make_solver(tmp_path)
    solver.net._staging.active = True
    weight = solver.net.params["ip"][0]
    device_weight = solver.engine.net.params["ip"][0]
    seen = {}

    def on_start():
        seen["start diff"] = weight.diff.copy()  # a host copy of the cleared diff
        weight.data[...] = 0                    # written to a host copy

    def on_gradients():
        seen["diff"] = weight.diff.copy()        # the backward's, not the copy above
        seen["ip"] = solver.net.blobs["ip"].data.copy()
        seen["bias"] = solver.net.params["ip"][1].data.copy()
        weight.diff[...] = 0.5

    solver.add_callback(on_start, on_gradients)
    solver.step(1)
    assert not seen["start diff"].any() and seen["diff"].any()
    np.testing.assert_allclose(seen["ip"], np.broadcast_to(seen["bias"], (4, 2)), atol=1e-7)
    np.testing.assert_allclose(device_weight.data, -LR * 0.5, rtol=1e-6)  # 0 - lr * 0.5
