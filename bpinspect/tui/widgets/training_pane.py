"""The Training tab: the loss plot, the learning rate, and every param's update ratio.

Shown for a training session only (``bpinspect --solver``). The numbers are the
session's iteration summaries (``TrainingSession.iterations``): per param the
ratio ‖Δw‖/‖w‖ of the last update (about 1e-3 is healthy: far above, the rate is
too high; far below, the layer barely learns), the smallest and largest ratio
over every iteration kept, its local rate (lr × lr_mult) and the norm of the
gradient that went in. Under the loss, the ratio of the param selected in the
table over every iteration, on a log scale against 1e-3.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable

from bpinspect.tui.formatting import fmt_num
from bpinspect.tui.view_data import TrainingData
from bpinspect.tui.widgets.loss_plot import LossPlot
from bpinspect.tui.widgets.ratio_plot import RatioPlot
from bpinspect.tui.widgets.text_view import TextView

COLUMNS = ("param", "‖Δw‖/‖w‖", "min", "max", "local lr", "‖grad‖")
def history_text(archived: str) -> str:
    """What the history holds: whole passes to step back into, summaries of the rest."""
    kept = "this pass only" if archived == "nothing" else \
        f"this pass and {archived}, p steps back into them"
    return f"full arrays: {kept}; every iteration: loss, rate, update ratios, gradient flow"


def info_text(data: TrainingData | None, message: str = "") -> Text:
    """``lr 0.01 at iteration 3 of 100 · 3 iterations kept`` and what the history holds."""
    if data is None:
        return Text(message or "not a training session", style="dim")
    text = Text()
    text.append("lr ", style="dim")
    text.append(fmt_num(data.rate) if data.rate is not None else "?")
    text.append(f"  at iteration {data.iteration} of {data.max_iter}", style="dim")
    text.append(f"   {data.iterations_kept} iteration(s) summarized", style="dim")
    if data.last_iteration is not None:
        text.append(f"   table: the update of iteration {data.last_iteration}")
    text.append("\n" + history_text(data.archived), style="dim")
    return text


def ratio_cell(value: float) -> Text:
    """A ratio: red when NaN/Inf, yellow above 0.01 (ten times the usual 1e-3), dim
    below 1e-5 (the layer barely moves)."""
    style = ""
    if not math.isfinite(value):
        style = "bold red"
    elif value > 1e-2:
        style = "bold yellow"
    elif value < 1e-5:
        style = "dim"
    return Text(fmt_num(value), style=style, justify="right")


def _series(data: TrainingData) -> tuple[object, ...]:
    return data.loss, data.smoothed_loss, data.tests


class TrainingPane(Vertical):
    """Info lines over the loss plot and the table of update ratios."""

    DEFAULT_CSS = """
    TrainingPane {
        height: 1fr;
    }
    TrainingPane > #training-info {
        height: 2;
    }
    TrainingPane > Horizontal {
        height: 1fr;
    }
    TrainingPane #loss-column {
        width: 1fr;
    }
    TrainingPane #loss-legend {
        height: 2;
    }
    TrainingPane #ratio-table {
        width: auto;
        max-width: 55%;
        height: 1fr;
        margin: 0 0 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.data: TrainingData | None = None
        """What is shown (None: not a training session, or nothing gathered yet)."""

    def compose(self) -> ComposeResult:
        yield TextView("", id="training-info")
        with Horizontal():
            with Vertical(id="loss-column"):
                yield TextView("", id="loss-legend")
                yield LossPlot(id="loss-plot")
                yield RatioPlot(id="ratio-plot")
            table: DataTable[Text | str] = DataTable(id="ratio-table", cursor_type="row",
                                                     zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#ratio-table", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#ratio-table", DataTable)

    def show(self, data: TrainingData | None, message: str = "") -> None:
        old, self.data = self.data, data
        self.query_one("#training-info", TextView).update(info_text(data, message))
        if data is None or old is None or _series(data) != _series(old):
            plot = self.query_one(LossPlot)
            plot.data = data  # redrawn only when a series changed
            self.query_one("#loss-legend", TextView).update(plot.legend_text())
        if old is not None and data is not None and old.params == data.params:
            return
        self._fill_table(data)
        self._plot_selected()

    def _fill_table(self, data: TrainingData | None) -> None:
        table = self.table
        row = table.cursor_row
        table.clear()
        for p in () if data is None else data.params:
            table.add_row(p.param, ratio_cell(p.ratio), ratio_cell(p.ratio_min),
                          ratio_cell(p.ratio_max),
                          Text(fmt_num(p.local_rate), justify="right"),
                          Text(fmt_num(p.diff_l2), justify="right"), key=p.param)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _plot_selected(self) -> None:
        params = () if self.data is None else self.data.params
        row = self.table.cursor_row
        self.query_one(RatioPlot).row = params[row] if 0 <= row < len(params) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._plot_selected()
