"""Every layer's data and diff L2 norms as bars: vanishing or exploding gradients at a glance.

The norms come from ``Session.gradient_flow()``; bars are on a log10 scale
(norms span many orders of magnitude), each column scaled to its own range.
A diff norm of exactly zero is flagged: no gradient reached that layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from bpinspect.session.session import FlowRow
from bpinspect.tui.formatting import fmt_num, foreground

EIGHTHS = " ▏▎▍▌▋▊▉█"
NAME_WIDTH = 16
VALUE_WIDTH = 10


def log_range(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The decades that hold every finite positive value: (floor(log10 min),
    ceil(log10 max)), at least one decade wide, so the smallest norm keeps a bar."""
    logs = [math.log10(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not logs:
        return None
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    return float(lo), float(max(hi, lo + 1))


def flow_bar(value: float, span: tuple[float, float], width: int) -> str:
    """A left-aligned bar of ``width`` cells in eighths: log10(value) placed in ``span``,
    never shorter than one eighth for a positive value."""
    lo, hi = span
    frac = 1.0 if hi <= lo else (math.log10(value) - lo) / (hi - lo)
    eighths = max(1, round(frac * width * 8))
    full, rest = divmod(min(eighths, width * 8), 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def _scale_title(what: str, span: tuple[float, float] | None) -> str:
    if span is None:
        return what
    return f"{what}, log 1e{span[0]:.0f}…1e{span[1]:.0f}"


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


class GradientFlow(Widget):
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
    | `gradient-flow--header` | The column titles and scale line. |
    | `gradient-flow--data` | Data norm bars. |
    | `gradient-flow--diff` | Diff norm bars. |
    | `gradient-flow--zero` | A diff norm of zero (no gradient arrived). |
    | `gradient-flow--nonfinite` | A NaN or Inf norm. |
    | `gradient-flow--pending` | Not computed yet in this pass. |
    """

    DEFAULT_CSS = """
    GradientFlow {
        height: auto;
    }
    GradientFlow > .gradient-flow--header { color: $text-muted; text-style: bold; }
    GradientFlow > .gradient-flow--data { color: $primary; }
    GradientFlow > .gradient-flow--diff { color: $secondary; }
    GradientFlow > .gradient-flow--zero { color: $warning; text-style: bold; }
    GradientFlow > .gradient-flow--nonfinite { color: $error; text-style: bold; }
    GradientFlow > .gradient-flow--pending { color: $text-muted; }
    """

    rows: reactive[tuple[FlowRow, ...]] = reactive((), layout=True)
    """The norms, one row per layer top, in layer order."""

    def _style(self, part: str) -> Style:
        """The colours of component class ``gradient-flow--<part>`` (no background)."""
        return foreground(self, f"gradient-flow--{part}")

    def _bar_width(self, width: int) -> int:
        return max((width - 2 * NAME_WIDTH - 2 * VALUE_WIDTH - 6) // 2, 4)

    def _cell(self, value: float | None, span: tuple[float, float] | None, width: int,
              kind: str) -> Text:
        if value is None:
            return Text("·".ljust(width + 1 + VALUE_WIDTH),
                        style=self._style("pending"))
        if not math.isfinite(value):
            return Text(fmt_num(value).rjust(width + 1 + VALUE_WIDTH),
                        style=self._style("nonfinite"))
        if value == 0:
            label = "0 (no gradient)" if kind == "diff" else "0"
            return Text(label.rjust(width + 1 + VALUE_WIDTH),
                        style=self._style("zero"))
        assert span is not None
        text = Text(flow_bar(value, span, width),
                    style=self._style(kind))
        text.append(" " + fmt_num(value).rjust(VALUE_WIDTH))
        return text

    def render(self) -> RenderResult:
        rows = self.rows
        header_style = self._style("header")
        if not rows:
            return Text("no layer has run yet", style=header_style)
        bar = self._bar_width(self.size.width)
        data_span = log_range([r.data_l2 for r in rows])
        diff_span = log_range([r.diff_l2 for r in rows])
        head = Text(style=header_style, no_wrap=True)
        head.append("layer".ljust(NAME_WIDTH) + " " + "top".ljust(NAME_WIDTH) + " ")
        head.append(_scale_title("data L2", data_span).ljust(bar + 1 + VALUE_WIDTH) + "  ")
        head.append(_scale_title("diff L2 received", diff_span))
        lines = [head]
        for r in rows:
            line = Text(no_wrap=True)
            line.append(_fit(r.layer, NAME_WIDTH).ljust(NAME_WIDTH) + " ")
            line.append(_fit(r.blob, NAME_WIDTH).ljust(NAME_WIDTH) + " ")
            line.append_text(self._cell(r.data_l2, data_span, bar, "data"))
            line.append("  ")
            line.append_text(self._cell(r.diff_l2, diff_span, bar, "diff"))
            lines.append(line)
        return Group(*lines)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.rows) + 1 if self.rows else 1
