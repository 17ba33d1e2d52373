"""Dead and saturated units, against counts made by hand and by loops."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session import units as u
from bpinspect.session.dump import run_pass
from bpinspect.session.session import Session


def test_dead_channels_of_a_convolution_output(xp):
    a = np.abs(np.random.default_rng(0).normal(size=(2, 4, 3, 3))).astype(np.float32) + 0.1
    a[:, 1] = 0  # dead: zero for every item and position
    a[0, 2] = 0  # zero for item 0 only: alive
    a[:, 3, 1, 1] = 0  # one position zero everywhere: alive
    units, flagged, frac, low, high = u.unit_stats(xp.asarray(a), u.DEAD)
    assert (units, flagged) == (4, 1)
    assert frac == pytest.approx((18 + 9 + 2) / a.size) and low == frac and high == 0.0


def test_dead_neurons_of_an_inner_product(xp):
    a = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 0.0]],
                 np.float32)
    row = u.unit_row("relu", "ReLU", "ip", xp.asarray(a))
    assert row.units == 4 and row.flagged == 2 and row.frac_units == 0.5
    assert row.frac_values == pytest.approx(9 / 12) and row.shape == (3, 4)
    assert row.kind == u.DEAD and row.available


def test_leaky_relu_units_never_positive_count_as_dead():
    a = np.array([[-0.1, 1.0], [-0.2, 0.0]], np.float32)
    assert u.unit_stats(a, u.DEAD)[1] == 1


def _loop_saturated(a, lo, hi):
    """Per unit (axis 1), every value below lo + 0.01 or above hi - 0.01: by loops."""
    n, c = a.shape[:2]
    flagged = 0
    sat_values = 0
    for j in range(c):
        all_sat = True
        for i in range(n):
            for v in np.asarray(a[i, j]).reshape(-1):
                s = v < lo + 0.01 or v > hi - 0.01
                sat_values += s
                all_sat = all_sat and s
        flagged += all_sat
    return flagged, sat_values / a.size


@pytest.mark.parametrize("layer_type,lo,hi", [("Sigmoid", 0.0, 1.0), ("TanH", -1.0, 1.0)])
def test_saturated_units(xp, layer_type, lo, hi):
    rng = np.random.default_rng(1)
    x = rng.normal(scale=3.0, size=(3, 5, 2, 2))
    x[:, 0] = 9.0  # saturated high for every item
    x[0, 1], x[1:, 1] = -9.0, 9.0  # low for one item, high for the others: saturated
    x[:, 2] = 0.0  # the middle: not
    a = (1 / (1 + np.exp(-x)) if layer_type == "Sigmoid" else np.tanh(x)).astype(np.float32)
    row = u.unit_row("act", layer_type, "t", xp.asarray(a))
    flagged, frac = _loop_saturated(a, lo, hi)
    assert row.kind == u.SATURATED and row.flagged == flagged and row.flagged >= 2
    assert row.frac_values == pytest.approx(frac)
    assert row.frac_low + row.frac_high == pytest.approx(frac)
    assert row.frac_low == pytest.approx(float((a < lo + 0.01).mean()))


def test_the_thresholds_are_within_one_percent():
    a = np.array([[0.0099, 0.0101, 0.9899, 0.9901]], np.float32).T.reshape(1, 4)
    row = u.unit_row("s", "Sigmoid", "t", a)
    assert row.flagged == 2  # units 0 and 3
    t = np.array([[-0.9901, -0.9899, 0.9899, 0.9901]], np.float32)
    assert u.unit_row("t", "TanH", "t", t).flagged == 2


def test_other_layer_types_are_refused():
    with pytest.raises(BpinspectError, match="ReLU"):
        u.unit_row("c", "Convolution", "c", np.zeros((1, 2)))


NET = """
name: "Units"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 3 dim: 2 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "constant" value: -1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv"
        dropout_param { dropout_ratio: 0.5 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 7 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "sig" type: "Sigmoid" bottom: "ip" top: "sig" }
layer { name: "ip2" type: "InnerProduct" bottom: "sig" top: "ip2"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 3 } } }
layer { name: "tanh" type: "TanH" bottom: "ip2" top: "tanh" }
"""


def _units_session(make_net, phase="train", history_budget=1 << 24):
    net = make_net(NET, phase=phase)
    net.params["conv"][1].data[[0, 3]] = -1e3  # channels 0 and 3 die
    x = np.random.default_rng(2).normal(size=(3, 2, 5, 5))
    return net, Session(net, inputs={"data": x}, history_budget=history_budget)


def test_session_units_over_the_whole_net(make_net):
    net, session = _units_session(make_net)
    rows = u.session_units(session)
    assert [r.layer for r in rows] == ["relu", "sig", "tanh"]
    assert not any(r.available for r in rows) and rows[0].note == "not run yet"
    for _ in range(len(net.layers)):
        session.step()
    rows = u.session_units(session)
    assert all(r.available for r in rows)
    # Independently: the ReLU's top is max(conv, 0), before Dropout scales it.
    w, bias = (to_host(p.data) for p in net.params["conv"])
    x = to_host(session.array("data"))
    conv = np.zeros((3, 6, 3, 3))
    for n in range(3):
        for k in range(6):
            for i in range(3):
                for j in range(3):
                    conv[n, k, i, j] = (x[n, :, i:i + 3, j:j + 3] * w[k]).sum() + bias[k]
    relu = np.maximum(conv, 0)
    dead = sum(1 for k in range(6) if not (relu[:, k] > 0).any())
    assert rows[0].flagged == dead >= 2 and rows[0].units == 6 and rows[0].step == 2
    assert rows[0].frac_values == pytest.approx(float((relu <= 0).mean()))
    sig = to_host(session.array("sig"))
    assert (rows[1].flagged, rows[1].frac_values) == pytest.approx(
        _loop_saturated(sig, 0.0, 1.0))
    th = to_host(session.array("tanh"))
    assert (rows[2].flagged, rows[2].frac_values) == pytest.approx(
        _loop_saturated(th, -1.0, 1.0))
    assert 0 < rows[2].frac_values < 1
    # As of an earlier step, the layers after it have not run.
    early = u.session_units(session, step=3)
    assert [r.available for r in early] == [True, False, False]
    assert early[0] == rows[0]


def test_dump_pass_collects_the_same_rows(make_net):
    _, session = _units_session(make_net, history_budget=0)
    collected: list = []
    run_pass(session, units=collected)
    _, other = _units_session(make_net)
    while not other.at_end:
        other.step()
    assert collected == u.session_units(other)


def test_dead_fraction_per_relu(make_net):
    net, session = _units_session(make_net, phase="test")  # no dropout
    while not session.at_end:
        session.step()
    relu = np.maximum(to_host(session.array("conv")), 0)
    dead = np.mean([not (relu[:, k] > 0).any() for k in range(6)])
    assert u.dead_fraction(net) == {"relu": pytest.approx(dead)} and dead > 0


def test_tracker_records_dead_units_per_iteration():
    import argparse

    from bpinspect.session.layer_cost import CostMeter
    from bpinspect.session.options import training_session_from_options
    from bpinspect.session.train_run import run_iteration

    from .conftest import NETS

    options = argparse.Namespace(solver=str(NETS / "digits_solver.prototxt"), device="cpu",
                                 seed=None, weights=None, snapshot=None, input=[],
                                 top_diff=[], max_memory=None)
    session = training_session_from_options(options, history_budget=1 << 26)
    net = session.net
    tracker = u.UnitTracker(net, lambda: session.iteration)
    tracker.attach()
    meter = CostMeter(net)  # a second wrapper on the same calls
    meter.attach()
    expected = []
    for _ in range(3):
        run_iteration(session, collect=False)
        start = session.iterations.last.iteration  # the iteration just finished
        top = to_host(net.blobs["ip1"].data)  # relu1 in place: its top after the pass
        dead = np.mean([not (top[:, k] > 0).any() for k in range(top.shape[1])])
        expected.append((start, dead))
    xs, ys = tracker.series("relu1")
    assert xs == [k for k, _ in expected]
    assert ys == pytest.approx([d for _, d in expected])
    assert tracker.latest()["relu1"].units == 500
    assert all(c.forward_runs == 3 for c in meter.costs)
    meter.detach()
    tracker.detach()
    assert "forward_layer" not in vars(net) and "backward_layer" not in vars(net)
