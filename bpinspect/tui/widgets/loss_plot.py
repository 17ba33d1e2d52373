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

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from bpinspect.tui.view_data import TrainingData

# Fixed colours, in the order of the series (snapshots must not depend on a palette).
TEST_COLORS = ("green", "magenta", "yellow", "red", "blue", "white")


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
        if data is None or not data.loss[0]:
            self.refresh()
            return
        plt.xlabel("iteration")
        dropped = 0
        xs, ys, lost = finite_points(*data.loss)
        dropped += lost
        if xs:
            plt.plot(xs, ys, label="loss", color="cyan", marker="braille")
        xs, ys, lost = finite_points(*data.smoothed_loss)
        dropped += lost
        if xs:
            plt.plot(xs, ys, label="smoothed", color="orange", marker="braille")
        right = False
        for k, (name, txs, tys) in enumerate(data.tests):
            xs, ys, lost = finite_points(txs, tys)
            dropped += lost
            if not xs:
                continue
            side = "left" if "loss" in name.lower() else "right"
            right = right or side == "right"
            plt.plot(xs, ys, label=name, color=TEST_COLORS[k % len(TEST_COLORS)],
                     marker="dot" if len(xs) > 1 else "hd", yside=side)
        first, last = data.loss[0][0], data.loss[0][-1]
        plt.xlim(first, max(last, first + 1))
        plt.xticks(iteration_ticks(first, last))
        title = f"loss over iterations {first}…{last}"
        if dropped:
            title += f"  ({dropped} NaN/Inf values not drawn)"
        if right:
            title += "   tests ▸ right axis"
        plt.title(title)
        self.refresh()
