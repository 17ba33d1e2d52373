"""The diff of an image input as a picture: max |diff| over channels (seed 003)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from bpinspect.tui.formatting import fmt_shape
from bpinspect.tui.widgets.heatmap import Heatmap
from bpinspect.tui.widgets.plane_pane import PlanePane


class SaliencyPane(PlanePane):
    """Bright where the class score (or the injected diff) is most sensitive to the input."""

    DEFAULT_CSS = """
    SaliencyPane > #saliency-info { height: auto; }
    SaliencyPane > #saliency-legend { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="saliency-info")
        yield Static("", id="saliency-legend")
        yield Heatmap(id="saliency-heatmap")

    def show(self, plane: np.ndarray | None, extra: dict[str, Any], message: str = "") -> None:
        info = self.query_one("#saliency-info", Static)
        heatmap = self.query_one(Heatmap)
        legend = self.query_one("#saliency-legend", Static)
        self.set_extent(int(extra.get("batch", 1)), 1)
        self.item = int(extra.get("item", 0))
        if plane is None:
            info.update(Text(message or "no saliency map yet", style="dim"))
            heatmap.set_plane(None)
            legend.update("")
            return
        text = Text()
        blob = extra.get("blob", "")
        text.append(f"saliency of {blob}", style="bold")
        text.append(f"  item {self.item}: max |diff| over channels ({fmt_shape(plane.shape)})\n")
        source = extra.get("source", "")
        if source:
            text.append(f"input: {source}\n", style="dim")
        text.append("inject onehot:C at the last scores (i) to see what class C looks at;"
                    "  { } item", style="dim")
        info.update(text)
        heatmap.set_plane(plane)
        marks = Text("|diff| ")
        marks.append_text(heatmap.legend())
        legend.update(marks)
