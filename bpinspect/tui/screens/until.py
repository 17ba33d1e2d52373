"""The "until iteration" dialog of a training session: which iteration to run to."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Button, Input, Static


class UntilDialog(ModalScreen[int | None]):
    """Returns the iteration to run to (``iteration + 1 .. max_iter``), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="until-cancel",
                tooltip="Close, run nothing"),
    ]

    def __init__(self, iteration: int, max_iter: int) -> None:
        super().__init__()
        self.iteration = iteration
        """The iteration being run now."""
        self.max_iter = max_iter

    @property
    def lowest(self) -> int:
        return min(self.iteration + 1, self.max_iter)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text("Run until iteration", style="bold"), classes="dialog-title")
            yield Static(f"Runs whole iterations (forward, backward, update, and the tests "
                         f"when due, as Caffe's solver) and stops at the start of iteration N. "
                         f"Layer breakpoints are passed over; the conditions (B) still stop "
                         f"it. escape stops it between two layers. Now in iteration "
                         f"{self.iteration}; max_iter {self.max_iter}.",
                         classes="dialog-text")
            yield Input(str(self.lowest), placeholder=f"{self.lowest}…{self.max_iter}",
                        id="until-iteration", type="integer",
                        validators=[Integer(minimum=self.lowest, maximum=self.max_iter)])
            yield Static("", id="until-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Run", variant="primary", id="until-ok")
                yield Button("Cancel", id="until-cancel")

    def on_mount(self) -> None:
        field = self.query_one("#until-iteration", Input)
        field.focus()
        field.select_all()  # typing replaces the suggestion; enter takes it

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#until-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#until-ok")
    def run(self) -> None:
        field = self.query_one("#until-iteration", Input)
        result = field.validate(field.value)
        if not field.value.strip() or (result is not None and not result.is_valid):
            self.query_one("#until-error", Static).update(
                f"an iteration from {self.lowest} to {self.max_iter}")
            field.focus()
            return
        self.dismiss(int(field.value))
