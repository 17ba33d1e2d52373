"""The dropout mask of one batch item: which units forward kept (and backward lets through)."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from bpinspect.session.internals_view import DropoutView
from bpinspect.tui.formatting import fmt_num, fmt_percent, fmt_shape
from bpinspect.tui.widgets.heatmap import Heatmap
from bpinspect.tui.widgets.plane_pane import PlanePane


def near_square(plane: np.ndarray) -> np.ndarray:
    """A (1, N) row of units laid out as rows of a divisor of N near sqrt(N), for the eye."""
    if plane.shape[0] != 1:
        return plane
    n = plane.shape[1]
    width = next(w for w in range(math.isqrt(n), 0, -1) if n % w == 0)
    return plane.reshape(n // width, width) if width > 1 else plane


class DropoutPane(PlanePane):
    """Kept units in the ramp's high colour, dropped ones in its low colour."""

    DEFAULT_CSS = """
    DropoutPane > #dropout-info { height: auto; }
    DropoutPane > #dropout-legend { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="dropout-info")
        yield Static("", id="dropout-legend")
        yield Heatmap(id="dropout-heatmap")

    def show(self, view: DropoutView | None, batch: int, message: str = "") -> None:
        info = self.query_one("#dropout-info", Static)
        heatmap = self.query_one(Heatmap)
        legend = self.query_one("#dropout-legend", Static)
        if view is None:
            info.update(Text(message or "the mask exists once the layer ran forward",
                             style="dim"))
            heatmap.set_plane(None)
            legend.update("")
            return
        self.set_extent(batch, 1)
        self.item = view.n
        text = Text()
        text.append(view.layer, style="bold")
        text.append(f"  phase {view.phase}  dropout_ratio {view.ratio:g}  "
                    f"scale 1/(1 − ratio) = {fmt_num(view.scale)}\n")
        if view.kept_fraction is None or view.plane is None:
            text.append("TEST phase: Dropout is the identity, there is no mask "
                        "(run with --phase train to see one)", style="dim")
            info.update(text)
            heatmap.set_plane(None)
            legend.update("")
            return
        text.append(f"kept {fmt_percent(view.kept_fraction)} of the units of the batch; "
                    "backward multiplies the top diff by the same mask\n")
        plane = near_square(view.plane)
        text.append(f"item {view.n}: mask {fmt_shape(view.plane.shape)}"
                    + (f" shown as {fmt_shape(plane.shape)}" if plane is not view.plane else "")
                    + "   { } item", style="dim")
        info.update(text)
        heatmap.set_plane(plane, (0.0, view.scale))
        marks = Text("mask ")
        marks.append_text(heatmap.legend())
        legend.update(marks)
