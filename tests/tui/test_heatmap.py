"""The heatmap widget: fitting a plane to the cells, the colour ramp, window and marker."""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from textual.app import App, ComposeResult

from bpinspect.tui.widgets.heatmap import LEVELS, NAN_LEVEL, Heatmap, PlaneLayout, finite_range


def test_a_small_plane_is_zoomed_by_a_whole_factor() -> None:
    layout = PlaneLayout((9, 9), cols=40, rows=10)  # 20 pixel rows: zoom 2 (not 4)
    assert (layout.zoom, layout.block) == (2, 1)
    assert (layout.height, layout.width, layout.cell_rows) == (18, 18, 9)
    assert layout.source(5, 17) == (2, 3, 8, 9)
    assert layout.display(2, 8) == (4, 16)


def test_a_large_plane_is_shrunk_by_blocks() -> None:
    layout = PlaneLayout((227, 227), cols=60, rows=20)  # 40 pixel rows: blocks of 6
    assert (layout.zoom, layout.block) == (1, 6)
    assert (layout.height, layout.width) == (38, 38)
    assert layout.source(37, 0) == (222, 227, 0, 6)  # the last block is clipped


def test_levels_spread_the_range_over_the_ramp() -> None:
    layout = PlaneLayout((2, 2), cols=2, rows=1)
    levels = layout.levels(np.array([[0.0, 1.0], [2.0, 3.0]]), 0.0, 3.0)
    top = LEVELS - 1
    assert levels.tolist() == [[0, round(top / 3)], [round(2 * top / 3), top]]


def test_block_maxima_keep_a_lone_peak_and_nan_shows() -> None:
    plane = np.zeros((4, 4))
    plane[3, 0] = 10.0
    plane[0, 3] = np.nan
    layout = PlaneLayout((4, 4), cols=2, rows=1)
    assert layout.block == 2
    levels = layout.levels(plane, *finite_range(plane))
    assert levels.tolist() == [[0, NAN_LEVEL], [LEVELS - 1, 0]]


def test_finite_range_ignores_nan_and_inf() -> None:
    assert finite_range(np.array([[np.nan, -2.0], [np.inf, 5.0]])) == (-2.0, 5.0)
    assert finite_range(np.array([[np.nan]])) == (0.0, 0.0)


class HeatmapApp(App[None]):
    CSS = "Heatmap { width: 4; height: 2; }"

    def compose(self) -> ComposeResult:
        yield Heatmap()


def _cells(heatmap: Heatmap, y: int) -> list[Segment]:
    out = []
    for seg in heatmap.render_line(y):
        out += [Segment(ch, seg.style) for ch in seg.text]
    return out


async def test_cells_are_half_blocks_with_marker_and_window_colours() -> None:
    app = HeatmapApp()
    async with app.run_test() as pilot:
        heatmap = app.query_one(Heatmap)
        plane = np.array([[0.0, 1.0], [1.0, 0.0]])
        heatmap.set_plane(plane)
        await pilot.pause()
        layout = heatmap.plane_layout
        assert layout is not None and layout.zoom == 2  # 2x2 -> 4x4 pixels
        ramp = heatmap._ramp()
        low, high = ramp[0].rich_color, ramp[-1].rich_color
        row0 = _cells(heatmap, 0)
        assert [c.text for c in row0] == ["▀"] * 4
        assert [c.style.color for c in row0] == [low, low, high, high]
        assert [c.style.bgcolor for c in row0] == [low, low, high, high]
        marker = heatmap.get_component_styles("heatmap--marker").color.rich_color
        heatmap.set_marks(window=(0, 1, 0, 2), marker=(1, 0))
        await pilot.pause()
        row0, row1 = _cells(heatmap, 0), _cells(heatmap, 1)
        # The window tints row 0 (not the ramp colours any more); the marker is pixel (1, 0).
        assert row0[0].style.color not in (low, high)
        assert row1[0].style.color == marker and row1[1].style.bgcolor == marker
        assert row1[2].style.color == low


async def test_nothing_to_draw_is_blank() -> None:
    app = HeatmapApp()
    async with app.run_test() as pilot:
        heatmap = app.query_one(Heatmap)
        await pilot.pause()
        assert heatmap.render_line(0).text == "    "
