"""What the worker gathers for the screen: rows, the layer's blobs as it saw them, tabs."""

from __future__ import annotations

import math

import numpy as np

from bpinspect.session.internals_view import LRNView, PoolingView
from bpinspect.tui.view_data import (
    TAB_FLOW,
    TAB_LRN,
    TAB_POOLING,
    TAB_SALIENCY,
    StatsCache,
    ViewRequest,
    effective_tab,
    gather,
    layer_panel,
    layer_rows,
)


def _entry(panel, role, name):
    return next(e for e in panel.entries if e.role == role and e.name == name)


def test_rows_mark_done_current_breakpoints_and_no_backward(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.breakpoints.add("norm1", "backward")
    for _ in range(4):  # data, conv1, relu1, pool1
        s.step()
    rows = {r.name: r for r in layer_rows(s)}
    assert [r.name for r in layer_rows(s)] == s.net.layer_names
    assert rows["pool1"].forward_done and not rows["norm1"].forward_done
    assert rows["norm1"].current == "forward" and rows["pool1"].current is None
    assert rows["norm1"].breakpoint == "backward" and rows["conv1"].breakpoint is None
    assert rows["data"].backward_skipped and "input" in rows["data"].backward_reason
    assert not rows["conv1"].backward_skipped


def test_an_in_place_layer_shows_both_sides_of_its_work(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.continue_()
    panel = layer_panel(s, "relu1", ViewRequest(layer="relu1"), StatsCache())
    bottom, top = _entry(panel, "bottom", "conv1"), _entry(panel, "top", "conv1")
    assert bottom.in_place and top.in_place
    relu_fwd = s.step_of("relu1", "forward").index
    assert (bottom.data_step, top.data_step) == (relu_fwd - 1, relu_fwd)
    before = s.array("conv1", "data", step=relu_fwd - 1)
    after = s.array("conv1", "data", step=relu_fwd)
    assert bottom.data.min == float(before.min()) < 0  # the convolution's output
    assert top.data.min == 0.0 == float(after.min())  # after the ReLU
    relu_bwd = s.step_of("relu1", "backward").index
    assert (top.diff_step, bottom.diff_step) == (relu_bwd - 1, relu_bwd)
    # ReLU's backward zeroes the diff where the input was negative: more zeros below.
    assert bottom.diff.frac_zero > top.diff.frac_zero


def test_the_injected_top_diff_is_shown_at_the_layer_that_received_it(lrn_pool_session):
    s = lrn_pool_session
    s.continue_()
    panel = layer_panel(s, "ip", ViewRequest(layer="ip"), StatsCache())
    top = _entry(panel, "top", "ip")
    # onehot:3 for each of the 2 items: two ones among 2 x 10 values.
    assert top.diff.max == 1.0 and top.diff.min == 0.0
    assert math.isclose(top.diff.l2, math.sqrt(2))
    assert math.isclose(top.diff.frac_zero, 18 / 20)
    params = [e for e in panel.entries if e.role == "param"]
    assert [e.param for e in params] == [0, 1]
    assert params[0].data_step is None and params[0].diff is not None


def test_values_not_reached_yet_are_missing_not_stale(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.step()  # data
    panel = layer_panel(s, "pool1", ViewRequest(layer="pool1"), StatsCache())
    top = _entry(panel, "top", "pool1")
    assert top.data is None and top.diff is None
    assert not panel.forward_done and panel.data_hist is None


def test_the_blob_shown_first_follows_the_step_direction(lrn_pool_session) -> None:
    s = lrn_pool_session
    for _ in range(3):
        s.step()
    cache = StatsCache()
    panel = layer_panel(s, "relu1", ViewRequest(layer="relu1"), cache, moved="forward")
    assert panel.selected_entry.role == "top"
    s.continue_()
    panel = layer_panel(s, "pool2", ViewRequest(layer="pool2"), cache, moved="backward")
    assert panel.selected_entry.role == "bottom"
    assert panel.diff_hist is not None and panel.diff_hist.total == 2 * 8 * 4 * 4  # norm1
    chosen = layer_panel(s, "pool2", ViewRequest(layer="pool2", blob=("pool2", None)), cache)
    assert chosen.selected_entry.name == "pool2" and chosen.selected_entry.role == "top"


def test_histogram_bins_follow_the_request(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.continue_()
    panel = layer_panel(s, "conv1", ViewRequest(layer="conv1", blob=("conv1", 0), bins=17),
                        StatsCache())
    assert panel.selected_entry.ref == ("conv1", 0)
    assert len(panel.data_hist.counts) == 17 and panel.data_hist.total == 8 * 3 * 3 * 3


def test_effective_tab() -> None:
    assert effective_tab(TAB_LRN, "Pooling") == TAB_POOLING  # "this layer's internals"
    assert effective_tab(TAB_POOLING, "Convolution") == TAB_FLOW
    assert effective_tab(TAB_SALIENCY, "LRN") == TAB_SALIENCY


def test_gather_brings_the_internals_of_the_active_tab(lrn_pool_session) -> None:
    s = lrn_pool_session
    cache = StatsCache()
    data = gather(s, ViewRequest(layer="norm1", tab=TAB_LRN), cache)
    assert data.internals.tab == TAB_LRN and data.internals.view is None
    assert "not run forward" in data.internals.message
    s.continue_()
    data = gather(s, ViewRequest(layer="norm1", tab=TAB_LRN, channel=2), cache)
    assert isinstance(data.internals.view, LRNView) and data.internals.view.c == 2
    data = gather(s, ViewRequest(layer="pool1", tab=TAB_LRN, pool_cell=(99, 1)), cache)
    assert data.internals.tab == TAB_POOLING
    assert isinstance(data.internals.view, PoolingView)
    cell = data.internals.cell
    assert (cell.y, cell.x) == (3, 1)  # clamped to the 4x4 top
    assert data.request.blob is not None  # the blob shown first is named for the screen
    flow = gather(s, ViewRequest(layer="pool1", tab=TAB_FLOW), cache).internals.view
    assert [r.layer for r in flow][:3] == ["data", "conv1", "relu1"]
    sal = gather(s, ViewRequest(layer="pool1", tab=TAB_SALIENCY), cache).internals
    assert sal.view.shape == (9, 9) and sal.extra["blob"] == "data"
    assert np.all(sal.view >= 0)


def test_param_data_statistics_are_cached(lrn_pool_session) -> None:
    s = lrn_pool_session
    cache = StatsCache()
    s.step()
    s.step()
    a = layer_panel(s, "conv1", ViewRequest(layer="conv1"), cache)
    b = layer_panel(s, "conv1", ViewRequest(layer="conv1"), cache)
    assert _entry(a, "param", "conv1").data is _entry(b, "param", "conv1").data


def test_the_cache_keeps_recorded_values_and_recomputes_live_ones(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.run_to("norm1")  # conv1, relu1, pool1 have run; norm1 has not
    cache = StatsCache()
    pool = s.step_of("pool1", "forward").index
    first = cache.histogram(s, "pool1", "data", pool, None, 16)
    assert cache.histogram(s, "pool1", "data", pool, None, 16) is first  # a recorded step
    assert cache.histogram(s, "pool1", "data", pool, None, 8).counts.size == 8  # per bins
    np.testing.assert_array_equal(first.counts, s.histogram("pool1", "data", pool, bins=16).counts)
    weights = cache.histogram(s, "conv1", "data", None, 0, 16)
    assert cache.histogram(s, "conv1", "data", None, 0, 16) is weights  # weights are fixed
    live = cache.histogram(s, "pool1", "data", None, None, 16)
    assert cache.histogram(s, "pool1", "data", None, None, 16) is not live  # may change
    assert cache.stats(s, "pool1", "data", pool, None) is cache.stats(s, "pool1", "data", pool,
                                                                      None)


def test_the_cache_forgets_what_an_injection_changed(lrn_pool_session) -> None:
    s = lrn_pool_session
    s.continue_()
    cache = StatsCache()
    step = s.step_of("pool2", "backward").index
    before = cache.stats(s, "norm1", "diff", step, None)
    s.inject("ip", "onehot:1")  # ip=onehot:3 before: every diff changes
    s.continue_()
    after = cache.stats(s, "norm1", "diff", step, None)
    assert after.l2 == s.stats("norm1", "diff", step).l2 != before.l2
