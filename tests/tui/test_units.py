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


def test_spark_draws_fractions_on_one_fixed_scale() -> None:
    from bpinspect.tui.widgets.units_pane import spark

    assert spark([0.0, 0.124, 0.125, 0.5, 0.99, 1.0], width=8) == "▁▁▂▅██  "
    assert spark([0.5] * 20, width=4) == "▅▅▅▅"  # the last ones only


async def test_units_tab_of_a_training_session_over_iterations(monkeypatch) -> None:
    """Half of ip1's neurons killed (their bias far below zero) stay dead while training:
    the Units tab draws relu1's fraction over the iterations, each one equal to numpy's
    count on an independent solver run of the same iterations."""
    from bpinspect.engine.solver import get_solver
    from bpinspect.tui.app import BpinspectApp

    from .conftest import NETS
    from .test_training import training_app

    monkeypatch.chdir(NETS.parent)
    dead_neurons = slice(0, 250)
    reference = get_solver(str(NETS / "digits_solver.prototxt"))
    reference.net.params["ip1"][1].data[dead_neurons] = -1e6
    expected = []
    for _ in range(4):
        reference.step(1)
        ip1 = to_host(reference.net.blobs["ip1"].data)
        expected.append(float(np.mean(np.all(ip1 <= 0, axis=0))))
    assert all(e >= 0.5 for e in expected)

    app: BpinspectApp = training_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        app.session.net.params["ip1"][1].data[dead_neurons] = -1e6
        await pilot.press("u", *"4", "enter")
        await settle(pilot)
        assert app.session.iteration == 4
        app.main_screen.query_one(TabbedContent).active = TAB_UNITS
        await settle(pilot)
        pane = app.main_screen.query_one(UnitsPane)
        iterations, fractions = pane.series["relu1"]
        assert iterations == [0, 1, 2, 3]
        np.testing.assert_allclose(fractions, expected, rtol=0, atol=1e-12)
        text = pane.text().plain
        assert "iterations 0–" in text
        line = next(row for row in text.splitlines() if row.startswith("relu1"))
        assert "▅▅▅▅" in line or "▆▆▆▆" in line  # about half dead, four iterations
