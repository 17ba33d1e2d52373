"""Per-layer cost: memory counted independently from the shapes; the timings' structure
(never their values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.session import layer_cost as lc
from bpinspect.session.session import Session

from .conftest import BRANCHY_NET


def _expected_memory(net):
    """Per layer: (data + diff) of tops not also bottoms, and of params not seen before."""
    out = {}
    seen = set()
    for name in net.layer_names:
        tops = [t for t in net.top_names[name] if t not in net.bottom_names[name]]
        top = sum(2 * math.prod(net.blobs[t].shape) * net.dtype.itemsize for t in tops)
        par = 0
        for p in net.params.get(name, []):
            if id(p) not in seen:
                seen.add(id(p))
                par += 2 * math.prod(p.shape) * net.dtype.itemsize
        out[name] = (top, par)
    return out


def test_memory_per_layer(lrn_pool_net):
    costs = lc.layer_costs(lrn_pool_net)
    assert [c.name for c in costs] == lrn_pool_net.layer_names
    assert {c.name: (c.top_bytes, c.param_bytes) for c in costs} == \
        _expected_memory(lrn_pool_net)
    by = {c.name: c for c in costs}
    assert by["relu1"].in_place == ("conv1",) and by["relu1"].top_bytes == 0
    assert by["conv1"].top_bytes == 2 * 2 * 8 * 9 * 9 * 4  # data + diff of 2x8x9x9 floats
    assert by["conv1"].param_bytes == 2 * (8 * 3 * 3 * 3 + 8) * 4
    assert by["data"].need_backward is False


def test_time_net_reports_every_layer(make_net):
    net = make_net(BRANCHY_NET)
    Session(net)  # sets the inputs
    report = lc.time_net(net, iterations=3, warmup=1)
    assert report.iterations == 3 and len(report.iteration_ms) == 3
    assert [c.name for c in report.layers] == net.layer_names
    for c in report.layers:
        assert c.forward_runs == 3 and c.forward_mean_ms >= 0 and c.forward_ms >= 0
        assert c.backward_runs == 3 and c.backward_mean_ms >= 0
    fwd = sum(c.forward_mean_ms for c in report.layers)
    bwd = sum(c.backward_mean_ms for c in report.layers)
    assert report.forward_ms == pytest.approx(fwd)
    assert report.backward_ms == pytest.approx(bwd)
    assert report.total_ms >= sum(report.iteration_ms) * 0.999
    assert report.forward_backward_ms == pytest.approx(report.total_ms / 3)
    assert report.top_bytes == sum(t for t, _ in _expected_memory(net).values())
    assert np.isfinite(report.initial_loss)


def test_time_net_leaves_values_a_pass_computes(lrn_pool_net):
    from bpinspect.backend import to_host

    session = Session(lrn_pool_net)
    x = to_host(session.array("data")).copy()
    lc.time_net(lrn_pool_net, iterations=1, warmup=0)
    np.testing.assert_array_equal(to_host(lrn_pool_net.blobs["data"].data), x)
    ref = lrn_pool_net.forward(data=x)["ip"]
    np.testing.assert_allclose(to_host(lrn_pool_net.blobs["ip"].data), to_host(ref))


def test_cancel_and_bad_counts(lrn_pool_net):
    Session(lrn_pool_net)
    calls = []
    report = lc.time_net(lrn_pool_net, iterations=5, warmup=0,
                         cancel=lambda: len(calls) >= 2, progress=lambda d, n: calls.append(d))
    assert report.iterations == 2 and calls == [1, 2]
    with pytest.raises(BpinspectError, match="iterations"):
        lc.time_net(lrn_pool_net, iterations=0)
    with pytest.raises(BpinspectError, match="warmup"):
        lc.time_net(lrn_pool_net, warmup=-1)


def test_meter_attached_to_a_session(lrn_pool_net):
    net = lrn_pool_net
    session = Session(net, injections={"ip": "onehot:3"})
    meter = lc.CostMeter(net)
    meter.attach()
    meter.attach()  # twice is once
    for _ in range(3):
        session.step()
    assert [c.forward_ms is not None for c in meter.costs] == [True] * 3 + [False] * 4
    while not session.at_end:
        session.step()
    assert all(c.forward_runs == 1 for c in meter.costs)
    assert all(c.backward_runs == 1 for c in meter.costs if c.need_backward)
    assert meter.cost("data").backward_ms is None  # an input layer: no backward step
    meter.detach()
    assert "forward_layer" not in vars(net) and "backward_layer" not in vars(net)
    session.restart()
    session.step()
    assert meter.cost("data").forward_runs == 1  # not timed any more
    meter.forward(1)
    assert meter.cost("conv1").forward_runs == 2
    meter.reset()
    assert all(c.forward_ms is None and c.forward_runs == 0 for c in meter.costs)
    assert meter.cost("conv1").param_bytes > 0
