"""The conditional breakpoints dialog: stop on NaN/Inf, on |x| > bound, on a zero diff; in
training also on the loss, on the update ratio, and at iterations."""

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

from bpinspect.tui.view_data import TrainingConditionsState


def parse_iterations(text: str) -> list[int]:
    """``"100, 250 300"`` -> [100, 250, 300]; ValueError on anything else."""
    out = []
    for word in text.replace(",", " ").split():
        value = int(word)
        if value < 0:
            raise ValueError(word)
        out.append(value)
    return out


class BreakpointDialog(ModalScreen[dict[str, Any] | None]):
    """Returns ``{"nonfinite": bool, "bound": float | None, "zero_diff": bool}``, and
    for a training session ``"training": {"loss_nonfinite": bool, "loss_above": float |
    None, "ratio_above": float | None, "iterations": [int, ...]}``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="conditions-cancel",
                tooltip="Close, change nothing"),
    ]

    def __init__(self, conditions: tuple[tuple[str, float | None], ...],
                 training: TrainingConditionsState | None = None) -> None:
        super().__init__()
        self.kinds = {kind: bound for kind, bound in conditions}
        self.training = training
        """The training session's conditions now (None: not training)."""

    def compose(self) -> ComposeResult:
        bound = self.kinds.get("max_abs")
        with Vertical(id="dialog", classes="" if self.training is None else "-training"):
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
            if self.training is not None:
                yield from self._compose_training(self.training)
            yield Static("", id="cond-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="primary", id="cond-ok")
                yield Button("Cancel", id="cond-cancel")

    def _compose_training(self, t: TrainingConditionsState) -> ComposeResult:
        yield Static(Text.assemble(("Training: ", "bold"), "the loss once a pass's loss "
                                   "layers ran, each param's ‖Δw‖/‖w‖ after the update, an "
                                   "iteration before it begins."), classes="dialog-section")
        yield Checkbox("loss NaN or Inf (says where the first non-finite value appeared)",
                       t.loss_nonfinite, id="cond-loss-nonfinite")
        with Horizontal(classes="dialog-row"):
            yield Checkbox("loss above", t.loss_above is not None, id="cond-loss-above")
            yield Input("" if t.loss_above is None else f"{t.loss_above:g}",
                        placeholder="10", id="cond-loss-bound", validators=[Number()])
        with Horizontal(classes="dialog-row"):
            yield Checkbox("update ratio above", t.ratio_above is not None,
                           id="cond-ratio-above")
            yield Input("" if t.ratio_above is None else f"{t.ratio_above:g}",
                        placeholder="0.01", id="cond-ratio-bound",
                        validators=[Number(minimum=0)])
        with Horizontal(classes="dialog-row"):
            yield Static("stop at iterations", classes="dialog-label")
            yield Input(" ".join(str(i) for i in t.iterations), placeholder="100 250",
                        id="cond-iterations", classes="wide")

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

    @on(Input.Changed, "#cond-loss-bound")
    def loss_bound_typed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#cond-loss-above", Checkbox).value = True

    @on(Input.Changed, "#cond-ratio-bound")
    def ratio_bound_typed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#cond-ratio-above", Checkbox).value = True

    def _bound(self, checkbox: str, field_id: str, what: str) -> tuple[bool, float | None]:
        """(ok, the bound or None when unchecked); shows what is wrong when not ok."""
        if not self.query_one(checkbox, Checkbox).value:
            return True, None
        field = self.query_one(field_id, Input)
        result = field.validate(field.value)
        if not field.value.strip() or (result is not None and not result.is_valid):
            self.query_one("#cond-error", Static).update(what)
            field.focus()
            return False, None
        return True, float(field.value)

    @on(Input.Submitted)
    @on(Button.Pressed, "#cond-ok")
    def apply(self) -> None:
        ok, bound = self._bound("#cond-max-abs", "#cond-bound",
                                "the bound must be a number ≥ 0, e.g. 1e3")
        if not ok:
            return
        result: dict[str, Any] = {
            "nonfinite": self.query_one("#cond-nonfinite", Checkbox).value,
            "bound": bound,
            "zero_diff": self.query_one("#cond-zero-diff", Checkbox).value,
        }
        if self.training is not None:
            ok, loss_above = self._bound("#cond-loss-above", "#cond-loss-bound",
                                         "the loss bound must be a number, e.g. 10")
            if not ok:
                return
            ok, ratio_above = self._bound("#cond-ratio-above", "#cond-ratio-bound",
                                          "the ratio bound must be a number > 0, e.g. 0.01")
            if not ok:
                return
            field = self.query_one("#cond-iterations", Input)
            try:
                iterations = parse_iterations(field.value)
            except ValueError:
                self.query_one("#cond-error", Static).update(
                    "iterations: whole numbers ≥ 0, separated by spaces or commas")
                field.focus()
                return
            result["training"] = {
                "loss_nonfinite": self.query_one("#cond-loss-nonfinite", Checkbox).value,
                "loss_above": loss_above,
                "ratio_above": ratio_above,
                "iterations": iterations,
            }
        self.dismiss(result)
