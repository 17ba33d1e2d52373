"""The loss over iterations, its smoothed value and the test outputs, as a terminal plot.

A ``PlotextPlot`` (textual-plotext) redrawn when the series change. The
numbers are the session's (``IterationLog.series`` and ``test_series``); this
only chooses what to draw where: the train loss, the smoothed loss and any
test output named like a loss on the left axis, the other test outputs
(accuracy, ...) on the right one. Non-finite values cannot be drawn: they are
left out, and the title says how many.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from bpinspect.tui.view_data import TrainingData

RGB = tuple[int, int, int]
# Fixed colours (snapshots must not depend on a palette), the same in the plot and in
# its legend line: plotext's own legend box would sit over the start of the loss curve.
LOSS_COLOR: RGB = (0, 190, 220)
SMOOTHED_COLOR: RGB = (255, 150, 30)
TEST_COLORS: tuple[RGB, ...] = ((90, 200, 90), (220, 90, 220), (230, 210, 60), (230, 70, 70),
                                (90, 130, 255), (200, 200, 200))


def finite_points(xs: Sequence[int], ys: Sequence[float]) -> tuple[list[int], list[float], int]:
    """The points that can be drawn, and how many were left out (NaN, Inf)."""
    keep_x, keep_y, dropped = [], [], 0
    for x, y in zip(xs, ys, strict=True):
        if math.isfinite(y):
            keep_x.append(x)
            keep_y.append(y)
        else:
            dropped += 1
    return keep_x, keep_y, dropped


def iteration_ticks(first: int, last: int, most: int = 6) -> list[int]:
    """Whole iterations to label the x axis with (plotext would label 4.8, 9.5, ...)."""
    span = max(last - first, 1)
    step = max(1, -(-span // (most - 1)))
    ticks = list(range(first, last + 1, step))
    if ticks[-1] != last:
        ticks.append(last)
    return ticks


class LossPlot(PlotextPlot):
    """Loss and smoothed loss (left axis) and the tests' outputs, over iterations."""

    DEFAULT_CSS = """
    LossPlot {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    data: reactive[TrainingData | None] = reactive(None)
    """The training tab's numbers (None: nothing to draw yet)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.legend: list[tuple[str, RGB, str]] = []
        """What is drawn: (series name, colour, "left" | "right" axis)."""
        self.dropped = 0
        """Values not drawn (NaN, Inf)."""

    def legend_text(self) -> Text:
        """``▪ loss  ▪ smoothed  ▪ test0:accuracy (right axis)`` in the plot's colours."""
        text = Text()
        if self.data is None or not self.data.loss[0]:
            return text
        first, last = self.data.loss[0][0], self.data.loss[0][-1]
        text.append(f"iterations {first}…{last} ", style="dim")
        for name, color, side in self.legend:
            text.append(" ▪", style=Style(color=Color.from_rgb(*color), bold=True))
            text.append(name)
            if side == "right":
                text.append(" (right)", style="dim")
        if self.dropped:
            text.append(f"  {self.dropped} NaN/Inf not drawn", style="bold red")
        return text

    EMPTY = ("The loss over iterations appears here once an iteration has finished: n "
             "steps (the update is the last step of an iteration), c continues, u runs to an "
             "iteration.")

    def watch_data(self, data: TrainingData | None) -> None:
        self.replot(data)

    def render(self) -> RenderResult:
        if self.data is None or not self.data.loss[0]:
            return Text(self.EMPTY, style="dim")
        return super().render()

    def replot(self, data: TrainingData | None) -> None:
        plt = self.plt
        plt.clear_figure()
        self.legend = []
        self.dropped = 0
        if data is None or not data.loss[0]:
            self.refresh()
            return
        plt.xlabel("iteration")
        # The smoothed loss first: where it equals the loss (Caffe's average_loss 1), the
        # loss drawn over it stays visible.
        series = [("smoothed", *data.smoothed_loss, SMOOTHED_COLOR, "left"),
                  ("loss", *data.loss, LOSS_COLOR, "left")]
        for k, (name, txs, tys) in enumerate(data.tests):
            side = "left" if "loss" in name.lower() else "right"
            series.append((name, txs, tys, TEST_COLORS[k % len(TEST_COLORS)], side))
        for name, sxs, sys_, color, side in series:
            xs, ys, lost = finite_points(sxs, sys_)
            self.dropped += lost
            if not xs:
                continue
            marker = "braille" if name in ("loss", "smoothed") else "dot" if len(xs) > 1 \
                else "hd"
            plt.plot(xs, ys, color=color, marker=marker, yside=side)
            self.legend.append((name, color, side))
        if len(self.legend) > 1 and self.legend[0][0] == "smoothed":  # the loss first
            self.legend[0], self.legend[1] = self.legend[1], self.legend[0]
        first, last = data.loss[0][0], data.loss[0][-1]
        plt.xlim(first, max(last, first + 1))
        plt.xticks(iteration_ticks(first, last))
        self.refresh()
