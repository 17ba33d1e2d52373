"""The selected layer's bottoms, tops and params: shape, statistics of data and diff, histograms."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from bpinspect.tui.formatting import STAT_COLUMNS, fmt_shape, foreground, stats_cells
from bpinspect.tui.view_data import BlobEntry, BlobRef, LayerPanel
from bpinspect.tui.widgets.histogram import HistogramChart

ROLE_GLYPH = {"bottom": "in ", "top": "out", "param": "prm"}


def _when(entry: BlobEntry, kind: str) -> str:
    if kind == "data" and entry.role == "param":
        return "weights"
    step = entry.data_step if kind == "data" else entry.diff_step
    return "now" if step is None else f"after step {step}"


class BlobPanel(Vertical):
    """A table of the layer's blobs (three rows each: name and shape, data, diff) and the
    histograms of the blob under the cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "blob-panel--nonfinite",
        "blob-panel--role",
        "blob-panel--missing",
    }
    """
    | Class | Description |
    | :- | :- |
    | `blob-panel--nonfinite` | NaN/Inf counts above zero. |
    | `blob-panel--role` | in / out / prm before each blob's name. |
    | `blob-panel--missing` | "not yet", "no gradient" placeholders. |
    """

    DEFAULT_CSS = """
    BlobPanel {
        height: auto;
    }
    BlobPanel > #blob-title {
        height: auto;
        padding: 0 1;
    }
    BlobPanel > DataTable {
        height: auto;
        max-height: 16;
    }
    BlobPanel > #histograms {
        height: 8;
    }
    BlobPanel > #histograms > HistogramChart {
        width: 1fr;
        height: 8;
        padding: 0 1;
    }
    BlobPanel > .blob-panel--nonfinite { color: $error; text-style: bold; }
    BlobPanel > .blob-panel--role { color: $accent; }
    BlobPanel > .blob-panel--missing { color: $text-muted; }
    """

    @dataclass
    class BlobHighlighted(Message):
        """The cursor moved onto another blob of the layer."""

        blob_panel: BlobPanel
        blob: BlobRef

        @property
        def control(self) -> BlobPanel:
            return self.blob_panel

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.panel: LayerPanel | None = None
        """What is shown (None: no layer yet)."""
        self._row_entry: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static("no layer selected", id="blob-title")
        table: DataTable[Text | str] = DataTable(id="blob-table", cursor_type="row",
                                                 zebra_stripes=False)
        yield table
        with Horizontal(id="histograms"):
            yield HistogramChart("data", id="hist-data")
            yield HistogramChart("diff", id="hist-diff")

    def on_mount(self) -> None:
        table = self.table
        table.add_column("blob", key="blob")
        table.add_column("shape / values", key="when")
        for name in STAT_COLUMNS:
            table.add_column(Text(name, justify="right"), key=name)

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#blob-table", DataTable)

    @property
    def selected(self) -> BlobEntry | None:
        return None if self.panel is None else self.panel.selected_entry

    def set_log(self, log: bool) -> None:
        for chart in self.query(HistogramChart):
            chart.log = log

    def show(self, panel: LayerPanel | None) -> None:
        self.panel = panel
        self._show_title(panel)
        self._show_table(panel)
        data_chart = self.query_one("#hist-data", HistogramChart)
        diff_chart = self.query_one("#hist-diff", HistogramChart)
        entry = None if panel is None else panel.selected_entry
        label = "" if entry is None else entry.label
        data_chart.title = f"{label} · data" if label else "data"
        diff_chart.title = f"{label} · diff" if label else "diff"
        data_chart.histogram = None if panel is None else panel.data_hist
        diff_chart.histogram = None if panel is None else panel.diff_hist

    def _show_title(self, panel: LayerPanel | None) -> None:
        title = self.query_one("#blob-title", Static)
        if panel is None:
            title.update("no layer selected")
            return
        info = panel.info
        text = Text()
        text.append(info.name, style="bold")
        text.append(f" ({info.type})")
        fwd = "done" if panel.forward_done else "to do"
        text.append(f"   forward {fwd} (step {panel.forward_step})")
        if panel.backward_skipped:
            text.append(f"   backward skipped: {panel.backward_reason}", style="dim")
        else:
            bwd = "done" if panel.backward_done else "to do"
            text.append(f"   backward {bwd} (step {panel.backward_step})")
            if panel.backward_reason:
                text.append(f"\n{panel.backward_reason}", style="dim")
        if info.internals:
            text.append(f"\nkeeps for backward: {', '.join(info.internals)}", style="dim")
        title.update(text)

    def _show_table(self, panel: LayerPanel | None) -> None:
        table = self.table
        old_key = None
        if table.row_count and table.cursor_row < table.row_count:
            old_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        self._row_entry = {}
        if panel is None:
            return
        style = partial(foreground, self)
        nonfinite = style("blob-panel--nonfinite")
        missing = style("blob-panel--missing")
        blank = [Text("") for _ in STAT_COLUMNS]
        for i, e in enumerate(panel.entries):
            head = Text()
            head.append(ROLE_GLYPH[e.role] + " ", style=style("blob-panel--role"))
            head.append(e.label, style="bold")
            shape = fmt_shape(e.shape) + ("  in place" if e.in_place else "")
            table.add_row(head, shape, *blank, key=f"e{i}-head")
            for kind in ("data", "diff"):
                stats = e.data if kind == "data" else e.diff
                if stats is not None:
                    cells = stats_cells(stats, nonfinite)
                    when: Text | str = _when(e, kind)
                else:
                    cells = blank
                    why = e.error or ("no gradient" if kind == "diff" and not e.needs_diff
                                      else "not computed yet")
                    when = Text(why, style=missing)
                table.add_row(Text(f"    {kind}"), when, *cells, key=f"e{i}-{kind}")
            for part in ("head", "data", "diff"):
                self._row_entry[f"e{i}-{part}"] = i
        keys = list(self._row_entry)
        target = old_key if old_key in self._row_entry and \
            self._row_entry[old_key] == panel.selected else f"e{panel.selected}-head"
        if target in self._row_entry:
            table.move_cursor(row=keys.index(target), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self.panel is None or event.row_key.value not in self._row_entry:
            return
        if event.cursor_row != self.table.cursor_row:
            return  # stale: the table was rebuilt and the cursor moved since
        i = self._row_entry[event.row_key.value]
        if i != self.panel.selected:
            self.post_message(self.BlobHighlighted(self, self.panel.entries[i].ref))
