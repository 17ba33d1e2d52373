"""The Depth tab: a heat strip per layer over one range (D: each its own); d toggles data
and diff."""

from __future__ import annotations

import numpy as np
from textual.widgets import TabbedContent

from bpinspect.tui.formatting import fmt_num
from bpinspect.tui.view_data import TAB_DEPTH
from bpinspect.tui.widgets.depth_pane import DepthPane, heat_cells

from .conftest import make_app
from .test_app import settle, shown


async def test_depth_tab_strips_and_toggle() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        screen = app.main_screen
        screen.query_one(TabbedContent).active = TAB_DEPTH
        screen.layer_list.focus()
        await pilot.press("c")
        await settle(pilot)
        pane = screen.query_one(DepthPane)
        assert pane.view is not None and pane.view.kind == "data"
        text = shown(pane)
        assert "top data across depth" in text
        for strip in pane.view.strips:
            line = next(row for row in text.splitlines() if row.startswith(strip.layer + " "))
            top = max(float(s.histogram.heights.max()) for s in pane.view.strips)
            assert heat_cells(strip.histogram.heights, top) in line
        await pilot.press("d")
        await settle(pilot)
        assert pane.view.kind == "diff" and "top diff across depth" in shown(pane)
        await pilot.press("d")
        await settle(pilot)
        assert pane.view.kind == "data"
        await pilot.press("D")  # each layer over its own range, written beside it
        await settle(pilot)
        assert pane.view.per_layer
        text = shown(pane)
        assert "each layer over its own range" in text
        conv = next(s for s in pane.view.strips if s.layer == "conv1")
        line = next(row for row in text.splitlines() if row.startswith("conv1 "))
        lo, hi = conv.value_range
        assert f"{fmt_num(lo)} … {fmt_num(hi)}" in line
        await pilot.press("D")
        await settle(pilot)
        assert not pane.view.per_layer and "one range [" in shown(pane)


def test_heat_cells() -> None:
    assert heat_cells(np.array([0.0, 0.1, 2.0, 4.0]), 4.0) == " ░▒█"
    assert heat_cells(np.array([0.0, 1.0]), 0.0) == "  "
