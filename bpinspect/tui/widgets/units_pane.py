"""Dead and saturated units over the whole depth of the net: one row per ReLU, Sigmoid and
TanH layer with how many of its units never fire (or sit at an asymptote), and a bar, so
a layer that died is seen at once; in training, a line of the last iterations' fractions
beside it, so a layer that is dying is seen too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from bpinspect.session.units import DEAD, UnitRow
from bpinspect.tui.formatting import fmt_percent

BAR = 20  # cells of the bar at 100%
SPARK = 16  # iterations in the line over the last ones (training)


def unit_word(row: UnitRow) -> str:
    """What a unit is for this top: the channels of (N, C, H, W), the neurons of (N, K)."""
    return "channels" if len(row.shape) >= 3 else "neurons"


def units_line(row: UnitRow) -> str:
    """``dead units: 12 of 96 channels (12.5%)``, and the fraction of values."""
    if not row.available:
        return f"{row.kind} units: {row.note}"
    what = "zero" if row.kind == DEAD else "saturated"
    return (f"{row.kind} units: {row.flagged} of {row.units} {unit_word(row)} "
            f"({fmt_percent(row.frac_units)}); {fmt_percent(row.frac_values)} of values {what}")


def spark(fractions: Sequence[float], width: int = SPARK) -> str:
    """The last ``width`` fractions (0..1) as one block character each, on one fixed
    scale (▁ under 1/8 ... █ for all), so two layers' lines compare at a glance."""
    levels = "▁▂▃▄▅▆▇█"
    tail = list(fractions)[-width:]
    return "".join(levels[min(int(min(max(f, 0.0), 1.0) * 8), 7)] for f in tail).ljust(width)


def bar(fraction: float, width: int = BAR) -> str:
    """A bar of ``fraction`` of ``width`` cells in eighths."""
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


class UnitsPane(Static):
    """``relu1  ReLU  dead  12/96 (12.5%)  ███▏  40.2% of values``, a row per layer."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "units-pane--bar",
        "units-pane--alarm",
        "units-pane--muted",
    }
    """
    | Class | Description |
    | :- | :- |
    | `units-pane--bar` | The bar of a layer with few flagged units. |
    | `units-pane--alarm` | The bar of a layer with half its units or more flagged. |
    | `units-pane--muted` | Layers not run yet, the heading. |
    """

    DEFAULT_CSS = """
    UnitsPane { height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    UnitsPane > .units-pane--bar { color: $accent; }
    UnitsPane > .units-pane--alarm { color: $error; text-style: bold; }
    UnitsPane > .units-pane--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self.rows: tuple[UnitRow, ...] = ()
        """What is shown (a row per ReLU/Sigmoid/TanH layer, in forward order)."""
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        """Training: per layer, (iterations, fraction flagged) — the line over iterations."""

    def show(self, rows: Sequence[UnitRow] | None, message: str = "",
             series: dict[str, tuple[list[int], list[float]]] | None = None) -> None:
        self.rows = tuple(rows or ())
        self.series = dict(series or {})
        self.update(self.text(message))

    def text(self, message: str = "") -> Text:
        if message:
            return Text(message, style="dim")
        if not self.rows:
            return Text("the net has no ReLU, Sigmoid or TanH layer", style="dim")
        muted = self.get_component_rich_style("units-pane--muted", partial=True)
        name_w = max(len(r.layer) for r in self.rows)
        out = Text(no_wrap=True, overflow="ellipsis")
        over = bool(self.series) and any(xs for xs, _ in self.series.values())
        heading = f"{'layer'.ljust(name_w)}  {'type':<7} {'units':>10}  {'flagged':>7}  " \
                  f"{'':{BAR}}  "
        if over:
            first = min(xs[-SPARK:][0] for xs, _ in self.series.values() if xs)
            heading += f"{f'iterations {first}–':<{SPARK}}  "
        out.append(heading + "values\n", style=muted)
        for r in self.rows:
            out.append(f"{r.layer.ljust(name_w)}  {r.type:<7} ")
            history = self.series.get(r.layer, ([], []))[1]
            if not r.available:
                if over and history:  # not run in this pass; the iterations before were
                    out.append(f"{r.units:>10}  {'':>7}  {'':{BAR}}  ")
                    out.append(spark(history), style=self.get_component_rich_style(
                        "units-pane--alarm" if history[-1] >= 0.5 else "units-pane--bar",
                        partial=True))
                    out.append(f"  {r.note}\n", style=muted)
                    continue
                out.append(f"{r.units:>10}  {r.note}\n", style=muted)
                continue
            out.append(f"{r.flagged:>4}/{r.units:<5}  {fmt_percent(r.frac_units):>7}  ")
            alarm = r.frac_units >= 0.5
            bar_style = self.get_component_rich_style(
                "units-pane--alarm" if alarm else "units-pane--bar", partial=True)
            out.append(bar(r.frac_units), style=bar_style)
            if over:
                out.append("  ")
                out.append(spark(history), style=bar_style)
            out.append(f"  {fmt_percent(r.frac_values)} {'zero' if r.kind == DEAD else 'sat.'}"
                       f"  ({r.kind})\n")
        out.rstrip()
        return out
