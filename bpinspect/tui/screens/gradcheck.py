"""The numerical gradient check of one layer at its real shapes: per bottom and param,
the coordinates checked and the largest relative error, then analytic vs numeric at
every sampled coordinate, failures marked (``bpinspect check``'s numbers, from
session.netcheck)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from bpinspect.tui.formatting import fmt_num

FAIL = Text("FAIL", style="bold reverse")


def _index(coord: Any) -> str:
    return "(" + ", ".join(str(int(c)) for c in coord) + ")"


def check_table(check: Any) -> Table:
    """A row per bottom and param of a netcheck.LayerCheck."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title in ("", "checked", "max rel error", "worst at", "analytic", "numeric", ""):
        table.add_column(title, justify="left" if title in ("", "worst at") else "right")
    for r in check.results:
        worst = "" if r.worst is None else _index(r.worst)
        table.add_row(r.what, str(r.checked), f"{r.max_rel_error:.2e}", worst,
                      fmt_num(r.analytic_at_worst), fmt_num(r.numeric_at_worst),
                      Text("ok") if r.passed else FAIL)
    return table


def coords_table(check: Any) -> Table:
    """A row per sampled coordinate of every bottom and param: analytic, numeric and
    their relative error, a coordinate above the threshold marked FAIL."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title in ("", "index", "analytic", "numeric", "rel error", ""):
        table.add_column(title, justify="left" if title in ("", "index") else "right")
    for r in check.results:
        for k, coord in enumerate(r.coords):
            table.add_row(r.what if k == 0 else "", _index(coord), fmt_num(r.analytic[k]),
                          fmt_num(r.numeric[k]), f"{r.rel_errors[k]:.2e}",
                          "" if r.coord_passed(k) else FAIL)
    return table


class GradCheckScreen(ModalScreen[None]):
    """The outcome of ``g`` on the selected layer."""

    DEFAULT_CSS = """
    GradCheckScreen {
        align: center middle;
    }
    #gradcheck-coords {
        height: auto;
        max-height: 20;
        scrollbar-gutter: stable;
    }
    """

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
                yield Static(check_table(c), id="gradcheck-table", classes="dialog-text")
                with VerticalScroll(id="gradcheck-coords"):
                    yield Static(coords_table(c), id="gradcheck-coords-table")
                verdict = "passed" if c.passed else "FAILED"
                yield Static(f"{verdict}: largest relative error {c.max_rel_error:.2e}",
                             id="gradcheck-verdict", classes="dialog-section")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="gradcheck-close")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    @on(Button.Pressed, "#gradcheck-close")
    def action_close(self) -> None:
        self.dismiss(None)
