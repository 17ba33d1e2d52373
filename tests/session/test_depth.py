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
