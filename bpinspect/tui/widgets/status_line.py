"""One line at the bottom: what just happened, or what runs now with a progress bar."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar

from bpinspect.tui.formatting import foreground, forget_foreground
from bpinspect.tui.widgets.text_view import TextView


class StatusLine(Horizontal):
    """The last message (errors in red), and a progress bar while the worker runs."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-line--error",
        "status-line--warning",
        "status-line--running",
    }
    """
    | Class | Description |
    | :- | :- |
    | `status-line--error` | A message about something that failed. |
    | `status-line--warning` | A breakpoint or condition that stopped a run. |
    | `status-line--running` | The label of the command in progress. |
    """

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $boost;
        padding: 0 1;
    }
    StatusLine > #status-text {
        width: 1fr;
        height: 1;
    }
    StatusLine > ProgressBar {
        width: 44;
        height: 1;
        visibility: hidden;
    }
    StatusLine.-running > ProgressBar {
        visibility: visible;
    }
    StatusLine > .status-line--error { color: $error; text-style: bold; }
    StatusLine > .status-line--warning { color: $warning; text-style: bold; }
    StatusLine > .status-line--running { color: $accent; }
    """

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)

    def compose(self) -> ComposeResult:
        yield TextView("", id="status-text")
        yield ProgressBar(total=1, show_eta=False, id="status-progress")

    @property
    def text(self) -> str:
        """The message shown now, as plain text."""
        return self.query_one("#status-text", TextView).plain

    def show(self, message: str, severity: str = "information") -> None:
        """Show ``message``; severity "error" or "warning" colours it."""
        style: Style | str = ""
        if severity in ("error", "warning"):
            style = foreground(self, f"status-line--{severity}")
        self.query_one("#status-text", TextView).update(Text(message, style=style))

    def start(self, label: str, total: int | None = None, bar: bool = True) -> None:
        """A command began: show ``label`` and, with ``bar``, a progress bar (indeterminate
        without ``total``). A single step goes without: showing and hiding the bar costs a
        new layout of the screen, more than most steps take."""
        if bar:
            self.add_class("-running")
            self.query_one(ProgressBar).update(total=total, progress=0)
        self.query_one("#status-text", TextView).update(
            Text(label, style=foreground(self, "status-line--running")))

    def advance(self, label: str, done: int, total: int | None) -> None:
        self.add_class("-running")
        bar = self.query_one(ProgressBar)
        bar.update(total=total, progress=done)
        self.query_one("#status-text", TextView).update(
            Text(label, style=foreground(self, "status-line--running")))

    def finish(self, message: str, severity: str = "information") -> None:
        if self.has_class("-running"):
            self.remove_class("-running")
            # A hidden indeterminate bar would go on animating (and redrawing the screen).
            self.query_one(ProgressBar).update(total=1, progress=0)
        self.show(message, severity)
