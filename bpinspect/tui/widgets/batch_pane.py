"""The Batch tab: the images the data layer read in this pass, with their labels.

The session makes the thumbnails (:func:`bpinspect.session.batch_view.batch_view`);
this draws them with half blocks, two pixel rows per text row (``▀`` in the top
pixel's colour over the bottom pixel's), as many across as the width holds,
each with ``#item label`` under it. ``{`` / ``}`` page through a large batch.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from bpinspect.session.batch_view import DEFAULT_COUNT, BatchImage, BatchView
from bpinspect.tui.formatting import fmt_shape
from bpinspect.tui.messages import PlaneSelected
from bpinspect.tui.widgets.plane_pane import PlanePane

GAP = 2  # columns between thumbnails


def _pixel_style(top: np.ndarray, bottom: np.ndarray | None) -> Style:
    bg = None if bottom is None else Color.from_rgb(*(int(v) for v in bottom))
    return Style(color=Color.from_rgb(*(int(v) for v in top)), bgcolor=bg)


def image_rows(image: BatchImage) -> list[Text]:
    """One thumbnail as text rows: ``ceil(h / 2)`` rows of ``w`` half blocks, then its
    caption, cut or padded to the thumbnail's width (at least 6 columns)."""
    pixels = image.pixels
    h, w = pixels.shape[:2]
    width = max(w, 6)
    rows = []
    for y in range(0, h, 2):
        row = Text()
        for x in range(w):
            bottom = pixels[y + 1, x] if y + 1 < h else None
            row.append("▀", _pixel_style(pixels[y, x], bottom))
        row.append(" " * (width - w))
        rows.append(row)
    caption = f"#{image.item}" + ("" if image.label is None else f" {image.label}")
    rows.append(Text(caption[:width].ljust(width), style="bold" if image.label else "dim"))
    return rows


def grid_text(images: tuple[BatchImage, ...], width: int) -> Text:
    """The thumbnails laid out left to right, top to bottom, in ``width`` columns."""
    if not images:
        return Text()
    cell = max(max(img.pixels.shape[1], 6) for img in images) + GAP
    per_row = max(1, (width + GAP) // cell)
    out = Text()
    for start in range(0, len(images), per_row):
        blocks = [image_rows(img) for img in images[start:start + per_row]]
        height = max(len(b) for b in blocks)
        for r in range(height):
            line = Text()
            for b in blocks:
                part = b[r] if r < len(b) else Text(" " * (cell - GAP))
                line.append_text(part)
                line.append(" " * GAP)
            line.rstrip()
            out.append_text(line)
            out.append("\n")
        out.append("\n")
    out.rstrip()
    return out


class BatchPane(PlanePane):
    """What the net was fed: the data layer's first top as pictures, labels under them."""

    DEFAULT_CSS = """
    BatchPane > #batch-info { height: auto; }
    BatchPane > VerticalScroll { height: 1fr; }
    BatchPane #batch-grid { width: 1fr; height: auto; }
    """

    PAGE = DEFAULT_COUNT  # items per page, as the view asks the session for

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.view: BatchView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="batch-info")
        with VerticalScroll():
            yield Static("", id="batch-grid")

    def show(self, view: BatchView | None, message: str = "") -> None:
        self.view = view
        info = self.query_one("#batch-info", Static)
        if view is None:
            info.update(Text(message or "no batch read yet", style="dim"))
            self.query_one("#batch-grid", Static).update("")
            return
        self.set_extent(view.items, 1)
        self.item = view.first
        text = Text()
        text.append(f"{view.layer}", style="bold")
        text.append(f"  {view.top} {fmt_shape(view.shape)}")
        if view.label_top:
            text.append(f", labels from {view.label_top}")
        text.append(f"\n{view.description}\n", style="")
        last = view.first + len(view.images) - 1
        text.append(f"items {view.first}–{last} of {view.items}; each image stretched over its "
                    f"own min..max, {view.channels}", style="dim")
        if view.reduced_by > 1:
            text.append(f", reduced {view.reduced_by}× (block means)", style="dim")
        if view.items > self.PAGE:
            text.append("; { } page", style="dim")
        info.update(text)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.view is None:
            return
        width = self.size.width - 2 or 80  # the scroll bar
        self.query_one("#batch-grid", Static).update(grid_text(self.view.images, width))

    def action_item(self, delta: int) -> None:
        """A page of items back or on (the plane views step one item)."""
        first = min(max(self.item + delta * self.PAGE, 0), max(self.items - 1, 0))
        first -= first % self.PAGE
        if first != self.item:
            self.item = first
            self.post_message(PlaneSelected(self.item, self.channel))
