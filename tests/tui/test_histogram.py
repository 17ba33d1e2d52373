"""The histogram widget: bars from counts, eighth blocks, log heights, the axis line."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult

from bpinspect.session.stats import Histogram
from bpinspect.tui.widgets.histogram import (
    BLOCKS,
    HistogramChart,
    axis_line,
    bar_rows,
    column_values,
)


def test_columns_repeat_bins_when_wider_and_keep_the_max_when_narrower() -> None:
    values = np.array([1.0, 5.0, 2.0, 0.0])
    assert column_values(values, 8).tolist() == [1, 1, 5, 5, 2, 2, 0, 0]
    assert column_values(values, 2).tolist() == [5, 2]
    assert column_values(values, 4).tolist() == [1, 5, 2, 0]


def test_bars_are_eighth_blocks_scaled_to_the_tallest() -> None:
    # Two rows = 16 eighths: heights 16, 8, 4, 0 of the tallest 16.
    rows = bar_rows(np.array([16.0, 8.0, 4.0, 0.0]), np.array([1, 1, 1, 0]), width=4, rows=2)
    assert rows == ["█   ", "██▄ "]


def test_an_occupied_bin_never_disappears() -> None:
    # 1 count next to 10000: 1/10000 of 8 eighths rounds to 0, but the bin has a value.
    rows = bar_rows(np.array([10000.0, 1.0, 0.0]), np.array([1, 1, 0]), width=3, rows=1)
    assert rows == ["█" + BLOCKS[1] + " "]


def test_axis_labels_and_zero_tick() -> None:
    line, zero = axis_line(-1.0, 3.0, 20)
    assert line.startswith("-1") and line.endswith("3")
    assert zero == 5 and line[5] == "0"
    line, zero = axis_line(0.5, 3.0, 20)
    assert zero is None and "0" not in line.replace("0.5", "")


class ChartApp(App[None]):
    CSS = "HistogramChart { width: 8; height: 4; }"

    def compose(self) -> ComposeResult:
        yield HistogramChart("conv1 · data")


async def test_widget_draws_title_bars_and_axis_and_toggles_log() -> None:
    counts = np.array([1, 10, 100, 1000], dtype=np.int64)
    hist = Histogram(counts=counts, edges=np.linspace(-2.0, 2.0, 5), log=False, nonfinite=3)
    app = ChartApp()
    async with app.run_test() as pilot:
        chart = app.query_one(HistogramChart)
        chart.histogram = hist
        await pilot.pause()
        lines = [chart.render_line(y).text for y in range(4)]
        assert lines[0].startswith("conv1 ·")
        # Two bar rows (16 eighths) of 8 columns, two per bin; linear: 1000 fills both rows,
        # 100 is 1.6 eighths -> 2, 10 and 1 are visible as one eighth.
        assert lines[1] == "      ██"
        assert lines[2] == "▁▁▁▁▂▂██"
        bar_colour = chart.get_component_rich_style("histogram--bar").color
        assert {seg.style.color for seg in chart.render_line(2) if seg.text.strip()} == {
            bar_colour}
        assert lines[3].strip().startswith("-2") and lines[3].rstrip().endswith("2")
        chart.log_counts = True
        await pilot.pause()
        lines = [chart.render_line(y).text for y in range(4)]
        # log10(1 + count) = 0.30, 1.04, 2.00, 3.00 of 3.00: 2, 6, 11, 16 eighths.
        assert lines[1] == "    ▃▃██"
        assert lines[2] == "▂▂▆▆████"


async def test_widget_says_when_there_is_nothing_and_counts_nonfinite() -> None:
    app = ChartApp()
    async with app.run_test() as pilot:
        chart = app.query_one(HistogramChart)
        chart.styles.width = 60
        await pilot.pause()
        assert "not computed yet" in chart.render_line(0).text
        chart.histogram = Histogram(np.array([2, 0]), np.array([0.0, 1.0, 2.0]), False, 5)
        await pilot.pause()
        assert "5 NaN/Inf not shown" in chart.render_line(0).text
