"""The gradient-flow overview: log-scale bars per layer, zero and missing diffs flagged."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from bpinspect.session.views import FlowRow
from bpinspect.tui.widgets.gradient_flow import GradientFlow, flow_bar, log_range


def test_log_range_covers_whole_decades() -> None:
    assert log_range([1159.0, 2370.0, None, 0.0]) == (3.0, 4.0)
    assert log_range([0.001, 10.0]) == (-3.0, 1.0)
    assert log_range([100.0]) == (2.0, 3.0)  # one value: still a decade wide
    assert log_range([None, 0.0, math.nan]) is None


def test_bars_place_log10_in_the_range() -> None:
    span = (0.0, 2.0)  # 1 .. 100
    assert flow_bar(100.0, span, 4) == "████"
    assert flow_bar(10.0, span, 4) == "██  "  # half way in log
    assert flow_bar(1.0, span, 4) == "▏   "  # the bottom of the range still shows


class FlowApp(App[None]):
    CSS = "GradientFlow { width: 102; height: 8; }"

    def compose(self) -> ComposeResult:
        yield GradientFlow()


async def test_rows_name_layer_and_top_and_flag_zero_and_pending() -> None:
    app = FlowApp()
    async with app.run_test() as pilot:
        flow = app.query_one(GradientFlow)
        flow.rows = (
            FlowRow("conv1", "conv1", 2370.0, 0.5),
            FlowRow("relu1", "conv1", 1668.0, 0.0),
            FlowRow("fc8", "fc8", 3.0, None),
            FlowRow("bad", "bad", math.nan, 1.0),
        )
        await pilot.pause()
        lines = [flow.render_line(y).text for y in range(5)]
        assert "data L2, log 1e0…1e4" in lines[0]
        assert lines[1].startswith("conv1") and "2370" in lines[1] and "0.5" in lines[1]
        assert "0 (no gradient)" in lines[2]
        assert lines[3].rstrip().endswith("·")
        assert "nan" in lines[4]
        assert flow.virtual_size.height == 5  # a title line and one line per row
