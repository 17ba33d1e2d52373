"""The dead and saturated units table that ``bpinspect dump`` prints
(``bpinspect.session.units`` computes it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from bpinspect.session.units import UnitRow


def print_units(console: Console, rows: Sequence[UnitRow]) -> None:
    """One line per ReLU, Sigmoid and TanH layer: the fraction of its units that are
    dead (zero for every item of the batch) or saturated (within 1% of an asymptote
    for every item), and the fraction of its values that are."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="dead and saturated units", title_justify="left", box=None,
                  header_style="bold", pad_edge=False, title_style="bold")
    for col, justify in (("step", "right"), ("layer", "left"), ("type", "left"),
                         ("blob", "left"), ("shape", "left"), ("units", "right"),
                         ("", "left"), ("of units", "right"), ("of values", "right"),
                         ("low/high", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        if not r.available:
            table.add_row("" if r.step is None else str(r.step), escape(r.layer), r.type,
                          escape(r.blob), "", "", "", "", "", escape(r.note))
            continue
        frac = f"{100 * r.frac_units:.1f}%"
        if r.flagged and r.frac_units >= 0.5:
            frac = f"[bold red]{frac}[/bold red]"
        elif r.flagged:
            frac = f"[yellow]{frac}[/yellow]"
        split = (f"{100 * r.frac_low:.1f}% / {100 * r.frac_high:.1f}%"
                 if r.kind == "saturated" else "")
        table.add_row("" if r.step is None else str(r.step), escape(r.layer), r.type,
                      escape(r.blob), "x".join(str(d) for d in r.shape), str(r.units),
                      f"{r.flagged} {r.kind}", frac, f"{100 * r.frac_values:.1f}%", split)
    console.print(table)
    console.print("  a unit is a channel (N,C,H,W) or a neuron (N,K); dead (ReLU): 0 for every "
                  "item and position; saturated (Sigmoid, TanH): within 0.01 of an asymptote "
                  "for every item", markup=False)
