"""Dead and saturated units: the line in the blob panel of a ReLU layer and the Units
tab over the whole depth of the net, counted here again with numpy."""

from __future__ import annotations

import numpy as np
from textual.widgets import TabbedContent

from bpinspect.backend import to_host
from bpinspect.tui.view_data import TAB_UNITS
from bpinspect.tui.widgets.units_pane import UnitsPane, bar

from .conftest import make_app
from .test_app import select_layer, settle, shown


def dead_by_numpy(a: np.ndarray) -> tuple[int, int]:
    """(dead channels, channels): a channel is dead when all its values are <= 0."""
    per_channel = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
    return int(np.sum(np.all(per_channel <= 0, axis=1))), a.shape[1]


async def test_units_line_and_tab_over_the_net() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        session = app.session
        # Kill channel 2 of conv1 (bias far below zero), as training can.
        conv = session.net.params["conv1"]
        conv[1].data[2] = -1e6
        conv[1].data[5] = -1e6
        app.main_screen.layer_list.focus()
        await pilot.press("n", "n", "n")  # data, conv1, relu1 forward
        await settle(pilot)
        await select_layer(pilot, "relu1")
        step = session.step_of("relu1", "forward").index
        relu = to_host(session.array("conv1", "data", step=step))
        dead, channels = dead_by_numpy(relu)
        assert dead == 2
        title = shown(app.main_screen.query_one("#blob-title"))
        pct = f"{100 * dead / channels:.1f}%"
        assert f"dead units: {dead} of {channels} channels ({pct})" in title
        frac = float(np.mean(relu <= 0))
        assert f"{100 * frac:.1f}% of values zero" in title

        tabs = app.main_screen.query_one(TabbedContent)
        tabs.active = TAB_UNITS
        await settle(pilot)
        pane = app.main_screen.query_one(UnitsPane)
        text = shown(pane)
        assert [r.layer for r in pane.rows] == ["relu1"]
        relu1 = next(line for line in text.splitlines() if line.startswith("relu1"))
        assert f"{dead}/{channels}" in relu1 and pct in relu1
        assert bar(dead / channels).rstrip() in relu1


def test_bar_in_eighths() -> None:
    assert bar(0.0) == " " * 20
    assert bar(1.0) == "█" * 20
    assert bar(0.5) == "█" * 10 + " " * 10
    assert bar(1 / 160) == "▏" + " " * 19
