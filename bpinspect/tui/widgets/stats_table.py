"""A table of statistics rows (min, max, mean, std, L2, zeros, NaN/Inf) with a label each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bpinspect.session.stats import BlobStats
from bpinspect.tui.formatting import STAT_COLUMNS, foreground, forget_foreground, stats_cells

StatsRow = tuple[str | Text, str | Text, BlobStats | None]  # (label, detail, stats)


class StatsTable(DataTable[Text | str]):
    """Rows of ``(label, detail, stats)``; a missing statistics row reads "not yet"."""

    COMPONENT_CLASSES: ClassVar[set[str]] = DataTable.COMPONENT_CLASSES | {
        "stats-table--nonfinite",
        "stats-table--missing",
    }
    """
    | Class | Description |
    | :- | :- |
    | `stats-table--nonfinite` | NaN/Inf counts above zero. |
    | `stats-table--missing` | Rows whose values are not computed yet. |
    """

    DEFAULT_CSS = """
    StatsTable {
        height: auto;
        max-height: 14;
    }
    StatsTable > .stats-table--nonfinite { color: $error; text-style: bold; }
    StatsTable > .stats-table--missing { color: $text-muted; }
    """

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)

    def __init__(self, first_column: str = "", detail_column: str = "", *,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes, cursor_type="none", zebra_stripes=False)
        self._headers = (first_column, detail_column)

    def on_mount(self) -> None:
        self.add_column(self._headers[0], key="label")
        self.add_column(self._headers[1], key="detail")
        for name in STAT_COLUMNS:
            self.add_column(Text(name, justify="right"), key=name)

    def set_rows(self, rows: Sequence[StatsRow]) -> None:
        self.clear()
        nonfinite = foreground(self, "stats-table--nonfinite")
        missing = foreground(self, "stats-table--missing")
        for label, detail, stats in rows:
            cells = stats_cells(stats, nonfinite)
            if stats is None:
                cells[0] = Text("not yet", style=missing, justify="right")
            self.add_row(label, detail, *cells)
