"""A block of text that changes often: redrawn in place, never relayouting the screen.

``Static.update`` asks for a new layout of the whole screen (its size may have
changed); the status line and the titles change on every step but keep their
height (set in CSS), so they only need a repaint.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget


class TextView(Widget):
    """``text`` drawn as is; give it a fixed ``height`` in CSS."""

    DEFAULT_CSS = """
    TextView {
        height: 1;
    }
    """

    text: reactive[Text] = reactive(Text, layout=False)
    """What is shown."""

    def __init__(self, text: Text | str = "", *, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.text = text if isinstance(text, Text) else Text(text)

    @property
    def plain(self) -> str:
        return self.text.plain

    def update(self, text: Text | str) -> None:
        self.text = text if isinstance(text, Text) else Text(text)

    def render(self) -> RenderResult:
        return self.text
