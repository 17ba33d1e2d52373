"""The app over a TrainingSession (the demo DigitsLeNet solver and its real LMDB), driven
by the Pilot with real keys: the update row and panel, the header's iteration line, the
Training tab's loss plot and ratio table, n across passes, c to an iteration breakpoint,
u to an iteration, and the too-high learning rate stopped where the NaN starts."""

from __future__ import annotations

import math

import pytest
from textual.widgets import Checkbox, Input, TabbedContent

from bpinspect.tui.app import BpinspectApp
from bpinspect.tui.screens.breakpoints import BreakpointDialog
from bpinspect.tui.screens.help import HelpScreen
from bpinspect.tui.screens.main import MainScreen
from bpinspect.tui.screens.until import UntilDialog
from bpinspect.tui.view_data import TAB_TRAINING, UPDATE_ROW
from bpinspect.tui.widgets.loss_plot import LossPlot
from bpinspect.tui.widgets.session_header import SessionHeader
from bpinspect.tui.widgets.training_pane import TrainingPane

from .conftest import NETS
from .test_app import SIZE, settle, shown

ROOT = NETS.parent


def training_app(solver: str = "digits_solver.prototxt") -> BpinspectApp:
    from bpinspect.engine.solver import get_solver
    from bpinspect.session.training import TrainingSession

    session = TrainingSession(get_solver(str(NETS / solver)))
    app = BpinspectApp(session=session)
    app.animation_level = "none"
    app.show_timings = False
    return app


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch) -> None:
    """The demo solvers name their net relative to the repository root, as Caffe's do."""
    monkeypatch.chdir(ROOT)


async def step_to_update(pilot) -> None:
    """n until the next step is the update (the last of the pass)."""
    app = pilot.app
    for _ in range(60):
        if app.session.next_step is not None and app.session.next_step.direction == "update":
            return
        await pilot.press("n")
        await settle(pilot)
    raise AssertionError("no update step in the pass")


async def test_update_row_panel_and_fresh_weights() -> None:
    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        session = app.session
        rows = screen.layer_list.rows
        assert rows[-1].name == UPDATE_ROW and rows[-1].update and not rows[-1].forward_done
        assert [r.name for r in rows[:-1]] == session.net.layer_names
        assert screen.tabs.active == TAB_TRAINING
        header = shown(screen.query_one(SessionHeader))
        assert "iteration 0 of 500" in header and "SGD" in header and "lr" in header
        assert "no iteration finished yet" in header

        # Up to the update: conv1's weights as its forward used them.
        await step_to_update(pilot)
        assert screen.layer_list.rows[-1].current == "update"
        assert "records 0–63 of 1500" in shown(screen.query_one(SessionHeader))
        await pilot.press("end")  # the update row, before the update runs
        await settle(pilot)
        panel = screen.blob_panel.panel
        assert panel.update is not None and not panel.update.done
        params = [e for e in panel.entries if e.role == "param"]
        assert [e.label for e in params] == ["conv1#0", "conv1#1", "conv2#0", "conv2#1",
                                             "ip1#0", "ip1#1", "ip2#0", "ip2#1"]
        gradient = params[0].diff
        old_weights = params[0].data
        assert gradient is not None and gradient.l2 > 0 and params[0].diff_label.startswith(
            "gradient")

        # n: the update runs; the panel shows the new weights and the update value.
        await pilot.press("n")
        await settle(pilot)
        assert screen.layer_list.highlighted_layer == UPDATE_ROW
        panel = screen.blob_panel.panel
        assert panel.update is not None and panel.update.done
        entry = panel.entries[0]
        assert entry.data_label == "new weights" and entry.diff_label == "update value"
        assert entry.data.l2 != old_weights.l2  # no stale weights from the cache
        assert entry.data.l2 == session.stats("conv1", "data", param=0).l2
        record = session.iterations.last
        conv1 = next(p for p in record.params if p.param == "conv1#0")
        assert math.isclose(entry.diff.l2, conv1.update_l2, rel_tol=1e-5)
        assert panel.diff_hist is not None and panel.data_hist is not None
        assert "update value" in "\n".join(screen.blob_panel.table.render_lines_text())
        assert "largest ‖Δw‖/‖w‖" in screen.blob_panel.query_one("#blob-title").plain

        # The ratio table of the Training tab: every param, the ratio of this update.
        pane = screen.query_one(TrainingPane)
        assert pane.data is not None and pane.data.last_iteration == 0
        assert pane.table.row_count == 8
        assert [p.param for p in pane.data.params][0] == "conv1#0"
        assert math.isclose(pane.data.params[0].ratio, conv1.ratio)

        # conv1's own panel: the weights its forward used (before the update).
        await pilot.press("home", "down")
        await settle(pilot)
        assert screen.layer_list.highlighted_layer == "conv1"
        weights = next(e for e in screen.blob_panel.panel.entries if e.label == "conv1#0")
        assert weights.data.l2 == old_weights.l2

        # p: the update is undone; the update row shows the old weights again.
        await pilot.press("p")
        await settle(pilot)
        assert screen.layer_list.highlighted_layer == UPDATE_ROW
        entry = screen.blob_panel.panel.entries[0]
        assert entry.data.l2 == old_weights.l2 and entry.diff.l2 == gradient.l2
        assert len(session.iterations) == 0


async def test_n_begins_the_next_iteration_and_c_stops_at_an_iteration() -> None:
    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        session = app.session
        await step_to_update(pilot)
        await pilot.press("n")  # the update: end of iteration 0
        await settle(pilot)
        assert session.at_end and not app.at_end  # n and c still go on
        plot = screen.query_one(LossPlot)
        assert plot.data is not None and len(plot.data.loss[0]) == 1
        await pilot.press("n")  # the next iteration's first step
        await settle(pilot)
        assert session.iteration == 1 and session.cursor == 1
        header = shown(screen.query_one(SessionHeader))
        assert "iteration 1 of 500" in header and "(iteration 0)" in header
        assert "records 64–127 of 1500" in header
        assert "began iteration 1" in screen.status.text

        # B: stop at iteration 4 (and on a NaN loss), then c runs the iterations between.
        await pilot.press("B")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, BreakpointDialog)
        dialog.query_one("#cond-iterations", Input).focus()
        await pilot.press(*"4", "enter")
        await settle(pilot)
        assert session.training_conditions.iterations == {4}
        await pilot.press("c")
        await settle(pilot)
        assert session.iteration == 4 and session.at_iteration_start
        assert "iteration 4" in screen.status.text
        assert "iteration 4 of 500" in shown(screen.query_one(SessionHeader))
        assert len(plot.data.loss[0]) == 4 and plot.data.loss[0] == (0, 1, 2, 3)
        names = [name for name, _, _ in plot.legend]
        assert names[:2] == ["loss", "smoothed"] and "test0:accuracy" in names
        assert "loss" in shown(screen.query_one("#loss-legend"))
        assert screen.query_one(TabbedContent).active == TAB_TRAINING


async def test_u_runs_to_an_iteration_and_help_lists_it() -> None:
    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, UntilDialog)
        await pilot.press(*"600", "enter")  # past max_iter: the dialog says so
        await pilot.pause()
        assert isinstance(app.screen, UntilDialog)
        assert "500" in shown(app.screen.query_one("#until-error"))
        await pilot.press("ctrl+a", "ctrl+k", *"7", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        session = app.session
        assert session.iteration == 7 and session.at_iteration_start
        assert len(session.iterations) == 7
        assert "at the start of iteration 7" in screen.status.text
        assert screen.query_one(TrainingPane).data.iterations_kept == 7

        titles = [c.title for c in app.get_system_commands(screen)]
        assert any(t.startswith("Until iter") for t in titles), titles
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = shown(app.screen.query_one("#help-keys"))
        assert "until iter" in keys
        assert app.screen.query_one("#help-training") is not None


async def test_the_update_row_takes_no_layer_breakpoint() -> None:
    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("end", "b")
        await settle(pilot)
        assert "takes no layer breakpoint" in app.main_screen.status.text
        session = app.session
        assert not any(session.breakpoints.has(name, direction)
                       for name in session.net.layer_names
                       for direction in ("forward", "backward"))


async def test_a_too_high_learning_rate_stops_where_the_nan_starts() -> None:
    app = training_app("digits_solver_lr_too_high.prototxt")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        await pilot.press("B")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, BreakpointDialog)
        box = dialog.query_one("#cond-loss-nonfinite", Checkbox)
        assert not box.value
        box.focus()
        await pilot.press("space")
        dialog.query_one("#cond-ratio-bound", Input).focus()
        await pilot.press("enter")  # an empty bound, unchecked: not a condition
        await settle(pilot)
        session = app.session
        assert session.training_conditions.loss_nonfinite
        assert session.training_conditions.ratio_above is None
        await pilot.press("c")
        await settle(pilot)
        status = screen.status.text
        assert "loss is nan" in status and "first non-finite value" in status
        hit_layer = status.split("of layer '")[1].split("'")[0]
        assert hit_layer in session.net.layer_names
        assert screen.layer_list.highlighted_layer == hit_layer  # the view shows it
        assert 20 <= session.iteration <= 80
        assert "NaN/Inf" not in shown(screen.query_one("#loss-legend"))  # NaN not finished
        assert not app.at_end


async def test_batch_tab_shows_the_images_and_labels_the_data_layer_read() -> None:
    from bpinspect.tui.view_data import TAB_BATCH
    from bpinspect.tui.widgets.batch_pane import BatchPane

    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        assert await pilot.click(f"#--content-tab-{TAB_BATCH}")
        await settle(pilot)
        assert screen.tabs.active == TAB_BATCH
        pane = screen.query_one(BatchPane)
        assert pane.view is None
        assert "has not read its batch" in shown(pane.query_one("#batch-info"))
        await pilot.press("n")  # the data layer's forward reads batch 0
        await settle(pilot)
        view = pane.view
        assert view is not None and len(view.images) == 64
        labels = app.session.array("label").reshape(-1)
        assert [img.label for img in view.images] == [str(int(v)) for v in labels]
        info = shown(pane.query_one("#batch-info"))
        assert "records 0–63 of 1500" in info and "items 0–63 of 64" in info
        grid = shown(pane.query_one("#batch-grid"))
        assert f"#0 {int(labels[0])}" in grid and f"#5 {int(labels[5])}" in grid


async def test_p_at_the_start_of_an_iteration_steps_back_into_the_one_before() -> None:
    app = training_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: MainScreen = app.main_screen
        await pilot.press("u")
        await pilot.pause()
        await pilot.press(*"3", "enter")
        await settle(pilot)
        session = app.session
        assert session.iteration == 3 and session.last_step is None
        pane = screen.query_one(TrainingPane)
        assert "iterations 0–2" in shown(pane.query_one("#training-info"))
        await pilot.press("p")  # back over iteration 2's update
        await settle(pilot)
        assert session.iteration == 2 and session.solver.iter == 2
        assert "stepped back over Δ SGD update, into iteration 2" in screen.status.text
        assert screen.layer_list.rows[-1].current == "update"
        assert "iteration 2 of 500" in shown(screen.query_one(SessionHeader))
        await pilot.press("n")  # the update again, then on into iteration 3
        await settle(pilot)
        assert session.solver.iter == 3 and len(session.iterations) == 3
