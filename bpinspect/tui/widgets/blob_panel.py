"""The selected layer's bottoms, tops and params: shape, statistics of data and diff, and
the histograms of the blob under the cursor."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message

from bpinspect.tui.formatting import fmt_num
from bpinspect.tui.view_data import BlobEntry, BlobRef, LayerPanel, UpdateInfo
from bpinspect.tui.widgets.blob_table import BlobTable
from bpinspect.tui.widgets.histogram import HistogramChart
from bpinspect.tui.widgets.text_view import TextView
from bpinspect.tui.widgets.units_pane import units_line


def title_text(panel: LayerPanel | None) -> Text:
    """``conv1 (Convolution)  forward done (step 1)  backward to do (step 44)``, why it
    needs backward (or not), and what it keeps for its backward."""
    if panel is None:
        return Text("no layer selected", style="dim")
    if panel.update is not None:
        return update_title_text(panel.update)
    info = panel.info
    text = Text()
    text.append(info.name, style="bold")
    text.append(f" ({info.type})")
    text.append(f"   forward {'done' if panel.forward_done else 'to do'} "
                f"(step {panel.forward_step})")
    if panel.backward_skipped:
        text.append("   backward skipped", style="bold")
        units(text, panel)
        text.append(f"\n{panel.backward_reason}", style="dim")
    else:
        text.append(f"   backward {'done' if panel.backward_done else 'to do'} "
                    f"(step {panel.backward_step})")
        units(text, panel)
        if panel.backward_reason:
            text.append(f"\n{panel.backward_reason}", style="dim")
    if info.internals:
        text.append(f"\nkeeps for backward: {', '.join(info.internals)}", style="dim")
    return text


def units(text: Text, panel: LayerPanel) -> None:
    """The line ``dead units: 12 of 96 channels (12.5%)`` of a ReLU/Sigmoid/TanH layer."""
    if panel.units is not None:
        style = "bold" if panel.units.flagged else ""
        text.append(f"\n{units_line(panel.units)}", style=style)


def update_title_text(update: UpdateInfo) -> Text:
    """``SGD update of iteration 3 (step 19) done  lr 0.01  largest ‖Δw‖/‖w‖ ...`` and what
    the data and diff columns hold before and after it."""
    text = Text()
    text.append(f"{update.solver_type} update", style="bold")
    text.append(f" of iteration {update.iteration}   {'done' if update.done else 'to do'} "
                f"(step {update.step})")
    if update.rate is not None:
        text.append(f"   lr {fmt_num(update.rate)}")
    if update.max_ratio is not None:
        name, ratio = update.max_ratio
        text.append(f"   largest ‖Δw‖/‖w‖ {fmt_num(ratio)} ({name})")
    if update.clip_scale is not None:
        text.append(f"   clipped ×{fmt_num(update.clip_scale)}")
    if update.done:
        text.append("\ndata: the new weights; diff: the update value subtracted from them "
                    "(Caffe leaves it in the diff)", style="dim")
    else:
        text.append("\ndata: the weights; diff: the gradient summed over the iteration's "
                    "passes; then clip, normalize, regularize, data -= update", style="dim")
    text.append("\nevery param's ratio and local rate: the Training tab", style="dim")
    return text


class BlobPanel(Vertical):
    """Title, statistics table, and data / diff histograms side by side."""

    DEFAULT_CSS = """
    BlobPanel > #blob-title {
        height: 3;
        padding: 0 1;
    }
    BlobPanel > #histograms {
        height: 7;
    }
    BlobPanel > #histograms > HistogramChart {
        width: 1fr;
        height: 7;
        padding: 0 1;
    }
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

    def compose(self) -> ComposeResult:
        yield TextView("no layer selected", id="blob-title")
        yield BlobTable(id="blob-table")
        with Horizontal(id="histograms"):
            yield HistogramChart("data", id="hist-data")
            yield HistogramChart("diff", id="hist-diff")

    @property
    def table(self) -> BlobTable:
        return self.query_one(BlobTable)

    @property
    def selected(self) -> BlobEntry | None:
        return None if self.panel is None else self.panel.selected_entry

    def set_log(self, log: bool) -> None:
        for chart in self.query(HistogramChart):
            chart.log_counts = log

    def show(self, panel: LayerPanel | None) -> None:
        self.panel = panel
        self.query_one("#blob-title", TextView).update(title_text(panel))
        self.table.show(panel)
        entry = None if panel is None else panel.selected_entry
        label = "" if entry is None else entry.label
        data_chart = self.query_one("#hist-data", HistogramChart)
        diff_chart = self.query_one("#hist-diff", HistogramChart)
        data_chart.title = f"{label} · data" if label else "data"
        diff_chart.title = f"{label} · diff" if label else "diff"
        data_chart.histogram = None if panel is None else panel.data_hist
        diff_chart.histogram = None if panel is None else panel.diff_hist

    def on_blob_table_cursor_moved(self, event: BlobTable.CursorMoved) -> None:
        event.stop()
        self.post_message(self.BlobHighlighted(self, event.blob))
