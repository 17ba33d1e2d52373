"""The max-pooling argmax mask: win counts over the input plane, and one output cell's
window and winner (seed 001: backward routes each top diff to its window's winner)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from bpinspect.session.internals_view import PoolCell, PoolingView
from bpinspect.tui.formatting import fmt_num, fmt_percent, fmt_shape
from bpinspect.tui.messages import PoolCellMoved
from bpinspect.tui.widgets.heatmap import Heatmap
from bpinspect.tui.widgets.plane_pane import PlanePane


def _pair(p: tuple[int, int]) -> str:
    return f"{p[0]}×{p[1]}"


class PoolingPane(PlanePane):
    """Arrow keys move the output cell; its window is tinted, its winner marked."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1, 0)", "cell ↑", show=False, id="pool-cell-up",
                tooltip="Move the output cell up"),
        Binding("down", "move(1, 0)", "cell ↓", show=False, id="pool-cell-down",
                tooltip="Move the output cell down"),
        Binding("left", "move(0, -1)", "cell ←", show=False, id="pool-cell-left",
                tooltip="Move the output cell left"),
        Binding("right", "move(0, 1)", "cell →", show=False, id="pool-cell-right",
                tooltip="Move the output cell right"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | arrows | Move the output cell. |
    """

    DEFAULT_CSS = """
    PoolingPane > #pool-info { height: auto; }
    PoolingPane > #pool-legend { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.cell = (0, 0)
        """The output cell (y, x) whose window is shown."""
        self.top_shape: tuple[int, ...] = ()
        self.view: PoolingView | None = None
        self.pool_cell: PoolCell | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="pool-info")
        yield Static("", id="pool-legend")
        yield Heatmap(id="pool-heatmap")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "move":
            return len(self.top_shape) == 4
        return super().check_action(action, parameters)

    def action_move(self, dy: int, dx: int) -> None:
        if len(self.top_shape) != 4:
            return
        y = min(max(self.cell[0] + dy, 0), self.top_shape[2] - 1)
        x = min(max(self.cell[1] + dx, 0), self.top_shape[3] - 1)
        if (y, x) != self.cell:
            self.cell = (y, x)
            self.post_message(PoolCellMoved(y, x))

    def show(self, view: PoolingView | None, cell: PoolCell | None,
             extra: dict[str, Any], message: str = "") -> None:
        self.view, self.pool_cell = view, cell
        info = self.query_one("#pool-info", Static)
        heatmap = self.query_one(Heatmap)
        legend = self.query_one("#pool-legend", Static)
        self.top_shape = tuple(extra.get("top_shape", ()))
        if view is None:
            info.update(Text(message or "the argmax mask exists once the layer ran forward",
                             style="dim"))
            heatmap.set_plane(None)
            legend.update("")
            return
        self.set_extent(view.bottom_shape[0], view.bottom_shape[1])
        self.item, self.channel = view.n, view.c
        text = Text()
        text.append(view.layer, style="bold")
        text.append(f"  {view.method}  kernel {_pair(view.kernel)}  stride {_pair(view.stride)}"
                    f"  pad {_pair(view.pad)}   bottom {fmt_shape(view.bottom_shape)} → top "
                    f"{fmt_shape(self.top_shape)}\n")
        if view.wins is not None:
            text.append(f"item {view.n}, channel {view.c}: how many output windows chose each "
                        f"input position; never won {fmt_percent(view.never_won)}, "
                        f"most wins {view.max_wins}\n")
        else:
            text.append(f"{view.method} pooling keeps no argmax: backward spreads each top "
                        "diff evenly over its window\n", style="dim")
        if cell is not None:
            self.cell = (cell.y, cell.x)
            h0, h1, w0, w1 = cell.window
            text.append(f"output cell ({cell.y}, {cell.x})", style="bold")
            if len(self.top_shape) == 4:
                text.append(f" of {self.top_shape[2]}×{self.top_shape[3]}")
            text.append(f": window rows {h0}..{h1 - 1}, cols {w0}..{w1 - 1}")
            if cell.winner is not None:
                text.append("  winner ")
                text.append(f"({cell.winner[0]}, {cell.winner[1]})", style="bold")
            text.append(f"  top data {fmt_num(cell.value)}")
            text.append(f"  top diff {fmt_num(cell.top_diff)}" if cell.top_diff is not None
                        else "  top diff: backward has not reached it")
        text.append("\n← ↑ → ↓ output cell   [ ] channel   { } item", style="dim")
        info.update(text)
        if view.wins is not None:
            heatmap.set_plane(view.wins.astype(float))
            marks = Text("wins ")
            marks.append_text(heatmap.legend())
            marks.append("   tinted: window   marked: winner", style="dim")
            legend.update(marks)
        elif len(view.bottom_shape) == 4:  # no wins to draw: the input plane, to place the window
            heatmap.set_plane(np.zeros(view.bottom_shape[2:]))
            legend.update(Text(f"input plane {view.bottom_shape[2]}×{view.bottom_shape[3]}; "
                               "tinted: the output cell's window", style="dim"))
        heatmap.set_marks(None if cell is None else cell.window,
                          None if cell is None else cell.winner)
