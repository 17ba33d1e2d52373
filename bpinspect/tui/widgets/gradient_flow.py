"""Every layer's data and diff L2 norms as bars: vanishing or exploding gradients at a glance.

The norms come from ``Session.gradient_flow()``; bars are on a log10 scale
(norms span many orders of magnitude), each column scaled to whole decades
of its own range. A diff norm of exactly zero is flagged: no gradient
reached that layer. A line-API ScrollView whose lines are cached by content,
so a step redraws the one or two rows it changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bpinspect.session.views import FlowRow
from bpinspect.tui.formatting import fmt_num, foreground, forget_foreground, text_strip

EIGHTHS = " ▏▎▍▌▋▊▉█"
NAME_WIDTH = 16
VALUE_WIDTH = 10

Span = tuple[float, float]


def log_range(values: Sequence[float | None]) -> Span | None:
    """The decades that hold every finite positive value: (floor(log10 min),
    ceil(log10 max)), at least one decade wide, so the smallest norm keeps a bar."""
    logs = [math.log10(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not logs:
        return None
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    return float(lo), float(max(hi, lo + 1))


def flow_bar(value: float, span: Span, width: int) -> str:
    """A left-aligned bar of ``width`` cells in eighths: log10(value) placed in ``span``,
    never shorter than one eighth for a positive value."""
    lo, hi = span
    frac = 1.0 if hi <= lo else (math.log10(value) - lo) / (hi - lo)
    eighths = max(1, round(frac * width * 8))
    full, rest = divmod(min(eighths, width * 8), 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def _scale_title(what: str, span: Span | None) -> str:
    if span is None:
        return what
    return f"{what}, log 1e{span[0]:.0f}…1e{span[1]:.0f}"


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


class GradientFlow(ScrollView, can_focus=True):
    """One line per layer top: its data L2 norm and the diff L2 norm it received."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "gradient-flow--header",
        "gradient-flow--data",
        "gradient-flow--diff",
        "gradient-flow--zero",
        "gradient-flow--nonfinite",
        "gradient-flow--pending",
    }
    """
    | Class | Description |
    | :- | :- |
    | `gradient-flow--header` | The column titles. |
    | `gradient-flow--data` | Data norm bars. |
    | `gradient-flow--diff` | Diff norm bars. |
    | `gradient-flow--zero` | A diff norm of zero (no gradient arrived). |
    | `gradient-flow--nonfinite` | A NaN or Inf norm. |
    | `gradient-flow--pending` | Not computed yet in this pass. |
    """

    DEFAULT_CSS = """
    GradientFlow {
        height: 1fr;
        scrollbar-gutter: stable;
    }
    GradientFlow > .gradient-flow--header { color: $text-muted; text-style: bold; }
    GradientFlow > .gradient-flow--data { color: $primary; }
    GradientFlow > .gradient-flow--diff { color: $secondary; }
    GradientFlow > .gradient-flow--zero { color: $warning; text-style: bold; }
    GradientFlow > .gradient-flow--nonfinite { color: $error; text-style: bold; }
    GradientFlow > .gradient-flow--pending { color: $text-muted; }
    """

    rows: reactive[tuple[FlowRow, ...]] = reactive((), repaint=False)
    """The norms, one row per layer top, in layer order."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._spans: tuple[Span | None, Span | None] = (None, None)
        self._strips: LRUCache[tuple[object, ...], Strip] = LRUCache(512)
        self._base_style = Style()
        self._width = 0

    def watch_rows(self, old: tuple[FlowRow, ...], new: tuple[FlowRow, ...]) -> None:
        spans = (log_range([r.data_l2 for r in new]), log_range([r.diff_l2 for r in new]))
        if len(old) != len(new) or spans != self._spans:  # every bar moves
            self._spans = spans
            self.virtual_size = Size(0, len(new) + 1)
            self.refresh()
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):  # a step changes a row or two
            if a != b:
                self.refresh_line(i + 1)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.rows) + 1)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)
        self._strips.clear()

    # ------------------------------------------------------------------ text
    def _bar_width(self, width: int) -> int:
        return max((width - 2 * NAME_WIDTH - 2 * VALUE_WIDTH - 6) // 2, 4)

    def _cell(self, value: float | None, span: Span | None, width: int, kind: str) -> Text:
        style = partial(foreground, self)
        if value is None:
            return Text("·".ljust(width + 1 + VALUE_WIDTH),
                        style=style("gradient-flow--pending"))
        if not math.isfinite(value):
            return Text(fmt_num(value).rjust(width + 1 + VALUE_WIDTH),
                        style=style("gradient-flow--nonfinite"))
        if value == 0:
            label = "0 (no gradient)" if kind == "diff" else "0"
            return Text(label.rjust(width + 1 + VALUE_WIDTH), style=style("gradient-flow--zero"))
        assert span is not None
        text = Text(flow_bar(value, span, width), style=style(f"gradient-flow--{kind}"))
        text.append(" " + fmt_num(value).rjust(VALUE_WIDTH))
        return text

    def header_text(self, width: int) -> Text:
        bar = self._bar_width(width)
        data_span, diff_span = self._spans
        head = Text(no_wrap=True)
        if not self.rows:
            head.append("no layer has run yet")
            return head
        head.append("layer".ljust(NAME_WIDTH) + " " + "top".ljust(NAME_WIDTH) + " ")
        head.append(_scale_title("data L2", data_span).ljust(bar + 1 + VALUE_WIDTH) + "  ")
        head.append(_scale_title("diff L2 received", diff_span))
        return head

    def row_text(self, row: FlowRow, width: int) -> Text:
        bar = self._bar_width(width)
        data_span, diff_span = self._spans
        line = Text(no_wrap=True)
        line.append(_fit(row.layer, NAME_WIDTH).ljust(NAME_WIDTH) + " ")
        line.append(_fit(row.blob, NAME_WIDTH).ljust(NAME_WIDTH) + " ")
        line.append_text(self._cell(row.data_l2, data_span, bar, "data"))
        line.append("  ")
        line.append_text(self._cell(row.diff_l2, diff_span, bar, "diff"))
        return line

    # ------------------------------------------------------------------ drawing
    def render_lines(self, crop: Region) -> list[Strip]:
        self._base_style = self.rich_style
        self._width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, base = self._width, self._base_style
        if y == 0:
            key: tuple[object, ...] = ("header", self._spans, len(self.rows), width)
            line_style = base + self.get_component_rich_style("gradient-flow--header")
            make = partial(self.header_text, width)
        else:
            index = y - 1 + int(self.scroll_offset.y)
            if index >= len(self.rows):
                return Strip([Segment(" " * width, base)], width)
            row = self.rows[index]
            key = (row, self._spans, width)
            line_style = base
            make = partial(self.row_text, row, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = text_strip(make(), width, line_style, self.app.console)
            self._strips[key] = strip
        return strip
