"""One param's update ratio ‖Δw‖/‖w‖ over iterations, on a log scale, against 1e-3.

The ratio of a healthy layer stays near 1e-3 (the rule of thumb of CS231n and
of Caffe's users): far above it the rate is too high for that layer, far below
it the layer barely learns. The session gives the numbers (``ParamRow.history``);
this draws ``log10`` of them on a linear axis labelled in powers of ten (plotext's
own log scale cannot take the reference line), and leaves out what a log cannot
show (zero, NaN, Inf), saying how many.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from bpinspect.tui.view_data import ParamRow
from bpinspect.tui.widgets.loss_plot import iteration_ticks

RATIO_COLOR = (90, 200, 90)
HEALTHY_COLOR = (120, 120, 120)
HEALTHY = -3.0  # log10 of the usual ratio


def log_points(xs: tuple[int, ...], ys: tuple[float, ...]) -> tuple[list[int], list[float], int]:
    """(iterations, log10 ratios) that can be drawn, and how many could not."""
    keep_x, keep_y = [], []
    for x, y in zip(xs, ys, strict=True):
        if math.isfinite(y) and y > 0:
            keep_x.append(x)
            keep_y.append(math.log10(y))
    return keep_x, keep_y, len(xs) - len(keep_x)


def decade_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Whole powers of ten from below ``lo`` to above ``hi``, labelled ``1e-3``."""
    first, last = math.floor(lo), math.ceil(hi)
    if first == last:
        last += 1
    ticks = [float(k) for k in range(first, last + 1)]
    return ticks, [f"1e{int(k)}" for k in ticks]


class RatioPlot(PlotextPlot):
    """The selected param's ratio per iteration, and the 1e-3 line."""

    DEFAULT_CSS = """
    RatioPlot {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    row: reactive[ParamRow | None] = reactive(None)
    """The param whose ratios are drawn (None: nothing yet)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.dropped = 0

    def watch_row(self, row: ParamRow | None) -> None:
        self.replot(row)

    def render(self) -> RenderResult:
        if self.row is None or not self.row.history[0]:
            return Text("The update ratio of the param selected in the table appears here "
                        "once an iteration has finished.", style="dim")
        return super().render()

    def replot(self, row: ParamRow | None) -> None:
        plt = self.plt
        plt.clear_figure()
        self.dropped = 0
        if row is None or not row.history[0]:
            self.refresh()
            return
        xs, ys, self.dropped = log_points(*row.history)
        title = f"‖Δw‖/‖w‖ of {row.param} (log); grey: 1e-3"
        if self.dropped:
            title += f"; {self.dropped} zero/NaN/Inf not drawn"
        plt.title(title)
        plt.xlabel("iteration")
        first, last = row.history[0][0], row.history[0][-1]
        plt.xlim(first, max(last, first + 1))
        plt.xticks(iteration_ticks(first, last))
        plt.hline(HEALTHY, color=HEALTHY_COLOR)
        if xs:
            plt.plot(xs, ys, color=RATIO_COLOR, marker="braille" if len(xs) > 1 else "hd")
            lo, hi = min(min(ys), HEALTHY), max(max(ys), HEALTHY)
        else:
            lo, hi = HEALTHY - 1, HEALTHY + 1
        ticks, labels = decade_ticks(lo, hi)
        plt.ylim(ticks[0], ticks[-1])
        plt.yticks(ticks, labels)
        self.refresh()
