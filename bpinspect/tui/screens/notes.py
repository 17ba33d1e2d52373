"""Every note the session made (``N``), oldest first, in a scrolling list."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class NotesScreen(ModalScreen[None]):
    """The notes, numbered; escape, enter or N closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,N", "close", "close", id="notes-close", tooltip="Close"),
    ]

    def __init__(self, notes: list[str]) -> None:
        super().__init__()
        self.notes = list(notes)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="notes"):
            yield Static(Text(f"notes ({len(self.notes)}; escape closes)", style="bold"),
                         classes="dialog-title")
            with VerticalScroll(id="notes-body"):
                if not self.notes:
                    yield Static("No notes: nothing was upgraded, filled or seeded.",
                                 classes="dialog-text")
                for i, note in enumerate(self.notes, 1):
                    yield Static(Text(f"{i}. {note}"), classes="dialog-text note")

    def action_close(self) -> None:
        self.dismiss(None)
