"""How numbers, shapes and statistics read on screen (text only, no arithmetic on blobs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from bpinspect.session.stats import BlobStats

# Column order of every statistics row: the blob panel, the concat and split views.
STAT_COLUMNS = ("min", "max", "mean", "std", "L2", "zeros", "NaN/Inf")
NUMBER_WIDTH = 10


def fmt_num(v: float | None) -> str:
    """Four significant digits in at most 10 characters; "" for a missing value."""
    if v is None:
        return ""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    text = f"{v:.4g}"
    if len(text) > NUMBER_WIDTH:
        text = f"{v:.2e}"
    return text


def fmt_ms(ms: float | None) -> str:
    """A time in milliseconds in at most 4 cells: ``0.41``, ``12.3``, ``123``, ``12k``."""
    if ms is None:
        return "·"
    if ms < 9.995:
        return f"{ms:.2f}"
    if ms < 99.95:
        return f"{ms:.1f}"
    if ms < 9999.5:
        return f"{ms:.0f}"
    return f"{ms / 1e3:.0f}k"


def fmt_bytes_short(n: int | None) -> str:
    """A size in at most 4 cells, in powers of 1024: ``512``, ``35K``, ``1.2M``, ``143M``."""
    if n is None:
        return "·"
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if value < 999.5 or unit == "T":
            if unit and value < 9.95:
                return f"{value:.1f}{unit}"
            return f"{value:.0f}{unit}"
        value /= 1024
    return "?"


def fmt_shape(shape: Sequence[int]) -> str:
    """``1×96×55×55`` (``scalar`` for a 0-d blob)."""
    return "×".join(str(int(d)) for d in shape) or "scalar"


def fmt_percent(fraction: float) -> str:
    if fraction == 0:
        return "0%"
    if fraction < 0.001:
        return "<0.1%"
    return f"{100 * fraction:.1f}%"


def stats_strings(stats: BlobStats) -> list[str]:
    """The STAT_COLUMNS entries of ``stats`` as text."""
    return [fmt_num(stats.min), fmt_num(stats.max), fmt_num(stats.mean), fmt_num(stats.std),
            fmt_num(stats.l2), fmt_percent(stats.frac_zero), f"{stats.nan}/{stats.inf}"]


def stats_cells(stats: BlobStats | None, nonfinite_style: Style | str = "bold red") -> list[Text]:
    """One Text per STAT_COLUMNS entry; NaN/Inf counts in ``nonfinite_style`` when any."""
    if stats is None:
        return [Text("") for _ in STAT_COLUMNS]
    values = stats_strings(stats)
    cells = [Text(value, justify="right") for value in values[:-1]]
    bad = stats.nan + stats.inf
    cells.append(Text(values[-1], style=nonfinite_style if bad else "", justify="right"))
    return cells


def stats_line(stats: BlobStats | None, nonfinite_style: Style | str = "bold red") -> Text:
    """``min -1.2  max 3.4  mean ...`` on one line, for views without a table."""
    if stats is None:
        return Text("not computed yet", style="dim")
    out = Text()
    for name, cell in zip(STAT_COLUMNS, stats_cells(stats, nonfinite_style), strict=True):
        if out:
            out.append("  ")
        out.append(f"{name} ", style="dim")
        out.append_text(cell)
    return out


def foreground(widget: Widget, component: str) -> Style:
    """A component class's colour and text style, without its background, so that text
    drawn with it keeps the background of the row it is on (a highlighted line).

    Kept per widget until its styles change (``forget_foreground`` in its
    ``notify_style_update``): widgets that redraw on every step ask for the same few.
    """
    cache: dict[tuple[str, str], Style] = widget.__dict__.setdefault("_foreground_styles", {})
    key = (widget.app.theme, component)  # the theme too: a theme change restyles later
    style = cache.get(key)
    if style is None:
        s = widget.get_component_rich_style(component)
        style = Style(color=s.color, bold=s.bold, dim=s.dim, italic=s.italic,
                      underline=s.underline, reverse=s.reverse, strike=s.strike)
        cache[key] = style
    return style


def forget_foreground(widget: Widget) -> None:
    """Drop the styles ``foreground`` kept for ``widget`` (its CSS changed)."""
    widget.__dict__.pop("_foreground_styles", None)


def text_strip(text: Text, width: int, base: Style, console: Console) -> Strip:
    """One line of ``text`` as a Strip of ``width`` cells over ``base``.

    ``Text.render`` leaves the Text's own style to its caller (Rich applies it one level
    up), so it is applied here, under the spans.
    """
    style = base
    if text.style:
        style = base + (text.style if isinstance(text.style, Style)
                        else console.get_style(text.style))
    segments = list(Segment.apply_style(text.render(console), style))
    return Strip(segments).crop_extend(0, width, base)
