"""The Session: schedule, stepping (back), restart, history, breakpoints, injection,
inspection and export, each checked against values computed independently
(pycaffe-style Net.forward/backward on a second net, or NumPy here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.session import Session

NETS = Path(__file__).resolve().parents[2] / "nets"


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _onehot(shape, c):
    d = np.zeros(shape, np.float32)
    d[:, c] = 1
    return d


def _reference_backward(net, inputs, **diffs):
    """pycaffe: net.forward(**inputs); net.backward(**diffs) on a net of its own."""
    net.forward(**inputs)
    return {k: to_host(v).copy() for k, v in net.backward(**diffs).items()}


def _host(session, blob, kind="data", step=None, param=None):
    a = session.array(blob, kind, step, param)
    return None if a is None else to_host(a).copy()


# ---- schedule -------------------------------------------------------------------


def test_schedule_forward_then_backward(lrn_pool_net):
    s = Session(lrn_pool_net)
    n = len(lrn_pool_net.layers)
    assert len(s.schedule) == 2 * n
    assert [st.layer_name for st in s.schedule[:n]] == lrn_pool_net.layer_names
    assert [st.layer_name for st in s.schedule[n:]] == lrn_pool_net.layer_names[::-1]
    assert all(st.direction == "forward" and not st.skipped for st in s.schedule[:n])
    assert all(st.direction == "backward" for st in s.schedule[n:])
    assert [st.index for st in s.schedule] == list(range(2 * n))
    # The Input layer needs no backward: skipped, visibly, with the net's reason.
    data_bwd = s.step_of("data", "backward")
    assert data_bwd.skipped and data_bwd.reason == lrn_pool_net.backward_reason[0]
    assert s.cursor == 0 and s.next_step == s.schedule[0] and s.last_step is None
    assert s.phase == "forward" and not s.at_end


def test_injection_moves_the_start_of_backward(branchy_net):
    s = Session(branchy_net)
    loss_bwd = s.step_of("loss", "backward")
    assert not loss_bwd.skipped
    s.inject("ip", "onehot:1")
    loss_bwd = s.step_of("loss", "backward")
    assert loss_bwd.skipped and "backward starts at 'ip'" in loss_bwd.reason
    assert "net.backward(ip=...)" in loss_bwd.reason
    assert not s.step_of("ip", "backward").skipped
    s.clear_injection("ip")
    assert not s.step_of("loss", "backward").skipped


# ---- stepping ---------------------------------------------------------------------


def test_whole_pass_equals_pycaffe(lrn_pool_net):
    from bpinspect.engine.net import Net

    x = _x((2, 3, 9, 9))
    s = Session(lrn_pool_net, inputs={"data": x}, injections={"ip": "onehot:3"})
    stop = s.continue_()
    assert stop.reason == "end" and s.at_end and s.phase == "done"
    ref_net = Net(lrn_pool_net.source)
    ref = _reference_backward(ref_net, {"data": x}, ip=_onehot((2, 10), 3))
    np.testing.assert_array_equal(_host(s, "data", "diff"), ref["data"])
    for layer, params in ref_net.params.items():
        for j, p in enumerate(params):
            np.testing.assert_array_equal(_host(s, layer, "diff", param=j), to_host(p.diff))
    np.testing.assert_array_equal(_host(s, "ip"), to_host(ref_net.blobs["ip"].data))


def test_step_runs_one_layer_and_reports_what_it_produced(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    r = s.step()
    assert r.step.layer_name == "data" and r.produced == [("data", "data", None)]
    r = s.step()
    assert r.step.layer_name == "conv1" and r.produced == [("conv1", "data", None)]
    assert s.last_step == r.step and s.cursor == 2 and s.is_done(1) and not s.is_done(2)
    s.run_to("ip", "forward")
    r = s.step()  # first backward step
    assert r.step.direction == "backward" and r.step.layer_name == "ip"
    assert ("pool2", "diff", None) in r.produced
    assert ("ip", "diff", 0) in r.produced and ("ip", "diff", 1) in r.produced
    while s.step() is not None:
        pass
    assert s.at_end and s.step() is None


def test_run_to_includes_the_target_and_goes_back(lrn_pool_net):
    s = Session(lrn_pool_net)
    stop = s.run_to("pool1")
    assert stop.reason == "target" and s.last_step.layer_name == "pool1"
    assert s.next_step.layer_name == "norm1"
    s.run_to("conv1")
    assert s.last_step.layer_name == "conv1" and s.cursor == 2
    stop = s.run_to("conv1", "backward")
    assert s.last_step == s.step_of("conv1", "backward")
    with pytest.raises(BpinspectError, match="unknown layer 'conv9'"):
        s.run_to("conv9")


def test_progress_and_cancel(lrn_pool_net):
    s = Session(lrn_pool_net)
    seen = []
    stop = s.continue_(progress=lambda done, total, step: seen.append((done, total, step.index)))
    runnable = [st for st in s.schedule if not st.skipped]
    assert [d for d, _, _ in seen] == list(range(1, len(runnable) + 1))
    assert all(t == len(runnable) for _, t, _ in seen)
    assert stop.steps_run == len(runnable)
    s.restart()
    calls = []
    stop = s.continue_(cancel=lambda: len(calls.append(1) or calls) > 3)
    assert stop.reason == "cancelled" and stop.steps_run == 3 and s.cursor == 3


# ---- history and in-place layers ----------------------------------------------------


def test_in_place_history_keeps_both_versions(lrn_pool_net):
    from bpinspect.engine.net import Net

    x = _x((2, 3, 9, 9))
    s = Session(lrn_pool_net, inputs={"data": x}, injections={"ip": "randn:seed=2"})
    s.continue_()
    conv_step = s.step_of("conv1", "forward").index
    relu_step = s.step_of("relu1", "forward").index
    ref = Net(lrn_pool_net.source)
    pre_relu = to_host(ref.forward(end="conv1", data=x)["conv1"]).copy()
    assert (pre_relu < 0).any()
    np.testing.assert_array_equal(_host(s, "conv1", step=conv_step), pre_relu)
    np.testing.assert_array_equal(_host(s, "conv1", step=relu_step), np.maximum(pre_relu, 0))
    np.testing.assert_array_equal(_host(s, "conv1"), np.maximum(pre_relu, 0))  # current
    stats = s.stats("conv1", step=conv_step)
    assert stats.min == pytest.approx(float(pre_relu.min()))
    # Backward: the diff of conv1 from pool1 (w.r.t. the ReLU's output), then from relu1.
    pool_bwd = s.step_of("pool1", "backward").index
    relu_bwd = s.step_of("relu1", "backward").index
    g_top = _host(s, "conv1", "diff", step=pool_bwd)
    g_bottom = _host(s, "conv1", "diff", step=relu_bwd)
    np.testing.assert_array_equal(g_bottom, g_top * (pre_relu > 0))
    # Not produced yet at an earlier step: None.
    assert s.stats("conv1", "diff", step=conv_step) is None
    assert s.stats("ip", step=conv_step) is None


def test_values_at_a_step_that_has_not_run(lrn_pool_net):
    s = Session(lrn_pool_net)
    s.step()
    with pytest.raises(BpinspectError, match="has not run yet"):
        s.stats("data", step=5)
    assert s.stats("conv1") is None  # not produced in this pass yet
    assert s.stats("data") is not None
    assert s.stats("conv1", param=0) is not None  # weights are always there
    with pytest.raises(BpinspectError, match="no blob named 'nope'"):
        s.stats("nope")
    with pytest.raises(BpinspectError, match="has no params"):
        s.stats("relu1", param=0)


def test_step_back_restores_recorded_state(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "randn:seed=5"})
    s.continue_()
    final = {b: (_host(s, b), _host(s, b, "diff")) for b in lrn_pool_net.blobs}
    final_params = {layer: [_host(s, layer, "diff", param=j) for j in range(len(p))]
                    for layer, p in lrn_pool_net.params.items()}
    # Back into the backward pass, and out of it into the forward pass, across relu1.
    while s.last_step is not None and s.last_step != s.step_of("relu1", "forward"):
        s.step_back()
    undone = s.step_back()
    assert undone == s.step_of("relu1", "forward") and s.cursor == undone.index
    live = to_host(lrn_pool_net.blobs["conv1"].data)
    assert (live < 0).any()  # conv1 is the conv output again, before the ReLU
    np.testing.assert_array_equal(live, _host(s, "conv1", step=undone.index - 1))
    s.continue_()
    for b, (data, diff) in final.items():
        np.testing.assert_array_equal(_host(s, b), data)
        np.testing.assert_array_equal(_host(s, b, "diff"), diff)
    for layer, diffs in final_params.items():
        for j, d in enumerate(diffs):
            np.testing.assert_array_equal(_host(s, layer, "diff", param=j), d)


def test_step_back_inside_backward_then_forward_again(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.continue_()
    want = _host(s, "data", "diff")
    w_diff = _host(s, "conv1", "diff", param=0)
    s.run_to("norm1", "backward")
    assert s.last_step == s.step_of("norm1", "backward")
    assert s.stats("data", "diff") is None  # not reached yet after going back
    s.continue_()
    np.testing.assert_array_equal(_host(s, "data", "diff"), want)
    np.testing.assert_array_equal(_host(s, "conv1", "diff", param=0), w_diff)  # not doubled
    assert s.step_back() == s.step_of("conv1", "backward")
    assert s.step_back() == s.step_of("relu1", "backward")
    s.goto(0)
    assert s.cursor == 0 and s.last_step is None and s.step_back() is None


def test_restart_keeps_breakpoints_and_repeats_the_pass(branchy_net):
    s = Session(branchy_net)
    s.continue_()
    first = _host(s, "data", "diff")
    mask_view = s.dropout_view("drop")
    s.breakpoints.add("ip", "backward")
    s.restart()
    assert s.cursor == 0 and len(s.history) == 0 and s.last_step is None
    assert s.breakpoints.has("ip", "backward")
    stop = s.continue_()
    assert stop.reason == "breakpoint" and s.next_step == s.step_of("ip", "backward")
    s.continue_()
    # The same inputs, weights and dropout mask: the same gradient.
    np.testing.assert_array_equal(_host(s, "data", "diff"), first)
    np.testing.assert_array_equal(s.dropout_view("drop").plane, mask_view.plane)


def test_history_budget_drops_oldest_and_replays(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"}, history_budget=3000)
    s.continue_()
    assert any("history: dropped" in n for n in s.notes)
    assert s.history.nbytes <= 3000
    want = _host(s, "data", "diff")
    with pytest.raises(BpinspectError, match="dropped from the history"):
        s.stats("conv1", step=s.step_of("conv1", "forward").index)
    s.goto(2)  # needs dropped records: replays from the start
    assert any("replaying" in n for n in s.notes)
    assert s.cursor == 2 and s.last_step.layer_name == "conv1"
    s.continue_()
    np.testing.assert_array_equal(_host(s, "data", "diff"), want)


def test_weights_are_not_copied_into_history(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.continue_()
    recorded = sum(r.nbytes for r in s.history)
    param_data = sum(p.data.nbytes for ps in lrn_pool_net.params.values() for p in ps)
    blobs = sum(b.data.nbytes + b.diff.nbytes for b in lrn_pool_net.blobs.values())
    param_diffs = param_data
    assert recorded <= 2 * blobs + param_diffs  # tops + diffs + param diffs, no weights


# ---- breakpoints ---------------------------------------------------------------------


def test_layer_breakpoints_stop_before_their_step(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.breakpoints.add("norm1", "forward")
    s.breakpoints.add("conv1", "backward")
    stop = s.continue_()
    assert stop.reason == "breakpoint" and stop.hits[0].kind == "layer"
    assert s.next_step == s.step_of("norm1", "forward")
    assert s.last_step == s.step_of("pool1", "forward")
    assert "norm1" in stop.message
    stop = s.continue_()  # runs norm1 (the step it stopped before), then on
    assert s.next_step == s.step_of("conv1", "backward")
    assert stop.hits[0].step.direction == "backward"
    assert s.continue_().reason == "end"
    # run_to stops at a breakpoint on the way unless told to ignore it.
    s.restart()
    stop = s.run_to("ip")
    assert stop.reason == "breakpoint" and s.next_step.layer_name == "norm1"
    stop = s.run_to("ip", ignore_breakpoints=True)
    assert stop.reason == "target" and s.last_step.layer_name == "ip"


def test_nonfinite_from_the_input(lrn_pool_net):
    x = _x((2, 3, 9, 9))
    x[1, 2, 4, 4] = np.nan
    s = Session(lrn_pool_net, inputs={"data": x})
    s.breakpoints.set_condition("nonfinite", True)
    stop = s.continue_()
    assert stop.reason == "condition"
    hit = stop.hits[0]
    assert (hit.kind, hit.blob, hit.what, hit.first_layer) == ("nonfinite", "data", "data", "data")
    assert "1 NaN" in hit.message and "first produced by forward of layer 'data'" in hit.message
    assert s.last_step.layer_name == "data"
    stop = s.continue_()  # conv1 spreads it: still names data as the first producer
    assert stop.hits[0].blob == "conv1" and stop.hits[0].first_layer == "data"


def test_nonfinite_names_the_first_layer_that_produced_it(overflow_net):
    x = np.full((1, 2, 3, 3), 1e15, np.float32)  # 1e30 is still finite, 1e45 is not
    s = Session(overflow_net, inputs={"data": x}, injections={"ip": "ones"})
    s.breakpoints.set_condition("nonfinite", True)
    stop = s.continue_()
    assert stop.reason == "condition" and s.last_step.layer_name == "cube"
    hit = stop.hits[0]
    assert hit.blob == "cube" and hit.first_layer == "cube" and "18 Inf" in hit.message
    cube = s.step_of("cube", "forward").index
    assert f"first produced by forward of layer 'cube' (Eltwise) at step {cube}" in hit.message
    hits = []
    while (stop := s.continue_()).reason == "condition":
        hits += stop.hits
    # Inf - Inf = NaN at "diff" (after Caffe's Split of cube); still first made by "cube".
    nan_hit = next(h for h in hits if h.step.layer_name == "diff")
    assert nan_hit.blob == "zero" and "18 NaN" in nan_hit.message
    assert {h.first_layer for h in hits} == {"cube"}
    assert s.stats("zero", step=nan_hit.step.index).nan == 18


def test_max_abs_condition(lrn_pool_net):
    x = _x((2, 3, 9, 9))
    s = Session(lrn_pool_net, inputs={"data": x})
    bound = float(np.abs(x).max()) + 1.0  # the input stays below it
    s.breakpoints.set_condition("max_abs", True, bound)
    stop = s.continue_()
    assert stop.reason == "condition" and stop.hits[0].kind == "max_abs"
    blob = stop.hits[0].blob
    assert s.stats(blob).max_abs > bound
    # Every step before this one stayed under the bound.
    for st in s.schedule[: s.last_step.index]:
        for top in s.net.top_names[st.layer_name]:
            assert s.stats(top, step=st.index).max_abs <= bound


def test_zero_diff_condition(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "zeros"})
    s.breakpoints.set_condition("zero_diff", True)
    stop = s.continue_()
    assert stop.reason == "condition"
    assert s.last_step == s.step_of("ip", "backward")
    kinds = {(h.blob, h.what) for h in stop.hits}
    assert ("pool2", "diff") in kinds and ("ip#0", "diff") in kinds
    assert all("dead gradient" in h.message for h in stop.hits)
    s2 = Session(lrn_pool_net, injections={"ip": "ones"})
    s2.breakpoints.set_condition("zero_diff", True)
    assert s2.continue_().reason == "end"


# ---- injection -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["onehot:3", "onehot:7@1", "ones", "zeros", "const:0.5",
                                  "randn:seed=0,scale=1", "npy"])
def test_each_spec_gives_pycaffe_gradient(lrn_pool_net, spec, tmp_path):
    from bpinspect.engine.net import Net
    from bpinspect.session.diffspec import parse_spec

    if spec == "npy":
        arr = _x((2, 10), seed=9)
        np.save(tmp_path / "g.npy", arr)
        spec = f"npy:{tmp_path / 'g.npy'}"
    x = _x((2, 3, 9, 9))
    s = Session(lrn_pool_net, inputs={"data": x}, injections={"ip": spec})
    s.continue_()
    diff = parse_spec(spec).build((2, 10))
    ref = _reference_backward(Net(lrn_pool_net.source), {"data": x}, ip=diff)
    np.testing.assert_array_equal(_host(s, "data", "diff"), ref["data"])
    # The injected diff is what the ip blob's diff holds at its backward step.
    np.testing.assert_array_equal(_host(s, "ip", "diff", step=s.step_of("ip", "backward").index),
                                  diff)


def test_loss_layers_are_seeded_with_their_loss_weight(branchy_net):
    s = Session(branchy_net)
    s.run_to("loss", "backward")
    assert s.stats("loss", "diff").min == 1.0 == s.stats("loss", "diff").max
    assert s.stats("ip", "diff").l2 > 0


def test_injection_errors(lrn_pool_net, tmp_path):
    s = Session(lrn_pool_net)
    with pytest.raises(BpinspectError, match="no blob named 'fc8'"):
        s.inject("fc8", "onehot:1")
    with pytest.raises(BpinspectError, match="class 10 is out of range for blob ip"):
        s.inject("ip", "onehot:10")
    with pytest.raises(BpinspectError, match="is not one of"):
        s.inject("ip", "print(1)")
    np.save(tmp_path / "bad.npy", np.zeros((3, 10), np.float32))
    with pytest.raises(BpinspectError, match=r"has shape \(3, 10\), the blob has \(2, 10\)"):
        s.inject("ip", f"npy:{tmp_path / 'bad.npy'}")
    assert s.injections == {}
    with pytest.raises(BpinspectError):
        Session(lrn_pool_net, injections={"ip": "onehot:99"})


def test_inject_during_backward_rewinds_to_its_start(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.run_to("norm1", "backward")
    s.inject("ip", "onehot:2")
    assert s.cursor == len(lrn_pool_net.layers)  # the first backward step
    assert "rewound to the start of the backward pass" in s.notes[-1]
    assert s.stats("pool2", "diff") is None
    s.continue_()
    ref = Session(lrn_pool_net, injections={"ip": "onehot:2"})
    ref_diff = None
    ref.continue_()
    ref_diff = _host(ref, "data", "diff")
    np.testing.assert_array_equal(_host(s, "data", "diff"), ref_diff)


def test_inject_at_an_inner_blob(lrn_pool_net):
    from bpinspect.engine.net import Net

    x = _x((2, 3, 9, 9))
    s = Session(lrn_pool_net, inputs={"data": x}, injections={"norm1": "randn:seed=3"})
    assert s.step_of("pool2", "backward").skipped and s.step_of("ip", "backward").skipped
    s.continue_()
    from bpinspect.session.diffspec import parse_spec

    g = parse_spec("randn:seed=3").build(lrn_pool_net.blobs["norm1"].shape)
    ref = _reference_backward(Net(lrn_pool_net.source), {"data": x}, norm1=g)
    np.testing.assert_array_equal(_host(s, "data", "diff"), ref["data"])


def test_inputs(lrn_pool_net):
    s = Session(lrn_pool_net)
    assert any("no --input given" in n for n in s.notes)
    assert "seeded Gaussian noise" in s.input_sources["data"]
    x = _x((3, 9, 9), seed=4)  # one item: repeated over the batch
    s.set_input("data", x)
    np.testing.assert_array_equal(_host(s, "data"), np.broadcast_to(x, (2, 3, 9, 9)))
    s.set_input("data", _x((5, 3, 9, 9)))  # another batch size: the net is reshaped
    s.continue_()
    assert s.stats("ip").shape == (5, 10)
    with pytest.raises(BpinspectError, match="not an input blob"):
        s.set_input("conv1", x)
    with pytest.raises(BpinspectError, match="does not fit"):
        Session(lrn_pool_net, inputs={"data": np.zeros((2, 3, 8, 8))})


def test_default_labels_are_valid_classes(branchy_net):
    s = Session(branchy_net)
    labels = to_host(s.array("label"))
    assert set(np.unique(labels)) <= set(range(5))
    s.continue_()
    assert np.isfinite(s.stats("loss").mean)


# ---- inspection --------------------------------------------------------------------


def test_stats_and_histogram_match_numpy(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.continue_()
    for blob, kind in (("pool1", "data"), ("norm1", "diff"), ("conv1", "diff")):
        a = _host(s, blob, kind).astype(np.float64)
        st = s.stats(blob, kind)
        assert st.shape == a.shape and st.count == a.size
        assert st.mean == pytest.approx(a.mean(), abs=1e-6)
        assert st.std == pytest.approx(a.std(), rel=1e-5, abs=1e-9)
        assert st.l2 == pytest.approx(np.linalg.norm(a), rel=1e-6)
        assert st.frac_zero == pytest.approx((a == 0).mean())
        h = s.histogram(blob, kind, bins=10, log=True)
        assert h.total == a.size and len(h.counts) == 10 and h.log
        counts, _ = np.histogram(a, bins=10, range=(a.min(), a.max()))
        np.testing.assert_array_equal(h.counts, counts)
    ps = s.stats("conv1", "diff", param=0)
    assert ps.shape == tuple(lrn_pool_net.params["conv1"][0].shape)


def test_layer_info(lrn_pool_net):
    s = Session(lrn_pool_net)
    info = s.layer_info("relu1")
    assert info.bottoms == ["conv1"] and info.tops == ["conv1"] and info.in_place == ["conv1"]
    assert info.params == [] and info.need_backward
    conv = s.layer_info("conv1")
    assert [j for j, _ in conv.params] == [0, 1] and conv.params[0][1] == (8, 3, 3, 3)
    s.run_to("norm1")  # internals exist once the layer ran forward
    assert "argmax" in s.layer_info("pool1").internals
    assert "scale" in s.layer_info("norm1").internals


def test_saliency_and_gradient_flow(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "onehot:3"})
    assert s.saliency() is None
    s.continue_()
    diff = _host(s, "data", "diff")
    np.testing.assert_allclose(s.saliency(n=1), np.abs(diff[1]).max(axis=0))
    assert s.saliency().shape == (9, 9) and s.saliency().dtype == np.float32
    with pytest.raises(BpinspectError, match="outside the batch"):
        s.saliency(n=2)
    rows = s.gradient_flow()
    assert [(r.layer, r.blob) for r in rows][:2] == [("data", "data"), ("conv1", "conv1")]
    by = {(r.layer, r.blob): r for r in rows}
    assert by[("ip", "ip")].diff_l2 == pytest.approx(np.sqrt(2))  # onehot at both items
    assert by[("norm1", "norm1")].data_l2 == pytest.approx(
        np.linalg.norm(_host(s, "norm1").astype(np.float64)), rel=1e-6)
    # in-place relu1: its row shows conv1 after the ReLU and the diff it received
    relu = by[("relu1", "conv1")]
    assert relu.data_l2 == pytest.approx(np.linalg.norm(_host(s, "conv1").astype(np.float64)),
                                         rel=1e-6)
    got = _host(s, "conv1", "diff", step=s.step_of("pool1", "backward").index)
    assert relu.diff_l2 == pytest.approx(np.linalg.norm(got.astype(np.float64)), rel=1e-6)
    s.goto(2)
    early = s.gradient_flow()
    assert early[1].data_l2 is not None and early[1].diff_l2 is None
    assert early[2].data_l2 is None


def _flow(session):
    return [(r.layer, r.blob, r.data_l2, r.diff_l2) for r in session.gradient_flow()]


def test_gradient_flow_remembers_nothing_stale(make_net):
    """The session keeps each norm once its step ran: after a step back, a re-run, an
    injection change, at the seeding of the backward pass, it reads as a fresh session."""
    net_text = (NETS / "lrn_pool.prototxt").read_text()

    def fresh(spec, upto):
        other = Session(make_net(net_text), injections={"ip": spec})
        other.goto(upto)
        return _flow(other)

    s = Session(make_net(net_text), injections={"ip": "onehot:3"})
    first_backward = s.step_of("ip", "backward").index
    for upto in (first_backward, first_backward + 1, len(s.schedule)):
        s.goto(upto)
        assert _flow(s) == fresh("onehot:3", upto)
    s.goto(first_backward - 2)  # back into the forward pass, then forward again
    assert _flow(s) == fresh("onehot:3", first_backward - 2)
    s.goto(len(s.schedule))
    assert _flow(s) == fresh("onehot:3", len(s.schedule))
    s.inject("ip", "onehot:1")
    s.continue_()
    assert _flow(s) == fresh("onehot:1", len(s.schedule))


# ---- internals -------------------------------------------------------------------


def test_lrn_view_is_the_scale_cache(lrn_pool_net):
    s = Session(lrn_pool_net)
    assert s.lrn_view("norm1") is None  # before it ran
    s.run_to("norm1")
    v = s.lrn_view("norm1", n=1, c=2)
    x = _host(s, "pool1").astype(np.float64)
    # k + alpha/n * sum of squares over the 5 channels around c (zero-padded), by hand.
    sq = np.pad(x[1] ** 2, ((2, 2), (0, 0), (0, 0)))
    expected = 1.0 + 0.5 / 5 * sq[2:7].sum(axis=0)
    np.testing.assert_allclose(v.plane, expected, rtol=1e-5)
    assert (v.local_size, v.alpha, v.beta, v.k) == (5, 0.5, 0.75, 1.0)
    assert v.plane.shape == (4, 4) and v.channel_mean.shape == (8,)
    assert v.stats.min >= 1.0
    with pytest.raises(BpinspectError, match="not LRN"):
        s.lrn_view("pool1")
    with pytest.raises(BpinspectError, match="channel 8 is outside"):
        s.lrn_view("norm1", c=8)


def test_pooling_view_and_cell(lrn_pool_net):
    s = Session(lrn_pool_net, injections={"ip": "randn:seed=1"})
    s.continue_()
    x = _host(s, "conv1")
    v = s.pooling_view("pool1", n=0, c=1)
    assert v.method == "MAX" and v.kernel == (3, 3) and v.stride == (2, 2)
    assert v.wins.shape == (9, 9) and v.wins.sum() == 16  # one winner per output cell
    top_diff = _host(s, "pool1", "diff")
    bottom_diff = _host(s, "conv1", "diff", step=s.step_of("pool1", "backward").index)
    routed = np.zeros((9, 9))
    for y in range(4):
        for xx in range(4):
            cell = s.pooling_cell("pool1", 0, 1, y, xx)
            h0, h1, w0, w1 = cell.window
            assert (h0, w0) == (2 * y, 2 * xx) and (h1 - h0, w1 - w0) == (3, 3)
            wy, wx = cell.winner
            assert h0 <= wy < h1 and w0 <= wx < w1
            assert x[0, 1, wy, wx] == x[0, 1, h0:h1, w0:w1].max() == cell.value
            assert cell.top_diff == top_diff[0, 1, y, xx]
            routed[wy, wx] += top_diff[0, 1, y, xx]
    np.testing.assert_allclose(bottom_diff[0, 1], routed, rtol=1e-6)
    np.testing.assert_array_equal(v.wins > 0, routed != 0)  # randn diffs are never 0
    ave = s.pooling_view("pool2")
    assert ave.method == "AVE" and ave.wins is None and ave.pad == (1, 1)
    cell = s.pooling_cell("pool2", 0, 0, 0, 0)
    assert cell.window == (0, 2, 0, 2) and cell.winner is None


def test_concat_view_splits_the_top_diff(branchy_net):
    s = Session(branchy_net)
    s.continue_()
    v = s.concat_view("cat")
    assert v.type == "Concat" and v.axis == 1 and v.whole == "cat"
    assert [(sl.start, sl.end) for sl in v.slices] == [(0, 2), (2, 4)]
    diff = _host(s, "cat", "diff", step=s.step_of("cat", "backward").index - 1)
    for sl in v.slices:
        part = diff[:, sl.start:sl.end]
        assert sl.diff_stats.l2 == pytest.approx(np.linalg.norm(part.astype(np.float64)),
                                                 rel=1e-6)
        assert sl.shape == (2, 2, 4, 4)
    split = next(name for name in branchy_net.layer_names
                 if branchy_net.layers[branchy_net.layer_index(name)].type == "Split")
    sv = s.split_view(split)
    assert sv.bottom == "a/1x1" and len(sv.contributions) == 2
    assert sv.max_abs_mismatch == pytest.approx(0.0, abs=1e-6)
    tops = [_host(s, t, "diff").astype(np.float64) for t in branchy_net.top_names[split]]
    assert sv.sum_stats.l2 == pytest.approx(np.linalg.norm(tops[0] + tops[1]), rel=1e-6)


SLICE_NET = """
name: "SliceNet"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 } } }
layer { name: "cut" type: "Slice" bottom: "data" top: "p" top: "q"
        slice_param { axis: 1 slice_point: 2 } }
layer { name: "ip_p" type: "InnerProduct" bottom: "p" top: "fp"
        inner_product_param { num_output: 3 } }
layer { name: "ip_q" type: "InnerProduct" bottom: "q" top: "fq"
        inner_product_param { num_output: 3 } }
layer { name: "sum" type: "Eltwise" bottom: "fp" bottom: "fq" top: "out" }
"""


def test_slice_view_is_the_bottom_diff_it_assembled(make_net):
    s = Session(make_net(SLICE_NET), injections={"out": "randn:seed=1"})
    assert s.concat_view("cut") is None  # before it ran
    s.continue_()
    v = s.concat_view("cut")
    assert v.type == "Slice" and v.whole == "data" and v.axis == 1
    assert [(sl.blob, sl.start, sl.end, sl.shape) for sl in v.slices] == [
        ("p", 0, 2, (2, 2)), ("q", 2, 6, (2, 4))]
    for sl in v.slices:
        part = _host(s, sl.blob, "diff").astype(np.float64)  # the top diff it got back
        assert sl.diff_stats.l2 == pytest.approx(np.linalg.norm(part), rel=1e-6)
        data = _host(s, "data")[:, sl.start:sl.end].astype(np.float64)
        assert sl.data_stats.mean == pytest.approx(data.mean(), rel=1e-6)


def test_dropout_and_softmax_views(branchy_net):
    s = Session(branchy_net)
    s.continue_()
    d = s.dropout_view("drop", n=1)
    assert d.phase == "train" and d.ratio == 0.5 and d.scale == 2.0
    assert 0.2 < d.kept_fraction < 0.8 and d.plane.shape == (4, 16)
    assert set(np.unique(d.plane)) == {0.0, 1.0}  # the mask itself; the scale is apart
    sm = s.softmax_view("loss", k=3)
    assert len(sm.top) == 2 and len(sm.top[0]) == 3
    probs = [p for _, p in sm.top[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


# ---- export ------------------------------------------------------------------------


def test_export_names_and_manifest(branchy_net, tmp_path):
    s = Session(branchy_net, export_dir=str(tmp_path))
    s.run_to("conv/a")
    paths = s.export("a/1x1", "data")
    assert [p.name for p in paths] == ["step0002-forward-conv%2Fa-a%2F1x1.data.npy"]
    np.testing.assert_array_equal(np.load(paths[0], allow_pickle=False), _host(s, "a/1x1"))
    s.continue_()
    (tmp_path / "all").mkdir()
    paths = s.export_all(directory=str(tmp_path / "all"))
    names = {p.name for p in paths}
    assert "step0002-forward-conv%2Fa-a%2F1x1.data.npy" in names
    assert any(n.endswith("-conv%2Fa.param0.diff.npy") for n in names)
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    entries = {e["file"]: e for e in manifest["files"]}
    assert set(entries) == names
    e = entries["step0002-forward-conv%2Fa-a%2F1x1.data.npy"]
    assert (e["blob"], e["layer"], e["step"], e["kind"], e["dtype"]) == (
        "a/1x1", "conv/a", 2, "data", "float32")
    assert e["shape"] == [2, 2, 4, 4]
    for p in paths:
        np.load(p, allow_pickle=False)
    with pytest.raises(BpinspectError, match="exists already"):
        s.export_all(directory=str(tmp_path / "all"))


def test_export_at_an_earlier_step_and_errors(lrn_pool_net, tmp_path):
    s = Session(lrn_pool_net, injections={"ip": "ones"})
    s.continue_()
    conv_step = s.step_of("conv1", "forward").index
    paths = s.export("conv1", "data", step=conv_step, directory=str(tmp_path))
    pre = np.load(paths[0], allow_pickle=False)
    assert (pre < 0).any()  # the version before the in-place ReLU
    assert paths[0].name == f"step{conv_step:04d}-forward-conv1-conv1.data.npy"
    with pytest.raises(BpinspectError, match="does not exist"):
        s.export("conv1", directory=str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
    with pytest.raises(BpinspectError, match="no diff yet"):
        s.export("conv1", "diff", step=conv_step, directory=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([paths[0].name, "manifest.json"])


@pytest.mark.slow
def test_default_history_budget_holds_a_caffenet_pass_at_batch_16():
    from bpinspect.engine.net import Net
    from bpinspect.session.history import DEFAULT_BUDGET

    net = Net(NETS / "caffenet.prototxt")
    s = Session(net, injections={"fc8": "onehot:281"})
    s.set_input("data", _x((16, 3, 227, 227)) * 50)
    s.continue_()
    assert s.at_end and not any("history: dropped" in n for n in s.notes)
    weights = sum(p.data.nbytes for ps in net.params.values() for p in ps)
    assert s.history.nbytes < DEFAULT_BUDGET / 2
    assert s.history.nbytes < 2 * weights  # tops, diffs and param diffs, not weights
    # Every step is still there: the first conv output, before relu1 overwrote it.
    assert s.stats("conv1", step=s.step_of("conv1", "forward").index).min < 0


def test_googlenet_names_are_percent_encoded(tmp_path):
    from bpinspect.engine.net import Net

    net = Net(Path(__file__).resolve().parents[1] / "data" / "bvlc" /
              "bvlc_googlenet.deploy.prototxt")
    s = Session(net, export_dir=str(tmp_path))
    s.run_to("conv1/relu_7x7")
    paths = s.export_all(kinds=("data",))
    names = sorted(p.name for p in paths)
    assert "step0002-forward-conv1%2Frelu_7x7-conv1%2F7x7_s2.data.npy" in names
    assert all("/" not in n for n in names)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    blobs = {e["blob"] for e in manifest["files"]}
    assert blobs == {"data", "conv1/7x7_s2"}
    for p in paths:
        np.load(p, allow_pickle=False)


def test_softmax_view_of_a_softmax_layer():
    from bpinspect.engine.net import Net

    s = Session(Net(NETS / "train_softmax.prototxt", phase="test"))
    assert s.softmax_view("prob") is None
    s.run_to("prob")
    logits = _host(s, "ip2").astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    view = s.softmax_view("prob", k=5)
    for item, top in enumerate(view.top):
        assert [c for c, _ in top] == list(np.argsort(-p[item]))
        np.testing.assert_allclose([q for _, q in top], np.sort(p[item])[::-1], rtol=1e-5)


# ---- params that a forward step writes (BatchNorm's running statistics) -----------

BN_TRAIN_NET = """
name: "bn" force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
        batch_norm_param { moving_average_fraction: 0.9 } }
layer { name: "ip" type: "InnerProduct" bottom: "bn" top: "ip"
        inner_product_param { num_output: 2 } }
"""


def test_batchnorm_running_stats_are_those_of_one_pass(make_net):
    """Caffe's one TRAIN forward from zeroed statistics gives factor 1, mean_blob = the
    batch mean, var_blob = m/(m-1) * the batch variance; a restart, a step back and a
    replay must not apply the update a second time."""
    x = _x((2, 3, 2, 2), seed=5).astype(np.float64)
    net = make_net(BN_TRAIN_NET, phase="train", dtype=np.float64)
    s = Session(net, inputs={"data": x}, injections={"ip": "ones"})
    mu = x.mean(axis=(0, 2, 3))
    m = x.size // 3
    var = x.var(axis=(0, 2, 3)) * m / (m - 1)

    def check_one_pass():
        np.testing.assert_allclose(_host(s, "bn", param=0), mu, rtol=1e-12)
        np.testing.assert_allclose(_host(s, "bn", param=1), var, rtol=1e-12)
        np.testing.assert_array_equal(_host(s, "bn", param=2), [1.0])

    s.continue_()
    check_one_pass()
    s.goto(1)  # before bn's forward: the statistics as they were before the pass
    np.testing.assert_array_equal(_host(s, "bn", param=0), np.zeros(3))
    np.testing.assert_array_equal(to_host(net.params["bn"][2].data), [0.0])
    s.continue_()
    check_one_pass()
    s.restart()
    s.continue_()
    check_one_pass()
    # Looking back at the step before bn's forward from the end of the pass.
    np.testing.assert_array_equal(_host(s, "bn", step=0, param=2), [0.0])
