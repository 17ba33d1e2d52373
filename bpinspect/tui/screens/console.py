"""``!``: a Python console on the live blobs, over the lower part of the screen.

An input line with history (up / down recall earlier inputs) and the output in a
scrolling pane. Each input is a Command for the session worker
(``BpinspectApp._do_console`` runs it through session.console), so a long input
never freezes the screen: escape interrupts it, and escape with nothing running
(or ctrl+d on an empty line, the REPL's end of input) closes the console.
``blob(name)`` and ``diff(name)`` read the step the blob table shows
(``viewed_steps``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, RichLog, Static

from bpinspect.tui import messages as msg

if TYPE_CHECKING:
    from bpinspect.tui.app import BpinspectApp

MAX_LINES = 5000  # of the output pane; older lines scroll away
PROMPT = ">>> "


def viewed_steps(view: Any) -> dict[tuple[str, int | None, str], int | None]:
    """(blob or layer, param, kind) -> the step of the value the blob table shows, for
    the selected layer's blobs (a view.ViewData; values the table has none of are left
    out). An in-place blob is both a bottom and a top: its data as the layer's forward
    wrote it (the top), its diff as the layer's backward wrote it (the bottom)."""
    panel = view.panel if view is not None else None
    steps: dict[tuple[str, int | None, str], int | None] = {}
    if panel is None:
        return steps
    for e in panel.entries:  # bottoms, then tops, then params
        if e.data is not None:
            steps[(e.name, e.param, "data")] = e.data_step
        if e.diff is not None:
            steps.setdefault((e.name, e.param, "diff"), e.diff_step)
    return steps


class HistoryInput(Input):
    """The input line: up / down walk through earlier inputs; ctrl+d on an empty line
    closes the console (elsewhere it deletes right, as in any input)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "previous input", show=False),
        Binding("down", "history(1)", "next input", show=False),
        Binding("ctrl+d", "end_or_delete", "close", show=False),
    ]

    def __init__(self, history: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history
        """Every input so far, oldest first (shared: it outlives the screen)."""
        self.position = len(history)  # len(history): the new line being typed
        self._draft = ""

    def remember(self, source: str) -> None:
        if not self.history or self.history[-1] != source:
            self.history.append(source)
        self.position = len(self.history)
        self._draft = ""

    def action_history(self, delta: int) -> None:
        if self.position == len(self.history):
            self._draft = self.value
        position = min(max(self.position + delta, 0), len(self.history))
        if position == self.position:
            return
        self.position = position
        self.value = self._draft if position == len(self.history) else self.history[position]
        self.cursor_position = len(self.value)

    def action_end_or_delete(self) -> None:
        if self.value:
            self.action_delete_right()
        else:
            self.screen.action_close()  # type: ignore[attr-defined]


class ConsoleScreen(ModalScreen[None]):
    """The console: what ran and what it said, above the input line."""

    DEFAULT_CSS = """
    ConsoleScreen {
        align: center bottom;
    }
    #console-dialog {
        width: 100%;
        height: 60%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    #console-output {
        height: 1fr;
    }
    #console-input {
        margin: 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "interrupt_or_close", "interrupt / close", id="console-close",
                tooltip="Interrupt the input that runs; with nothing running, close"),
    ]

    @property
    def bpinspect(self) -> BpinspectApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        app = self.bpinspect
        layer = getattr(getattr(app.main_screen.view, "request", None), "layer", None)
        at = f" (the blob table's steps of {layer})" if layer else ""
        with Vertical(id="console-dialog") as dialog:
            dialog.border_title = "Python console"
            yield Static(Text(f"net, session, np; blob(name), diff(name): NumPy copies at "
                              f"the step viewed{at}, a param as blob('conv1#0'). enter runs, "
                              "↑ ↓ recall, escape interrupts or closes, ctrl+d closes",
                              style="dim"), id="console-help")
            yield RichLog(id="console-output", max_lines=MAX_LINES, wrap=True,
                          markup=False, highlight=False)
            yield HistoryInput(app.console_history, id="console-input", placeholder=PROMPT)

    def on_mount(self) -> None:
        self.query_one(HistoryInput).focus()

    @property
    def output(self) -> RichLog:
        return self.query_one("#console-output", RichLog)

    @on(Input.Submitted, "#console-input")
    def run_input(self, event: Input.Submitted) -> None:
        from bpinspect.tui.app import Command

        source = event.value
        line = self.query_one(HistoryInput)
        line.value = ""
        if not source.strip():
            return
        line.remember(source)
        self.output.write(Text(PROMPT + source, style="bold"))
        app = self.bpinspect
        app.submit(Command("console", "console (escape interrupts)", {
            "source": source, "viewed": viewed_steps(app.main_screen.view), "screen": self,
        }, on_error=self._failed))

    def _failed(self, message: str) -> None:
        self.output.write(Text(message, style="red"))

    def on_console_evaluated(self, event: msg.ConsoleEvaluated) -> None:
        if event.output:
            style = {"error": "red", "interrupted": "yellow"}.get(event.status, "")
            self.output.write(Text(event.output, style=style))

    def action_interrupt_or_close(self) -> None:
        if self.bpinspect.interrupt():
            self.output.write(Text("interrupting …", style="yellow"))
        else:
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)
