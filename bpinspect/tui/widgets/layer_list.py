"""The schedule as a list of layers: what ran, what is next, breakpoints, no-backward layers.

A line-API ScrollView (as DataTable and toolong's log view): each line is
rendered on demand and kept in an LRU strip cache, and a step redraws only the
lines whose content changed, so a net of hundreds of layers (GoogLeNet with its
split layers) costs no more per step than a small one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bpinspect.tui.formatting import (
    fmt_bytes_short,
    fmt_ms,
    foreground,
    forget_foreground,
    text_strip,
)
from bpinspect.tui.view_data import LayerRow

HEADING = "    F B      layer"
PREFIX = 10  # the cells before the name: "▶→ ✓ ✓ ●  "
COST = 5  # one cost column: a space and 4 cells
COST_TITLES = ("fwd", "bwd", "mem")
MIN_TYPE = 5  # a space and 4 cells of the type, else it hides
LEGEND = "▶ next step   ● breakpoint\nF/B forward/backward:\n✓ ran  · to do  – not needed"


class LayerList(ScrollView, can_focus=True):
    """One line per layer: ``▶→ ✓ · ●  conv1 Convolution``.

    Columns: the next step (▶→ forward, ▶← backward), forward done, backward
    done (a dim – when the layer needs no backward; the reason shows in the blob
    panel), the breakpoint (● both directions, ●→ forward only, ●← backward only),
    the layer name and its type, then what the layer cost (``caffe time``'s
    numbers, as steps run): its last forward and backward time in milliseconds
    and the memory of its tops and params (data + diff). When the list is narrow the
    type is cut, then hidden, then the memory column. A training pass that ends with
    the solver's update has one more line for it: ``▶Δ ✓    Δ update SGD`` (one
    column: it ran).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "previous layer", show=False, id="layer-up",
                tooltip="Select the layer above"),
        Binding("down", "move(1)", "next layer", show=False, id="layer-down",
                tooltip="Select the layer below"),
        Binding("pageup", "page(-1)", "page up", show=False, id="layer-page-up"),
        Binding("pagedown", "page(1)", "page down", show=False, id="layer-page-down"),
        Binding("home", "first", "first layer", show=False, id="layer-first"),
        Binding("end", "last", "last layer", show=False, id="layer-last"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | up / down | Select the layer above / below. |
    | pageup / pagedown | A screenful up / down. |
    | home / end | The first / last layer. |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "layer-list--highlight",
        "layer-list--current",
        "layer-list--done",
        "layer-list--pending",
        "layer-list--no-backward",
        "layer-list--breakpoint",
        "layer-list--type",
        "layer-list--cost",
    }
    """
    | Class | Description |
    | :- | :- |
    | `layer-list--highlight` | The selected line (its background). |
    | `layer-list--current` | The ▶ marker of the next step. |
    | `layer-list--done` | ✓ of a step that ran. |
    | `layer-list--pending` | · of a step still to run. |
    | `layer-list--no-backward` | – of a layer that needs no backward. |
    | `layer-list--breakpoint` | The ● of a breakpoint. |
    | `layer-list--type` | The layer type. |
    | `layer-list--cost` | The times and memory. |
    """

    DEFAULT_CSS = """
    LayerList {
        height: 1fr;
    }
    LayerList > .layer-list--highlight { background: $primary 40%; text-style: bold; }
    LayerList:focus > .layer-list--highlight { background: $primary; }
    LayerList > .layer-list--current { color: $accent; text-style: bold; }
    LayerList > .layer-list--done { color: $success; }
    LayerList > .layer-list--pending { color: $text-muted; }
    LayerList > .layer-list--no-backward { color: $text-disabled; }
    LayerList > .layer-list--breakpoint { color: $error; text-style: bold; }
    LayerList > .layer-list--type { color: $text-muted; }
    LayerList > .layer-list--cost { color: $text-muted; }
    """

    @dataclass
    class LayerHighlighted(Message):
        """The user moved the highlight to another layer."""

        layer_list: LayerList
        layer: str

        @property
        def control(self) -> LayerList:
            return self.layer_list

    @dataclass
    class HeadingChanged(Message):
        """The column titles changed (the cost columns came, or the width changed)."""

        layer_list: LayerList
        heading: str

        @property
        def control(self) -> LayerList:
            return self.layer_list

    highlighted: reactive[int | None] = reactive(None, init=False, repaint=False)
    """The index of the selected line (None: no rows)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._rows: tuple[LayerRow, ...] = ()
        self._name_width = 12
        self._base_style = Style()
        self._width = 0
        self._strips: LRUCache[tuple[int, bool, int], Strip] = LRUCache(1024)
        self._quiet = False  # the highlight is being moved by code, not by the user
        self._costed = False  # the rows carry costs (times, memory)
        self._heading = HEADING

    # ------------------------------------------------------------------ public
    @property
    def rows(self) -> tuple[LayerRow, ...]:
        return self._rows

    @property
    def highlighted_layer(self) -> str | None:
        if self.highlighted is None or not self._rows:
            return None
        return self._rows[self.highlighted].name

    def update_rows(self, rows: Sequence[LayerRow]) -> None:
        """Show ``rows``; only the lines that changed are redrawn."""
        rows = tuple(rows)
        costed = any(r.memory_bytes is not None for r in rows)
        if costed != self._costed:
            self._costed = costed
            self._strips.clear()
            self.refresh()
            self._post_heading()
        if [r.name for r in rows] != [r.name for r in self._rows]:
            layer = self.highlighted_layer
            self._rows = rows
            self._name_width = min(max((len(r.name) for r in rows), default=8), 20)
            self._strips.clear()
            self.virtual_size = Size(0, len(rows))
            self.refresh()
            self._post_heading()
            if layer is not None:
                self.select_layer(layer)
            return
        old, self._rows = self._rows, rows
        for i, (a, b) in enumerate(zip(old, rows, strict=True)):
            if a != b:
                self._forget_line(i)

    def select_layer(self, layer: str) -> None:
        """Move the highlight to ``layer`` without announcing it as the user's choice."""
        for i, r in enumerate(self._rows):
            if r.name == layer:
                self._quiet = True
                try:
                    self.highlighted = i
                finally:
                    self._quiet = False
                return

    # ------------------------------------------------------------------ highlight
    def validate_highlighted(self, value: int | None) -> int | None:
        if not self._rows or value is None:
            return None
        return min(max(value, 0), len(self._rows) - 1)

    def watch_highlighted(self, old: int | None, new: int | None) -> None:
        for row in (old, new):
            if row is not None:
                self._forget_line(row)
        if new is None:
            return
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        if not self._quiet:
            self.post_message(self.LayerHighlighted(self, self._rows[new].name))

    def action_move(self, delta: int) -> None:
        self.highlighted = 0 if self.highlighted is None else self.highlighted + delta

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.scrollable_content_region.height - 1, 1))

    def action_first(self) -> None:
        self.highlighted = 0

    def action_last(self) -> None:
        self.highlighted = len(self._rows) - 1

    def on_click(self, event: events.Click) -> None:
        row = event.y + int(self.scroll_offset.y)
        if 0 <= row < len(self._rows):
            self.highlighted = row

    # ------------------------------------------------------------------ drawing
    def _forget_line(self, row: int) -> None:
        for key in [k for k in self._strips.keys() if k[0] == row]:
            self._strips.discard(key)
        self.refresh_line(row)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)
        self._strips.clear()

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(0, len(self._rows))
        self._post_heading()

    # ------------------------------------------------------------------ columns
    def columns(self, width: int) -> tuple[int, int]:
        """``(type cells, cost columns)`` for a line of ``width`` cells: the costs come
        first (3: fwd, bwd, mem; 2: fwd, bwd; 0), the type gets what is left
        (0: hidden)."""
        room = width - PREFIX - self._name_width
        if not self._costed:
            return max(room, 0), 0
        full_type = 1 + max((len(r.type) for r in self._rows), default=0)
        for n in (3, 2):
            if room >= n * COST:
                left = room - n * COST
                type_cells = min(left, full_type) if left >= MIN_TYPE else 0
                return type_cells, n
        return max(room, 0), 0

    def heading(self, width: int | None = None) -> str:
        """The column titles for the list's width."""
        width = self.scrollable_content_region.width if width is None else width
        type_cells, n = self.columns(width)
        if n == 0:
            return HEADING
        head = HEADING.ljust(PREFIX + self._name_width + type_cells)
        return head + "".join(t.rjust(COST) for t in COST_TITLES[:n])

    def _post_heading(self) -> None:
        heading = self.heading()
        if heading != self._heading:
            self._heading = heading
            self.post_message(self.HeadingChanged(self, heading))

    def on_focus(self) -> None:
        if self.highlighted is not None:
            self._forget_line(self.highlighted)

    def on_blur(self) -> None:
        self.on_focus()

    def prompt(self, row: LayerRow, width: int | None = None) -> Text:
        """The text of one line (without the highlight), for ``width`` cells."""
        style = partial(foreground, self)
        width = self._width if width is None else width
        type_cells, n_costs = self.columns(width)
        text = Text(no_wrap=True, overflow="ellipsis")
        if row.update:
            text.append("▶Δ" if row.current else "  ", style=style("layer-list--current"))
            text.append(" ")
            text.append("✓" if row.forward_done else "·", style=style(
                "layer-list--done" if row.forward_done else "layer-list--pending"))
            text.append(" " * 6)  # the backward and breakpoint columns
            text.append(row.name.ljust(self._name_width))
            self._type_and_costs(text, row, type_cells, n_costs)
            return text
        if row.current == "forward":
            text.append("▶→", style=style("layer-list--current"))
        elif row.current == "backward":
            text.append("▶←", style=style("layer-list--current"))
        else:
            text.append("  ")
        text.append(" ")
        text.append("✓" if row.forward_done else "·",
                    style=style("layer-list--done" if row.forward_done else "layer-list--pending"))
        text.append(" ")
        if row.backward_skipped:
            text.append("–", style=style("layer-list--no-backward"))
        else:
            text.append("✓" if row.backward_done else "·", style=style(
                "layer-list--done" if row.backward_done else "layer-list--pending"))
        mark = {"both": "● ", "forward": "●→", "backward": "●←"}.get(row.breakpoint or "", "  ")
        text.append(" " + mark + " ", style=style("layer-list--breakpoint"))
        text.append(row.name.ljust(self._name_width))
        self._type_and_costs(text, row, type_cells, n_costs)
        return text

    def _type_and_costs(self, text: Text, row: LayerRow, type_cells: int,
                        n_costs: int) -> None:
        style = partial(foreground, self)
        kind = " " + row.type
        if n_costs == 0:
            text.append(kind, style=style("layer-list--type"))
            return
        if len(kind) > type_cells:
            kind = kind[: max(type_cells - 1, 0)] + "…" if type_cells else ""
        text.append(kind.ljust(type_cells), style=style("layer-list--type"))
        if row.update:
            return
        backward = "–" if row.backward_skipped else fmt_ms(row.backward_ms)
        cells = (fmt_ms(row.forward_ms), backward, fmt_bytes_short(row.memory_bytes))
        text.append("".join(c.rjust(COST) for c in cells[:n_costs]),
                    style=style("layer-list--cost"))

    def render_lines(self, crop: Region) -> list[Strip]:
        # Asked once per repaint rather than once per line (each is a CSS lookup).
        self._base_style = self.rich_style
        self._width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self._width
        row = y + int(self.scroll_offset.y)
        base = self._base_style
        if row >= len(self._rows):
            return Strip([Segment(" " * width, base)], width)
        lit = row == self.highlighted
        key = (row, lit, width)
        strip = self._strips.get(key)
        if strip is None:
            text = self.prompt(self._rows[row])
            text.truncate(width, overflow="ellipsis", pad=True)
            line_style = base + (self.get_component_rich_style("layer-list--highlight")
                                 if lit else Style())
            strip = text_strip(text, width, line_style, self.app.console)
            self._strips[key] = strip
        return strip
