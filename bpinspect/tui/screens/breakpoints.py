"""The conditional breakpoints dialog: stop on NaN/Inf, on |x| > bound, on a zero diff."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Button, Checkbox, Input, Static


class BreakpointDialog(ModalScreen[dict[str, Any] | None]):
    """Returns ``{"nonfinite": bool, "bound": float | None, "zero_diff": bool}``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="conditions-cancel",
                tooltip="Close, change nothing"),
    ]

    def __init__(self, conditions: tuple[tuple[str, float | None], ...]) -> None:
        super().__init__()
        self.kinds = {kind: bound for kind, bound in conditions}

    def compose(self) -> ComposeResult:
        bound = self.kinds.get("max_abs")
        with Vertical(id="dialog"):
            yield Static(Text("Conditional breakpoints", style="bold"), classes="dialog-title")
            yield Static("Checked after every step on what it wrote (tops' data forward; "
                         "bottoms' and params' diff backward); continue stops after the step "
                         "that matched. Layer breakpoints (b) stop before a layer.",
                         classes="dialog-text")
            yield Checkbox("any NaN or Inf", "nonfinite" in self.kinds, id="cond-nonfinite")
            with Horizontal(classes="dialog-row"):
                yield Checkbox("max |x| above", "max_abs" in self.kinds, id="cond-max-abs")
                yield Input("" if bound is None else f"{bound:g}", placeholder="1e3",
                            id="cond-bound", validators=[Number(minimum=0)])
            yield Checkbox("a diff that is all zeros (the gradient vanished)",
                           "zero_diff" in self.kinds, id="cond-zero-diff")
            yield Static("", id="cond-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="primary", id="cond-ok")
                yield Button("Cancel", id="cond-cancel")

    def on_mount(self) -> None:
        self.query_one("#cond-nonfinite", Checkbox).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cond-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Changed, "#cond-bound")
    def bound_typed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#cond-max-abs", Checkbox).value = True

    @on(Input.Submitted)
    @on(Button.Pressed, "#cond-ok")
    def apply(self) -> None:
        bound = None
        if self.query_one("#cond-max-abs", Checkbox).value:
            field = self.query_one("#cond-bound", Input)
            result = field.validate(field.value)
            if not field.value.strip() or (result is not None and not result.is_valid):
                self.query_one("#cond-error", Static).update(
                    "the bound must be a number ≥ 0, e.g. 1e3")
                field.focus()
                return
            bound = float(field.value)
        self.dismiss({
            "nonfinite": self.query_one("#cond-nonfinite", Checkbox).value,
            "bound": bound,
            "zero_diff": self.query_one("#cond-zero-diff", Checkbox).value,
        })
