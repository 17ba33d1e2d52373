"""The numerical gradient check of one layer at its real shapes: per bottom and param,
the coordinates checked, the largest relative error, and analytic vs numeric at the
worst sampled coordinate (``bpinspect check``'s numbers, from session.netcheck)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from bpinspect.tui.formatting import fmt_num


def check_table(check: Any) -> Table:
    """A row per bottom and param of a netcheck.LayerCheck."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title in ("", "checked", "max rel error", "worst at", "analytic", "numeric", ""):
        table.add_column(title, justify="left" if title in ("", "worst at") else "right")
    for r in check.results:
        ok = Text("ok") if r.passed else Text("FAIL", style="bold reverse")
        worst = "" if r.worst is None else "(" + ", ".join(str(int(c)) for c in r.worst) + ")"
        table.add_row(r.what, str(r.checked), f"{r.max_rel_error:.2e}", worst,
                      fmt_num(r.analytic_at_worst), fmt_num(r.numeric_at_worst), ok)
    return table


class GradCheckScreen(ModalScreen[None]):
    """The outcome of ``g`` on the selected layer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "close", id="gradcheck-close", tooltip="Close"),
    ]

    def __init__(self, check: Any, eps: float, threshold: float) -> None:
        super().__init__()
        self.check = check
        """The netcheck.LayerCheck shown."""
        self.eps = eps
        self.threshold = threshold

    def compose(self) -> ComposeResult:
        c = self.check
        with Vertical(id="dialog"):
            yield Static(Text(f"gradient check of {c.layer} ({c.type})", style="bold"),
                         classes="dialog-title")
            about = (f"float64 central differences at the layer's real bottoms and params, "
                     f"h = {self.eps:g}·max(1, |x|), threshold {self.threshold:g}; "
                     f"{c.kinks} coordinate(s) at a kink left out")
            yield Static(Text(about, style="dim"), classes="dialog-text")
            if c.note:
                yield Static(c.note, id="gradcheck-note", classes="dialog-text")
            else:
                yield Static(check_table(c), id="gradcheck-table")
                verdict = "passed" if c.passed else "FAILED"
                yield Static(f"{verdict}: largest relative error {c.max_rel_error:.2e}",
                             id="gradcheck-verdict", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="gradcheck-close")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    @on(Button.Pressed, "#gradcheck-close")
    def action_close(self) -> None:
        self.dismiss(None)
