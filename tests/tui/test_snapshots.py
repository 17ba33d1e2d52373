"""Snapshots of the main screens on the small seeded nets (fixed size, no timings, no
animations). After a change that is meant to alter them, look at the new SVGs, then
``pytest tests/tui/test_snapshots.py --snapshot-update``."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from bpinspect.tui.view_data import TAB_CONCAT, TAB_LRN, TAB_SALIENCY

from .conftest import NETS, make_app

SIZE = (160, 50)


def _app(net: str, **changes: object):
    app = make_app(net, **changes)
    app.show_timings = False
    return app


async def _settle(pilot: Pilot) -> None:
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            break
    app.clear_notifications()
    await pilot.pause()


def _steps(*keys: str, layer: str | None = None, tab: str | None = None, focus: str = "",
           then: tuple[str, ...] = ()):
    """Press ``keys`` (waiting for each), select ``layer``, activate ``tab``, focus
    ``focus``, press ``then``."""

    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        for key in keys:
            await pilot.press(key)
            await _settle(pilot)
        screen = pilot.app.main_screen
        if layer is not None:
            screen.layer_list.focus()
            screen.layer_list.select_layer(layer)
            screen.layer_list.post_message(screen.layer_list.LayerHighlighted(
                screen.layer_list, layer))
            await _settle(pilot)
        if tab is not None:
            screen.query_one(TabbedContent).active = tab
            await _settle(pilot)
        if focus:
            screen.query_one(focus).focus()
        for key in then:
            await pilot.press(key)
            await _settle(pilot)

    return run_before


class TestMainScreen:
    def test_start(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt"), terminal_size=SIZE,
                            run_before=_steps())

    def test_forward_steps(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"]),
                            terminal_size=SIZE, run_before=_steps("n", "n", "n"))

    def test_backward_with_log_histograms(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"]),
                            terminal_size=SIZE, run_before=_steps("c", layer="conv1",
                                                                  then=("l",)))

    def test_too_small(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt"), terminal_size=(80, 24),
                            run_before=_steps())


class TestInternals:
    def test_lrn(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"]),
                            terminal_size=SIZE,
                            run_before=_steps("c", layer="norm1", tab=TAB_LRN, focus="#lrn",
                                              then=("right_square_bracket",)))

    def test_pooling(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"]),
                            terminal_size=SIZE,
                            run_before=_steps("c", layer="pool1", focus="#pooling",
                                              then=("down", "right")))

    def test_concat(self, snap_compare) -> None:
        assert snap_compare(_app("concat.prototxt"), terminal_size=SIZE,
                            run_before=_steps("c", layer="AA", tab=TAB_CONCAT))

    def test_split_sum(self, snap_compare) -> None:
        assert snap_compare(_app("concat.prototxt"), terminal_size=SIZE,
                            run_before=_steps("c", layer="a_A_0_split", tab=TAB_CONCAT))

    def test_saliency(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"]),
                            terminal_size=SIZE,
                            run_before=_steps("c", layer="data", tab=TAB_SALIENCY))


class TestDialogs:
    def test_help(self, snap_compare) -> None:
        assert snap_compare(_app("lrn_pool.prototxt"), terminal_size=SIZE,
                            run_before=_steps("n", then=("question_mark",)))

    def test_inject(self, snap_compare) -> None:
        async def run_before(pilot: Pilot) -> None:
            await _steps("c", layer="ip")(pilot)
            await pilot.press("i")
            await pilot.pause()
            for field in pilot.app.screen.query("Input"):
                field.cursor_blink = False
            await pilot.press(*"onehot:3")
            await pilot.pause()

        assert snap_compare(_app("lrn_pool.prototxt"), terminal_size=SIZE,
                            run_before=run_before)


class TestTraining:
    """DigitsLeNet training (nets/digits_solver.prototxt over its LMDB), seeded on the CPU."""

    @staticmethod
    def _app():
        from bpinspect.engine.solver import get_solver
        from bpinspect.session.training import TrainingSession
        from bpinspect.tui.app import BpinspectApp

        app = BpinspectApp(session=TrainingSession(get_solver(str(NETS /
                                                                  "digits_solver.prototxt"))))
        app.animation_level = "none"
        app.show_timings = False
        return app

    @pytest.fixture(autouse=True)
    def _at_the_repository_root(self, monkeypatch) -> None:
        monkeypatch.chdir(NETS.parent)  # the solver names its net from there, as Caffe's

    def test_training_tab(self, snap_compare) -> None:
        """u to iteration 12, then two steps: the header's iteration line, the update row
        to do, the loss plot and the update ratios of iteration 11."""
        assert snap_compare(self._app(), terminal_size=SIZE,
                            run_before=_steps("u", "1", "2", "enter", "n", "n"))

    def test_update_panel(self, snap_compare) -> None:
        """u to iteration 5, then step through the pass and its update: every param's new
        weights and update value."""

        async def run_before(pilot: Pilot) -> None:
            await _steps("u", "5", "enter")(pilot)
            session = pilot.app.session
            while session.last_step is None or session.last_step.direction != "update":
                await pilot.press("n")
                await _settle(pilot)

        assert snap_compare(self._app(), terminal_size=SIZE, run_before=run_before)

    def test_batch_tab(self, snap_compare) -> None:
        """The first step reads batch 0: the Batch tab's digits with their labels."""
        assert snap_compare(self._app(), terminal_size=SIZE,
                            run_before=_steps("n", tab="tab-batch"))
