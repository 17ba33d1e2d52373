"""depth_histograms: every layer's top over one shared range, checked with numpy."""

from __future__ import annotations

import numpy as np

from bpinspect.backend import to_host
from bpinspect.session.depth import depth_histograms
from tests.tui.conftest import make_session


def test_shared_range_and_counts_match_numpy() -> None:
    session = make_session("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    before = depth_histograms(session, "data")
    assert before.value_range is None
    assert all(s.histogram is None and s.note == "not run yet" for s in before.strips)
    session.continue_()
    view = depth_histograms(session, "data", bins=16)
    net = session.net
    names = [n for n in net.layer_names if net.top_names[n]]
    assert [s.layer for s in view.strips] == names
    arrays = {n: to_host(session.array(net.top_names[n][0], "data",
                                       step=session.step_of(n, "forward").index))
              for n in names}
    lo = min(float(a.min()) for a in arrays.values())
    hi = max(float(a.max()) for a in arrays.values())
    assert view.value_range == (lo, hi)
    for s in view.strips:
        counts, _ = np.histogram(arrays[s.layer], bins=16, range=(lo, hi))
        np.testing.assert_array_equal(s.histogram.counts, counts)
    # relu1 is in place on conv1: its strip is the ReLU's output, conv1's is before it
    relu = next(s for s in view.strips if s.layer == "relu1")
    conv = next(s for s in view.strips if s.layer == "conv1")
    assert relu.histogram.counts.sum() == conv.histogram.counts.sum()
    assert not np.array_equal(relu.histogram.counts, conv.histogram.counts)
    diff = depth_histograms(session, "diff")
    assert diff.kind == "diff" and diff.value_range is not None


def test_per_layer_ranges_match_numpy() -> None:
    session = make_session("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    session.continue_()
    shared = depth_histograms(session, "diff", bins=12)
    view = depth_histograms(session, "diff", bins=12, per_layer=True)
    assert view.per_layer and view.value_range == shared.value_range
    net = session.net
    checked = 0
    for s in view.strips:
        if s.histogram is None:
            continue
        a = to_host(session.array(net.top_names[s.layer][0], "diff"))
        lo, hi = float(a.min()), float(a.max())
        assert s.value_range == (lo, hi)
        counts, _ = np.histogram(a, bins=12, range=(lo, hi))
        np.testing.assert_array_equal(s.histogram.counts, counts)
        checked += 1
    assert checked >= 3
    # Over the shared range the narrowest layer's values crowd into a few bins; over
    # its own they spread over many.
    narrow = min((s for s in view.strips if s.histogram is not None),
                 key=lambda s: s.value_range[1] - s.value_range[0])
    same = next(s for s in shared.strips if s.layer == narrow.layer)
    assert np.count_nonzero(narrow.histogram.counts) > np.count_nonzero(same.histogram.counts)
