"""The app driven by the Pilot with real keys: stepping, breakpoints, injection, export,
internals tabs, step back, restart, help, errors and a too-small terminal."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, TabbedContent, Tabs

from bpinspect.tui.app import BpinspectApp
from bpinspect.tui.screens.breakpoints import BreakpointDialog
from bpinspect.tui.screens.help import HelpScreen
from bpinspect.tui.screens.inject import InjectDialog
from bpinspect.tui.screens.main import MainScreen
from bpinspect.tui.view_data import TAB_CONCAT, TAB_DROPOUT, TAB_LRN, TAB_POOLING, TAB_SOFTMAX
from bpinspect.tui.widgets.concat_pane import ConcatPane
from bpinspect.tui.widgets.dropout_pane import DropoutPane
from bpinspect.tui.widgets.layer_list import LayerList
from bpinspect.tui.widgets.lrn_pane import LRNPane
from bpinspect.tui.widgets.pooling_pane import PoolingPane
from bpinspect.tui.widgets.softmax_pane import SoftmaxPane

from .conftest import make_app

SIZE = (160, 50)


async def settle(pilot: Pilot) -> None:
    """Wait until the session worker is idle and the screen has taken its messages."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            await pilot.pause()
            if not app.busy:
                return
    raise AssertionError("the session worker did not settle")


def shown(widget: Widget) -> str:
    """The text a widget shows on screen, line by line."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


def main_screen(app: BpinspectApp) -> MainScreen:
    return app.main_screen


async def select_layer(pilot: Pilot, name: str) -> None:
    """Choose a layer as a user does: arrow keys nearby, a click further away."""
    screen = main_screen(pilot.app)
    layers = screen.layer_list
    layers.focus()
    target = [r.name for r in layers.rows].index(name)
    current = layers.highlighted or 0
    if abs(target - current) <= 3:
        for _ in range(abs(target - current)):
            await pilot.press("down" if target > current else "up")
    else:
        layers.scroll_to(y=0, animate=False)
        await pilot.pause()
        assert await pilot.click(LayerList, offset=(8, target))
    await settle(pilot)
    assert layers.highlighted_layer == name


@pytest.mark.slow
async def test_caffenet_step_break_inject_export_back_restart_help(tmp_path) -> None:
    app = make_app("caffenet.prototxt", export_dir=str(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        session = app.session
        assert session is not None and session.cursor == 0
        assert [r.name for r in screen.layer_list.rows] == session.net.layer_names
        assert screen.header_info.net == "CaffeNet"
        assert "no --weights given" in screen.header_info.weights

        # n three times: input, conv1, relu1 forward; the view follows the cursor.
        for _ in range(3):
            await pilot.press("n")
        await settle(pilot)
        assert session.cursor == 3
        assert screen.layer_list.highlighted_layer == "relu1"
        panel = screen.blob_panel.panel
        assert panel.info.name == "relu1" and panel.selected_entry.role == "top"
        assert screen.header_info.cursor == 3 and screen.header_info.direction == "forward"

        # p: step back over relu1.
        await pilot.press("p")
        await settle(pilot)
        assert session.cursor == 2 and session.next_step.layer_name == "relu1"

        # b on fc6, then c: a layer breakpoint stops before fc6's forward.
        await select_layer(pilot, "fc6")
        await pilot.press("b")
        await settle(pilot)
        assert session.breakpoints.has("fc6", "forward")
        row = next(r for r in screen.layer_list.rows if r.name == "fc6")
        assert row.breakpoint == "both"
        await pilot.press("c")
        await settle(pilot)
        assert session.next_step.layer_name == "fc6"
        assert session.next_step.direction == "forward"
        assert "breakpoint" in screen.status.text
        assert screen.layer_list.highlighted_layer == "fc6"

        # No loss and nothing injected: the gradient reaching the image is zero.
        await pilot.press("b")  # clear the breakpoint on fc6
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert session.at_end
        assert session.stats("data", "diff").l2 == 0.0

        # i: inject onehot:281 at fc8 (real keys into the dialog), then run to the end.
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, InjectDialog)
        app.screen.query_one("#inject-blob", Input).focus()
        await pilot.press("ctrl+a", "ctrl+k", *"fc8", "tab", *"onehot:281", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert session.injections["fc8"].spec == "onehot:281"
        assert "fc8=onehot:281" in screen.header_info.injections
        await pilot.press("c")
        await settle(pilot)
        assert session.at_end
        data_diff = session.array("data", "diff")
        assert float(np.abs(data_diff).max()) > 0  # the saliency of class 281 is non-zero

        # The blob panel of the input layer shows that diff.
        await select_layer(pilot, "input")
        entry = screen.blob_panel.panel.selected_entry
        assert entry.name == "data" and entry.diff is not None and entry.diff.l2 > 0

        # e: export the selected blob; the .npy holds the same values.
        await pilot.press("e")
        await settle(pilot)
        files = sorted(tmp_path.glob("*.npy"))
        diff_file = [f for f in files if f.name.endswith("-data.diff.npy")]
        assert len(diff_file) == 1, [f.name for f in files]
        np.testing.assert_array_equal(np.load(diff_file[0]), data_diff)
        data_file = [f for f in files if f.name.endswith("data.data.npy")]
        np.testing.assert_array_equal(np.load(data_file[0]), session.input_array("data"))
        assert (tmp_path / "manifest.json").exists()

        # r: a new pass; the injection stays, the history goes.
        await pilot.press("r")
        await settle(pilot)
        assert session.cursor == 0 and "fc8" in session.injections
        assert screen.layer_list.highlighted_layer == "input"

        # ?: help lists every key of the main screen.
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = shown(app.screen.query_one("#help-keys"))
        for word in ("step", "continue", "back", "break", "conditions", "restart", "inject",
                     "export", "log", "quit"):
            assert word in keys
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_lrn_and_pooling_tabs_with_their_keys() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        await pilot.press("c")
        await settle(pilot)
        tabs = screen.query_one(TabbedContent)

        await select_layer(pilot, "norm1")
        tabs.active = TAB_LRN
        await settle(pilot)
        lrn = screen.query_one(LRNPane)
        assert lrn.view is not None and lrn.view.layer == "norm1" and lrn.view.c == 0
        lrn.focus()
        await pilot.press("right_square_bracket", "right_square_bracket")
        await settle(pilot)
        assert lrn.view.c == 2
        np.testing.assert_array_equal(lrn.view.plane, app.session.lrn_view("norm1", 0, 2).plane)

        # Another layer with internals: the internals tab follows the layer's kind.
        await select_layer(pilot, "pool1")
        assert tabs.active == TAB_POOLING
        pooling = screen.query_one(PoolingPane)
        assert pooling.view.method == "MAX" and pooling.pool_cell is not None
        pooling.focus()
        await pilot.press("down", "right", "right")
        await settle(pilot)
        cell = pooling.pool_cell
        assert (cell.y, cell.x) == (1, 2)
        # 3x3 windows, stride 2: output (1, 2) reads input rows 2..4, cols 4..6.
        assert cell.window == (2, 5, 4, 7)
        assert cell.winner is not None
        assert 2 <= cell.winner[0] < 5 and 4 <= cell.winner[1] < 7
        heatmap_marks = pooling.query_one("#pool-heatmap")
        assert heatmap_marks.window == cell.window and heatmap_marks.marker == cell.winner

        # A layer without internals hides the internals tabs.
        await select_layer(pilot, "conv1")
        assert tabs.active not in (TAB_LRN, TAB_POOLING)


async def test_concat_and_split_tabs() -> None:
    app = make_app("concat.prototxt")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        await pilot.press("c")
        await settle(pilot)
        tabs = screen.query_one(TabbedContent)
        await select_layer(pilot, "AA")
        tabs.active = TAB_CONCAT
        await settle(pilot)
        pane = screen.query_one(ConcatPane)
        text = shown(pane.query_one("#concat-info"))
        assert "axis 0" in text and "a_A_0_split_1 [0:2)" in text
        note = shown(pane.query_one("#concat-note"))
        assert "a_A_0_split" in note  # the copies of `a` and the split that sums them
        await select_layer(pilot, "a_A_0_split")
        assert tabs.active == TAB_CONCAT
        assert "Split" in shown(pane.query_one("#concat-info"))
        rows = [str(pane.query_one("#concat-table").get_row_at(i)[0])
                for i in range(pane.query_one("#concat-table").row_count)]
        assert rows == ["a_A_0_split_0", "a_A_0_split_1", "a_A_0_split_2", "sum", "a"]


async def test_dropout_and_softmax_tabs_in_train_phase() -> None:
    app = make_app("train_softmax.prototxt", phase="train")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        await pilot.press("c")
        await settle(pilot)
        tabs = screen.query_one(TabbedContent)
        dropout_layer = next(r.name for r in screen.layer_list.rows if r.type == "Dropout")
        await select_layer(pilot, dropout_layer)
        tabs.active = TAB_DROPOUT
        await settle(pilot)
        text = shown(screen.query_one(DropoutPane).query_one("#dropout-info"))
        assert "phase train" in text and "kept" in text
        softmax_layer = next(r.name for r in screen.layer_list.rows
                             if r.type == "SoftmaxWithLoss")
        await select_layer(pilot, softmax_layer)
        assert tabs.active == TAB_SOFTMAX
        text = shown(screen.query_one(SoftmaxPane).query_one("#softmax-info"))
        assert len([ln for ln in text.splitlines() if ln.startswith("item ")]) == 4  # TRAIN: 4


async def test_conditional_breakpoint_dialog_stops_on_a_bound() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("B")
        await pilot.pause()
        assert isinstance(app.screen, BreakpointDialog)
        app.screen.query_one("#cond-bound", Input).focus()
        await pilot.press(*"200", "enter")
        await settle(pilot)
        assert [c.kind for c in app.session.breakpoints.conditions] == ["max_abs"]
        await pilot.press("c")
        await settle(pilot)
        # The seeded input stays below 200 (noise of std 50 on 486 values); conv1's output
        # is the first to go above it.
        session = app.session
        assert session.last_step.layer_name == "conv1"
        assert session.stats("data").max_abs < 200 < session.stats("conv1").max_abs
        assert "max |x|" in main_screen(app).status.text


async def test_escape_interrupts_a_continue_between_layers() -> None:
    app = make_app("lrn_pool.prototxt")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        net = app.session.net
        inside, release = threading.Event(), threading.Event()
        original = net.forward_layer

        def slow_forward(i: int) -> float:
            if net.layer_names[i] == "pool1":
                inside.set()
                release.wait(10)
            return original(i)

        net.forward_layer = slow_forward
        await pilot.press("c")
        assert inside.wait(10)
        assert app.busy
        await pilot.press("escape")
        release.set()
        await settle(pilot)
        assert not app.session.at_end
        assert app.session.last_step.layer_name == "pool1"  # the running layer finished
        assert "cancelled" in main_screen(app).status.text


async def test_user_errors_are_shown_not_raised(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    app = make_app("lrn_pool.prototxt", export_dir=str(missing))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert "does not exist" in main_screen(app).status.text
        # A spec that does not parse stays in the dialog, with the reason.
        await pilot.press("i")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, InjectDialog)
        dialog.query_one("#inject-spec", Input).focus()
        await pilot.press(*"onehot:x", "enter")
        await settle(pilot)
        assert app.screen is dialog
        assert "spec" in shown(dialog.query_one("#inject-error"))
        # A spec that parses but does not fit the blob comes back from the session.
        await pilot.press("ctrl+a", "ctrl+k", *"onehot:99999", "enter")
        await settle(pilot)
        assert app.screen is dialog
        assert shown(dialog.query_one("#inject-error")).strip() != ""
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and not app.session.injections


async def test_a_net_that_does_not_load_is_reported_in_the_app(tmp_path) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer { name: "a" type: "NoSuchType" top: "a" }\n')
    app = make_app(str(bad))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.session is None and app.load_error is not None
        assert "NoSuchType" in app.load_error
        assert app.screen.query_one("#error-message") is not None


async def test_loading_shows_how_far_it_got(tmp_path) -> None:
    """The weights of a real caffemodel are read in chunks: the status line counts them."""
    from textual.widgets import ProgressBar

    from bpinspect.engine.net import Net
    from bpinspect.session.options import session_from_options

    from .conftest import NETS, make_options

    weights = tmp_path / "w.caffemodel"
    Net(NETS / "lrn_pool.prototxt", seed=1).save(weights)
    reading = threading.Event()
    release = threading.Event()

    def factory(options, progress):  # noqa: ANN001
        def report(what: str, done: int, total: int | None) -> None:
            progress(what, done, total)
            if what.startswith("reading ") and done and not reading.is_set():
                reading.set()  # hold the load here, as a slow disk would
                release.wait(10)
        return session_from_options(options, progress=report)

    app = BpinspectApp(make_options("lrn_pool.prototxt", weights=str(weights)),
                       session_factory=factory)
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if reading.is_set():
                break
        screen = main_screen(app)
        for _ in range(100):  # the report reaches the screen as a message, a moment later
            await pilot.pause(0.05)
            if f"reading {weights} (MB)  1/1" in screen.status.text:
                break
        bar = screen.query_one(ProgressBar)
        assert f"reading {weights} (MB)  1/1" in screen.status.text
        assert bar.total == 1 and bar.progress == 1 and screen.status.has_class("-running")
        release.set()
        await settle(pilot)
        assert app.session is not None and app.session.net.weights_source == str(weights)
        assert not screen.status.has_class("-running")


async def test_a_short_terminal_keeps_room_for_the_statistics() -> None:
    """At 110x32 the histograms get lower, so that the table still shows a layer's
    bottom and top with their data and diff rows."""
    from bpinspect.tui.widgets.blob_table import BlobTable

    app = make_app("lrn_pool.prototxt")
    async with app.run_test(size=(110, 32)) as pilot:
        await settle(pilot)
        await pilot.press("n", "n")
        await settle(pilot)
        table = main_screen(app).blob_panel.query_one(BlobTable)
        assert table.size.height >= 7  # header, then "in" + data + diff, "out" + data + diff
        assert app.main_screen.has_class("-short")
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert app.main_screen.has_class("-tall")


async def test_a_terminal_too_small_gets_a_message() -> None:
    app = make_app("lrn_pool.prototxt")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        message = screen.query_one("#too-small")
        assert message.display and not screen.query_one("#main").display
        assert "80×24" in shown(message)
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert not message.display and screen.query_one("#main").display


def test_bad_arguments_exit_before_the_app_with_code_2(tmp_path, capsys) -> None:
    from bpinspect.cli import main

    assert main([str(tmp_path / "missing.prototxt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bpinspect: ") and "missing.prototxt" in err
    assert len(err.strip().splitlines()) == 1


async def test_palette_tab_log_and_export_all(tmp_path) -> None:
    app = make_app("lrn_pool.prototxt", export_dir=str(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main_screen(app)
        # ctrl+p: every action of the footer is a command of the palette.
        titles = [c.title for c in app.get_system_commands(screen)]
        for word in ("Step", "Continue", "Back", "Break", "Conditions", "Restart", "Inject",
                     "Export", "Export all", "Log", "Stop", "Help"):
            assert any(t.startswith(word) for t in titles), (word, titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        await pilot.pause()
        # tab: layer list -> blob table -> tab bar -> the active tab's view -> layer list.
        assert screen.focused is screen.layer_list
        await pilot.press("tab")
        assert screen.focused is screen.blob_panel.table
        await pilot.press("tab")
        assert isinstance(screen.focused, Tabs)
        active = screen.tabs.active
        await pilot.press("right")  # the next tab, by keyboard
        await pilot.pause()
        assert screen.tabs.active != active
        await pilot.press("left")
        await pilot.pause()
        assert screen.tabs.active == active
        await pilot.press("tab")
        assert screen.focused is not None
        assert screen.focused not in (screen.layer_list, screen.blob_panel.table)
        assert not isinstance(screen.focused, Tabs)
        # m: the focused pane fills the screen; m again (or escape) brings the rest back.
        await pilot.press("m")
        assert screen.maximized is screen.tabs
        await pilot.press("escape")
        assert screen.maximized is None
        await pilot.press("tab")
        assert screen.focused is screen.layer_list
        await pilot.press("m")
        assert screen.maximized is screen.query_one("#left")
        await pilot.press("m")
        assert screen.maximized is None
        # l: log counts in both histograms.
        await pilot.press("n", "n")
        await settle(pilot)
        charts = list(screen.blob_panel.query("HistogramChart"))
        assert not any(c.log_counts for c in charts)
        await pilot.press("l")
        assert all(c.log_counts for c in charts)
        # E: every blob computed so far, with the manifest.
        await pilot.press("E")
        await settle(pilot)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert "manifest.json" in names
        assert "step0000-forward-data-data.data.npy" in names
        assert "step0001-forward-conv1-conv1.data.npy" in names
        np.testing.assert_array_equal(
            np.load(tmp_path / "step0001-forward-conv1-conv1.data.npy"),
            app.session.array("conv1", "data"))
        assert "exported" in screen.status.text


@pytest.mark.parametrize("key", ["n", "c", "p", "r", "b", "e", "E", "l", "i", "B", "?", "q",
                                 "f5", "f9", "f10", "f1", "tab", "escape"])
def test_every_key_of_the_issue_is_bound(key: str) -> None:
    keys = {k for b in MainScreen.BINDINGS + BpinspectApp.BINDINGS for k in b.key.split(",")}
    assert {"?": "question_mark"}.get(key, key) in keys
