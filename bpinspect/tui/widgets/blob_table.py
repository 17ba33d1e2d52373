"""The statistics table of the blob panel: three lines per blob (name and shape, data, diff).

A line-API ScrollView with an LRU strip cache and fixed-width columns: a step
changes every number of the table, and a DataTable re-renders each cell
through Rich's console (tens of milliseconds at CaffeNet's sizes); this draws
a line of plain columns instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bpinspect.session.compare import AGREE, DIFFER, ONLY_A, ONLY_B, SHAPE
from bpinspect.tui.formatting import (
    STAT_COLUMNS,
    fmt_shape,
    foreground,
    forget_foreground,
    stats_strings,
)
from bpinspect.tui.view_data import Agreement, BlobEntry, BlobRef, LayerPanel

ROLE = {"bottom": "in ", "top": "out", "param": "prm"}
NUMBER = 10  # min, max, mean, std, L2
WIDTHS = (NUMBER,) * 5 + (6, 7)  # zeros, NaN/Inf
WHEN = 20
VS = 11  # the --compare column
KINDS = ("head", "data", "diff")


Piece = tuple[str, Style | None]  # a run of text and its style (None: the line's)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def vs_text(agreement: Agreement | None) -> str:
    """The --compare column: ``✓ 3.1e-07`` (agrees; ``✓ 0``: equal), ``≠ 2.1e-02``
    (differs: the relative difference), ``≠ shape``, ``not in dump``; nothing while
    pending (not computed yet)."""
    if agreement is None:
        return ""
    status, rel = agreement.status, agreement.rel_diff
    if status in (AGREE, DIFFER):
        mark = "✓" if status == AGREE else "≠"
        if rel is None:
            return mark
        return f"{mark} 0" if rel == 0 else f"{mark} {rel:.1e}"
    return {SHAPE: "≠ shape", ONLY_A: "not in dump", ONLY_B: "only in dump"}.get(status, "")


def _when(entry: BlobEntry, kind: str) -> str:
    label = entry.data_label if kind == "data" else entry.diff_label
    if label is not None:
        return label
    if kind == "data" and entry.role == "param":
        return "weights"
    step = entry.data_step if kind == "data" else entry.diff_step
    return "now" if step is None else f"after step {step}"


class BlobTable(ScrollView, can_focus=True):
    """``in  conv1  1×96×55×55`` then ``data after step 2  min max mean std L2 zeros
    NaN/Inf`` and the same for diff, for each bottom, top and param."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "previous line", show=False, id="blob-up",
                tooltip="The line above"),
        Binding("down", "move(1)", "next line", show=False, id="blob-down",
                tooltip="The line below"),
        Binding("pageup", "move(-3)", "previous blob", show=False, id="blob-previous",
                tooltip="The blob above"),
        Binding("pagedown", "move(3)", "next blob", show=False, id="blob-next",
                tooltip="The blob below"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | up / down | Move the cursor a line. |
    | pageup / pagedown | Move the cursor a blob. |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "blob-table--header",
        "blob-table--cursor",
        "blob-table--selected",
        "blob-table--role",
        "blob-table--name",
        "blob-table--missing",
        "blob-table--nonfinite",
        "blob-table--agree",
        "blob-table--differ",
    }
    """
    | Class | Description |
    | :- | :- |
    | `blob-table--header` | The column titles. |
    | `blob-table--cursor` | The line under the cursor. |
    | `blob-table--selected` | The other lines of the blob under the cursor. |
    | `blob-table--role` | in / out / prm. |
    | `blob-table--name` | The blob's name. |
    | `blob-table--missing` | "not computed yet", "no gradient". |
    | `blob-table--nonfinite` | NaN/Inf counts above zero. |
    | `blob-table--agree` | ✓: agrees with the --compare dump. |
    | `blob-table--differ` | ≠: differs from the --compare dump. |
    """

    DEFAULT_CSS = """
    BlobTable {
        height: 1fr;
    }
    BlobTable > .blob-table--header { text-style: bold; background: $boost; }
    BlobTable > .blob-table--cursor { background: $primary 30%; }
    BlobTable:focus > .blob-table--cursor { background: $primary; }
    BlobTable > .blob-table--selected { background: $boost; }
    BlobTable > .blob-table--role { color: $accent; }
    BlobTable > .blob-table--name { text-style: bold; }
    BlobTable > .blob-table--missing { color: $text-muted; }
    BlobTable > .blob-table--nonfinite { color: $error; text-style: bold; }
    BlobTable > .blob-table--agree { color: $success; }
    BlobTable > .blob-table--differ { color: $error; text-style: bold; }
    """

    @dataclass
    class CursorMoved(Message):
        """The user moved the cursor onto another blob."""

        blob_table: BlobTable
        blob: BlobRef

        @property
        def control(self) -> BlobTable:
            return self.blob_table

    cursor: reactive[int] = reactive(0, init=False)
    """The line under the cursor (an index into the table's lines, header excluded)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.panel: LayerPanel | None = None
        self._lines: list[tuple[int, str]] = []  # (entry index, "head" | "data" | "diff")
        self._name_width = 12
        self._base_style = Style()
        self._width = 0
        self._strips: LRUCache[tuple[int, bool, bool, int], Strip] = LRUCache(512)
        self._quiet = False
        self._compared = False  # a --compare column is shown

    # ------------------------------------------------------------------ data
    @property
    def entry_index(self) -> int | None:
        if not self._lines:
            return None
        return self._lines[self.cursor][0]

    def show(self, panel: LayerPanel | None) -> None:
        """New values; the cursor stays on the same line of the selected blob."""
        old_kind = self._lines[self.cursor][1] if self._lines else "head"
        self.panel = panel
        self._lines = [] if panel is None else [
            (i, kind) for i in range(len(panel.entries)) for kind in KINDS]
        if panel is not None:
            labels = [len(ROLE[e.role]) + 1 + len(e.label) for e in panel.entries]
            self._name_width = min(max(labels + [8]), 32)
        self._compared = panel is not None and any(e.data_vs is not None
                                                   for e in panel.entries)
        self._strips.clear()
        self._set_virtual_size()
        self.refresh()
        if panel is not None and self._lines:
            target = self._lines.index((panel.selected, old_kind))
            self._quiet = True
            try:
                self.cursor = target
            finally:
                self._quiet = False

    def validate_cursor(self, value: int) -> int:
        return min(max(value, 0), max(len(self._lines) - 1, 0))

    def watch_cursor(self, old: int, new: int) -> None:
        self._strips.clear()
        self.refresh()
        # Keep the cursor and the lines of its blob in view (line 0 is the header).
        self.scroll_to_region(Region(0, new, 1, 2), animate=False, immediate=True)
        if self._quiet or self.panel is None or not self._lines:
            return
        entry = self._lines[new][0]
        if entry != self.panel.selected:
            self.post_message(self.CursorMoved(self, self.panel.entries[entry].ref))

    def action_move(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def on_click(self, event: events.Click) -> None:
        line = event.y - 1 + int(self.scroll_offset.y)
        if 0 <= line < len(self._lines):
            self.cursor = line

    # ------------------------------------------------------------------ drawing
    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)
        self._strips.clear()

    def on_resize(self) -> None:
        self._strips.clear()
        self._set_virtual_size()

    def _set_virtual_size(self) -> None:
        # At least the visible height: a table that fits keeps the same virtual size from
        # layer to layer, and so needs no new layout of the screen.
        height = max(len(self._lines) + 1, self.scrollable_content_region.height)
        width = self.line_width if self.line_width > self.size.width else 0
        self.virtual_size = Size(width, height)

    def _columns(self, first: list[Piece], when: Piece, cells: list[Piece],
                 vs: Piece = ("", None)) -> list[Piece]:
        """Pieces of text in fixed-width columns: name, shape or step, the agreement with
        the --compare dump (when there is one), the statistics."""
        pieces: list[Piece] = []
        room = self._name_width
        for text, style in first:
            text = _fit(text, room)
            room -= len(text)
            pieces.append((text, style))
        pieces.append((" " * room + "  ", None))
        pieces.append((_fit(when[0], WHEN).ljust(WHEN), when[1]))
        if self._compared:
            pieces.append(("  ", None))
            pieces.append((_fit(vs[0], VS).ljust(VS), vs[1]))
        for width, (text, style) in zip(WIDTHS, cells, strict=True):
            pieces.append(("  ", None))
            pieces.append((_fit(text, width).rjust(width), style))
        return pieces

    def header(self) -> list[Piece]:
        return self._columns([("blob", None)], ("shape / values", None),
                             [(name, None) for name in STAT_COLUMNS], ("vs dump", None))

    def line_pieces(self, index: int) -> list[Piece]:
        assert self.panel is not None
        entry_index, kind = self._lines[index]
        e = self.panel.entries[entry_index]
        style = partial(foreground, self)
        blank: list[Piece] = [("", None)] * len(STAT_COLUMNS)
        if kind == "head":
            shape = fmt_shape(e.shape) + ("  in place" if e.in_place else "")
            return self._columns([(ROLE[e.role] + " ", style("blob-table--role")),
                                  (e.label, style("blob-table--name"))], (shape, None), blank)
        stats = e.data if kind == "data" else e.diff
        agreement = e.data_vs if kind == "data" else e.diff_vs
        vs_style = None
        if agreement is not None and agreement.status == AGREE:
            vs_style = style("blob-table--agree")
        elif agreement is not None and agreement.status in (DIFFER, SHAPE):
            vs_style = style("blob-table--differ")
        vs: Piece = (vs_text(agreement), vs_style)
        if stats is None:
            why = e.error or ("no gradient" if kind == "diff" and not e.needs_diff
                              else "not computed yet")
            return self._columns([(f"    {kind}", None)],
                                 (why, style("blob-table--missing")), blank, vs)
        cells: list[Piece] = [(v, None) for v in stats_strings(stats)]
        if stats.nan + stats.inf:
            cells[-1] = (cells[-1][0], style("blob-table--nonfinite"))
        return self._columns([(f"    {kind}", None)], (_when(e, kind), None), cells, vs)

    def line_text(self, index: int) -> str:
        return "".join(text for text, _ in self.line_pieces(index))

    def render_lines(self, crop: Region) -> list[Strip]:
        # Asked once per repaint rather than once per line (each is a CSS lookup).
        self._base_style = self.rich_style
        self._width = self.scrollable_content_region.width
        return super().render_lines(crop)

    @property
    def line_width(self) -> int:
        """Cells a full line takes (wider than the widget: it scrolls sideways)."""
        return (self._name_width + 2 + WHEN + (VS + 2 if self._compared else 0)
                + sum(w + 2 for w in WIDTHS))

    def render_line(self, y: int) -> Strip:
        width = max(self._width, self.line_width)  # cached at full width, cropped below
        base = self._base_style
        if y == 0:
            key = (-1, False, False, width)
            pieces_fn = self.header
            line_style = base + self.get_component_rich_style("blob-table--header")
        else:
            index = y - 1 + int(self.scroll_offset.y)
            if index >= len(self._lines):
                return Strip([Segment(" " * self._width, base)], self._width)
            at_cursor = index == self.cursor
            same_blob = self._lines[index][0] == self._lines[self.cursor][0]
            key = (index, at_cursor, same_blob, width)
            pieces_fn = partial(self.line_pieces, index)
            line_style = base
            if at_cursor:
                line_style = base + self.get_component_rich_style("blob-table--cursor")
            elif same_blob:
                line_style = base + self.get_component_rich_style("blob-table--selected")
        strip = self._strips.get(key)
        if strip is None:
            segments = [Segment(text, line_style + style if style else line_style)
                        for text, style in pieces_fn() if text]
            strip = Strip(segments).crop_extend(0, width, line_style)
            self._strips[key] = strip
        x = int(self.scroll_offset.x)
        return strip.crop(x, x + self._width)

    def render_lines_text(self) -> list[str]:
        """Every line as plain text, header first (for tests and for copying)."""
        lines = ["".join(text for text, _ in self.header())]
        lines += [self.line_text(i) for i in range(len(self._lines))]
        return lines
