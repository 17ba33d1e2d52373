"""!: the Python console, typed into with the Pilot: echo, names, blob() at the viewed
step, an exception, history, an interrupted loop, closing, and stepping afterwards."""

from __future__ import annotations

import time

from textual.pilot import Pilot
from textual.widgets import RichLog

from bpinspect.tui.screens.console import ConsoleScreen, HistoryInput

from .conftest import make_app
from .test_app import SIZE, select_layer, settle, shown


def output(app) -> str:
    return "\n".join(strip.text.rstrip() for strip in
                     app.screen.query_one("#console-output", RichLog).lines)


async def type_line(pilot: Pilot, text: str) -> None:
    await pilot.press(*text, "enter")
    await settle(pilot)


async def test_console_evaluates_on_the_viewed_step_and_survives_errors() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "n")  # data, conv1, relu1 (in place on conv1)
        await settle(pilot)
        await select_layer(pilot, "conv1")
        await pilot.press("exclamation_mark")
        await settle(pilot)
        assert isinstance(app.screen, ConsoleScreen)

        await type_line(pilot, "x = 6 * 7")
        await type_line(pilot, "print('twice', x * 2); x + 1")
        assert output(app).splitlines() == [">>> x = 6 * 7",
                                            ">>> print('twice', x * 2); x + 1",
                                            "twice 84", "43"]
        # conv1's top as conv1's forward wrote it (what the blob table shows), not the
        # live array that relu1 has since rectified in place.
        assert (app.session.net.blobs["conv1"].data >= 0).all()
        await type_line(pilot, "bool(blob('conv1').min() < 0), blob('conv1').shape")
        assert output(app).splitlines()[-1] == "(True, (2, 8, 9, 9))"

        await type_line(pilot, "1 / 0")
        lines = output(app).splitlines()
        assert lines[-1] == "ZeroDivisionError: division by zero"
        error = lines[lines.index(">>> 1 / 0") + 1:]
        assert error[:3] == ["Traceback (most recent call last):",
                             '  File "<console #4>", line 1, in <module>', "    1 / 0"]
        assert "bpinspect" not in "\n".join(error)  # the user's frames only
        await type_line(pilot, "x")
        assert output(app).splitlines()[-1] == "42"  # names outlive the error

        line = app.screen.query_one(HistoryInput)
        await pilot.press("up")
        assert line.value == "x"
        await pilot.press("up")
        assert line.value == "1 / 0"
        await pilot.press("down", "down")
        assert line.value == ""

        # A step taken from the console: the screen behind follows the session.
        cursor = app.session.cursor
        await type_line(pilot, "session.step().step.label")
        assert app.session.cursor == cursor + 1
        assert app.main_screen.header_info.cursor == cursor + 1


async def test_escape_interrupts_a_long_loop_then_closes_and_the_app_steps() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("exclamation_mark")
        await pilot.press(*"while True: pass", "enter")
        await pilot.pause(0.3)
        assert app.busy  # still looping: it would never end by itself
        started = time.perf_counter()
        await pilot.press("escape")
        await settle(pilot)
        assert time.perf_counter() - started < 2.0
        assert isinstance(app.screen, ConsoleScreen)  # the first escape only interrupts
        assert output(app).splitlines()[-1] == "interrupted"
        await type_line(pilot, "sum(i for i in range(10))")
        assert output(app).splitlines()[-1] == "45"

        await pilot.press("escape")  # nothing runs: it closes
        await settle(pilot)
        assert not isinstance(app.screen, ConsoleScreen)
        cursor = app.session.cursor
        await pilot.press("n")
        await settle(pilot)
        assert app.session.cursor == cursor + 1

        await pilot.press("exclamation_mark")  # again: the history is kept
        await pilot.press("up")
        assert app.screen.query_one(HistoryInput).value == "sum(i for i in range(10))"
        await pilot.press("ctrl+u", "ctrl+d")  # an empty line: ctrl+d closes
        await settle(pilot)
        assert not isinstance(app.screen, ConsoleScreen)

        await pilot.press("question_mark")  # the help lists the key
        await settle(pilot)
        rows = shown(app.screen.query_one("#help-keys")).splitlines()
        assert any(r.split()[:2] == ["!", "console"] for r in rows if r.strip())
