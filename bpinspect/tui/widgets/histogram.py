"""A histogram of a blob's data or diff, drawn with block characters (after Sparkline).

The session computes the counts (on the device) and hands over a
:class:`~bpinspect.session.stats.Histogram`; this widget only lays the bars
out on the cells it has: one title line, bars with eighth-block tops, and an
axis line with the value range and a tick at zero.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from bpinspect.session.stats import Histogram
from bpinspect.tui.formatting import fmt_num, foreground, forget_foreground, text_strip

BLOCKS = " ▁▂▃▄▅▆▇█"


def column_values(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` spread over ``width`` columns: repeated when wider, max of groups when
    narrower (a lone outlier bin must stay visible)."""
    n = len(values)
    if n == 0 or width <= 0:
        return np.zeros(max(width, 0))
    starts = (np.arange(width) * n) // width
    if width >= n:
        return values[starts]
    return np.maximum.reduceat(values, starts)


def bar_rows(heights: np.ndarray, occupied: np.ndarray, width: int, rows: int) -> list[str]:
    """The bar area as ``rows`` strings of ``width`` characters, top row first.

    ``heights`` are the bins' bar heights, ``occupied`` whether a bin holds any value:
    such a bin gets at least one eighth of a cell, however small next to the tallest.
    """
    cols = column_values(np.asarray(heights, dtype=np.float64), width)
    hit = column_values(np.asarray(occupied, dtype=np.float64), width) > 0
    top = float(cols.max()) if cols.size else 0.0
    eighths = np.zeros(width, dtype=np.int64)
    if top > 0:
        eighths = np.rint(cols / top * rows * 8).astype(np.int64)
    eighths[hit & (eighths == 0)] = 1
    lines = []
    for r in range(rows):
        fill = np.clip(eighths - (rows - 1 - r) * 8, 0, 8)
        lines.append("".join(BLOCKS[f] for f in fill))
    return lines


def axis_line(lo: float, hi: float, width: int) -> tuple[str, int | None]:
    """The range labels under the bars, and the column of value 0 when it shows."""
    chars = [" "] * width
    zero = None
    if lo < 0 < hi and width > 0:
        zero = min(int((0 - lo) / (hi - lo) * width), width - 1)
    left, right = fmt_num(lo), fmt_num(hi)
    if len(left) + len(right) + 1 <= width:
        chars[: len(left)] = left
        chars[width - len(right):] = right
        if zero is not None and not len(left) < zero < width - len(right) - 1:
            zero = None  # under a label
    if zero is not None:
        chars[zero] = "0"
    return "".join(chars), zero


class HistogramChart(Widget):
    """Bars of a :class:`Histogram`: linear or log10(1 + count) heights."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "histogram--bar",
        "histogram--title",
        "histogram--axis",
        "histogram--zero",
        "histogram--nonfinite",
        "histogram--empty",
    }
    """
    | Class | Description |
    | :- | :- |
    | `histogram--bar` | The bars. |
    | `histogram--title` | The title line. |
    | `histogram--axis` | The value range under the bars. |
    | `histogram--zero` | The tick at value 0. |
    | `histogram--nonfinite` | The NaN/Inf count (left out of the bars). |
    | `histogram--empty` | The text shown when there is nothing to draw. |
    """

    DEFAULT_CSS = """
    HistogramChart {
        height: 8;
        min-height: 3;
    }
    HistogramChart > .histogram--bar { color: $primary; }
    HistogramChart > .histogram--title { text-style: bold; }
    HistogramChart > .histogram--axis { color: $text-muted; }
    HistogramChart > .histogram--zero { color: $accent; text-style: bold; }
    HistogramChart > .histogram--nonfinite { color: $error; text-style: bold; }
    HistogramChart > .histogram--empty { color: $text-muted; }
    """

    histogram: reactive[Histogram | None] = reactive(None, always_update=True)
    """The counts and bin edges to draw (None: nothing computed yet)."""
    log_counts: reactive[bool] = reactive(False)
    """Heights as log10(1 + count) instead of counts."""
    title: reactive[str] = reactive("")
    """What the bars are of, e.g. ``conv1 diff``."""

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self._key: tuple[object, ...] | None = None
        self._version = 0  # bumped with every new histogram
        self._strips: list[Strip] = []
        self._blank = Strip([])

    def _style(self, part: str) -> Style:
        """The colours of component class ``histogram--<part>`` (no background)."""
        return foreground(self, f"histogram--{part}")

    def _texts(self, width: int, height: int) -> list[Text]:
        title_style = self._style("title")
        head = Text(self.title, style=title_style, no_wrap=True, overflow="ellipsis")
        h = self.histogram
        if h is None:
            head.append("  not computed yet", style=self._style("empty"))
            return [head]
        if h.log != self.log_counts:
            h = dataclasses.replace(h, log=self.log_counts)
        head.append(f"  n={h.total}  {'log' if h.log else 'linear'}",
                    style=self._style("axis"))
        if h.nonfinite:
            head.append(f"  {h.nonfinite} NaN/Inf not shown",
                        style=self._style("nonfinite"))
        rows = max(height - 2, 1)
        bar_style = self._style("bar")
        lines = [head]
        lines += [Text(line, style=bar_style, no_wrap=True)
                  for line in bar_rows(h.heights, h.counts > 0, width, rows)]
        if height >= 3:
            axis, zero = axis_line(float(h.edges[0]), float(h.edges[-1]), width)
            text = Text(axis, style=self._style("axis"), no_wrap=True)
            if zero is not None:
                text.stylize(self._style("zero"), zero, zero + 1)
            lines.append(text)
        return lines

    def render_line(self, y: int) -> Strip:
        # The lines are made once per histogram and size (line API: a step repaints the
        # chart without Rich laying out a renderable).
        width, height = self.size.width, self.size.height
        key = (self._version, self.log_counts, self.title, width, height)
        if key != self._key:
            base = self.rich_style
            self._strips = [text_strip(text, width, base, self.app.console)
                            for text in self._texts(width, height)]
            self._blank = Strip([Segment(" " * width, base)], width)
            self._key = key
        return self._strips[y] if y < len(self._strips) else self._blank

    def watch_histogram(self) -> None:
        self._version += 1

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)
        self._key = None
