"""The LRN scale cache: one channel as a heatmap, its statistics, and the exponent beta."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Sparkline, Static

from bpinspect.session.internals_view import LRNView
from bpinspect.tui.formatting import fmt_shape, stats_line
from bpinspect.tui.widgets.heatmap import Heatmap
from bpinspect.tui.widgets.plane_pane import PlanePane

FORMULA = {
    "ACROSS_CHANNELS": "scale = k + α/n · Σ x² over n neighbouring channels;  top = x · scale^-β",
    "WITHIN_CHANNEL": "scale = k + α/n² · Σ x² over an n×n window;  top = x · scale^-β",
}


class LRNPane(PlanePane):
    """What LRN's forward stored and its backward reuses: ``scale`` (seed 002)."""

    DEFAULT_CSS = """
    LRNPane > #lrn-info { height: auto; }
    LRNPane > Sparkline { height: 2; margin: 0 0 1 0; }
    LRNPane > #lrn-legend { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.view: LRNView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="lrn-info")
        yield Sparkline([], id="lrn-channels")
        yield Static("", id="lrn-legend")
        yield Heatmap(id="lrn-heatmap")

    def show(self, view: LRNView | None, message: str = "") -> None:
        self.view = view
        info = self.query_one("#lrn-info", Static)
        heatmap = self.query_one(Heatmap)
        if view is None:
            info.update(Text(message or "the scale cache exists once the layer ran forward",
                             style="dim"))
            heatmap.set_plane(None)
            self.query_one(Sparkline).data = []
            self.query_one("#lrn-legend", Static).update("")
            return
        n_items, channels = view.shape[0], view.shape[1]
        self.set_extent(n_items, channels)
        self.item, self.channel = view.n, view.c
        text = Text()
        text.append(f"{view.layer}", style="bold")
        text.append(f"  {view.region}  local_size {view.local_size}  alpha {view.alpha:g}  ")
        text.append(f"beta {view.beta:g}", style="bold")
        text.append(f"  k {view.k:g}\n")
        text.append(FORMULA.get(view.region, "") + "\n", style="dim")
        text.append(f"scale cache {fmt_shape(view.shape)}:  ")
        text.append_text(stats_line(view.stats))
        text.append(f"\nitem {view.n}, channel {view.c} of {channels}:  ")
        text.append_text(stats_line(view.plane_stats))
        text.append("\nmean scale per channel (below); [ ] channel  { } item", style="dim")
        info.update(text)
        self.query_one(Sparkline).data = [float(v) for v in view.channel_mean]
        heatmap.set_plane(view.plane)
        legend = Text(f"scale[{view.n}, {view.c}] ({fmt_shape(view.plane.shape)}):  ")
        legend.append_text(heatmap.legend())
        self.query_one("#lrn-legend", Static).update(legend)
