"""Softmax probabilities: the five most probable classes of each batch item."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from bpinspect.session.internals_view import SoftmaxView

BAR = 12


class SoftmaxPane(VerticalScroll):
    """``item 0: 281 87.3% ██████████▍  285 4.1% ▌ ...``."""

    DEFAULT_CSS = """
    SoftmaxPane > Static { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="softmax-info")

    def show(self, view: SoftmaxView | None, message: str = "") -> None:
        info = self.query_one("#softmax-info", Static)
        if view is None:
            info.update(Text(message or "probabilities exist once the layer ran forward",
                             style="dim"))
            return
        text = Text()
        text.append(view.layer, style="bold")
        text.append("  top-5 classes per item (probability)\n", style="dim")
        for i, ranking in enumerate(view.top):
            text.append(f"item {i:<3}", style="bold")
            for cls, prob in ranking:
                text.append(f"  {cls:>5} ")
                text.append(f"{100 * prob:5.1f}% ")
                text.append("█" * round(prob * BAR), style="bold")
            text.append("\n")
        info.update(text)
