"""An error shown with its details (a bug's traceback, or a Python layer's own frames);
the app keeps running."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorModal(ModalScreen[None]):
    """A title, one line, and the traceback: a bug's to report, or the user's Python
    layer's own frames."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "close", id="error-close", tooltip="Close"),
    ]

    def __init__(self, title: str, message: str, details: str = "", *,
                 quit_on_close: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.details = details
        self.quit_on_close = quit_on_close

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(self.message, id="error-message", classes="dialog-text")
            if self.details:
                with VerticalScroll(id="error-details"):
                    yield Static(Text(self.details), classes="dialog-help")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Quit" if self.quit_on_close else "Close", variant="error",
                             id="error-close")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    @on(Button.Pressed, "#error-close")
    def action_close(self) -> None:
        if self.quit_on_close:
            self.app.exit(2)
        else:
            self.dismiss(None)
