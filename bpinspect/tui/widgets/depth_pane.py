"""Histograms across depth: a heat strip per layer of its top's data (or diff) over one
shared range (or, D, each over its own, written beside it), log counts, so an exploding
or vanishing gradient is seen at once."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.widgets import Static

from bpinspect.session.depth import DepthHistograms
from bpinspect.tui.formatting import fmt_num

RAMP = " ░▒▓█"  # empty bin, then log10(1 + count) in four steps of the largest


def heat_cells(heights: np.ndarray, top: float) -> str:
    """One character per bin: the bin's height against ``top`` on the ramp (a bin with
    any count shows at least the first step)."""
    if top <= 0:
        return RAMP[0] * len(heights)
    steps = len(RAMP) - 1
    out = []
    for h in heights:
        out.append(RAMP[0] if h <= 0 else RAMP[max(1, min(steps, int(np.ceil(h / top * steps))))])
    return "".join(out)


class DepthPane(Static):
    """``conv1  ░▒▓█▓▒░`` per layer, under the shared range (or beside its own)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"depth-pane--strip", "depth-pane--muted"}
    """
    | Class | Description |
    | :- | :- |
    | `depth-pane--strip` | The heat strips. |
    | `depth-pane--muted` | The heading, layers without values. |
    """

    DEFAULT_CSS = """
    DepthPane { height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    DepthPane > .depth-pane--strip { color: $accent; }
    DepthPane > .depth-pane--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self.view: DepthHistograms | None = None
        """What is shown."""

    def show(self, view: DepthHistograms | None, message: str = "") -> None:
        self.view = view
        self.update(self.text(message))

    def text(self, message: str = "") -> Text:
        view = self.view
        if message or view is None:
            return Text(message or "no values yet", style="dim")
        muted = self.get_component_rich_style("depth-pane--muted", partial=True)
        strip_style = self.get_component_rich_style("depth-pane--strip", partial=True)
        out = Text(no_wrap=True, overflow="ellipsis")
        other = "diff" if view.kind == "data" else "data"
        if view.value_range is None:
            out.append(f"top {view.kind} across depth: no values yet   d: {other}", style=muted)
            return out
        lo, hi = view.value_range
        ranges = ("each layer over its own range (right)   D: one range" if view.per_layer
                  else f"one range [{fmt_num(lo)}, {fmt_num(hi)}]   D: each layer's own")
        out.append(f"top {view.kind} across depth, log counts, {ranges}   d: {other}\n",
                   style=muted)
        name_w = max(len(s.layer) for s in view.strips)
        tops = [float(s.histogram.heights.max()) for s in view.strips
                if s.histogram is not None and s.histogram.counts.size]
        top = max(tops, default=0.0)
        bins = 0
        for s in view.strips:
            out.append(s.layer.ljust(name_w) + " ")
            if s.histogram is None:
                out.append(s.note + "\n", style=muted)
                continue
            bins = len(s.histogram.counts)
            out.append("▕")
            out.append(heat_cells(s.histogram.heights, top), style=strip_style)
            out.append("▏")
            if view.per_layer and s.value_range is not None:
                out.append(f" {fmt_num(s.value_range[0])} … {fmt_num(s.value_range[1])}",
                           style=muted)
            if s.histogram.nonfinite:
                out.append(f" {s.histogram.nonfinite} NaN/Inf")
            out.append("\n")
        if bins and not view.per_layer:
            left, right = fmt_num(lo), fmt_num(hi)
            out.append(" " * (name_w + 2) + left + right.rjust(max(bins - len(left), 1)),
                       style=muted)
        out.rstrip()
        return out
