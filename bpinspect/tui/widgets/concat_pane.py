"""How Concat cuts its top diff into its bottoms' slices (Slice: the reverse), and how a
Split sums the diffs of a blob read several times (seed 000: a blob concatenated with
itself receives the sum of both slices' gradients)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from bpinspect.session.internals_view import ConcatView, SplitView
from bpinspect.tui.formatting import fmt_num, fmt_shape
from bpinspect.tui.widgets.stats_table import StatsRow, StatsTable


class ConcatPane(Vertical):
    """Offsets and statistics per slice (Concat, Slice), or per contribution (Split)."""

    DEFAULT_CSS = """
    ConcatPane > #concat-info { height: auto; }
    ConcatPane > #concat-note { height: auto; margin: 1 0 0 0; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="concat-info")
        yield StatsTable("blob", "slice / role", id="concat-table")
        yield Static("", id="concat-note")

    def show(self, view: ConcatView | SplitView | None, extra: dict[str, Any],
             message: str = "") -> None:
        info = self.query_one("#concat-info", Static)
        table = self.query_one(StatsTable)
        note = self.query_one("#concat-note", Static)
        if view is None:
            info.update(Text(message or "nothing to show until the layer ran forward",
                             style="dim"))
            table.set_rows([])
            note.update("")
            return
        if isinstance(view, SplitView):
            self._show_split(view, info, table, note)
        else:
            self._show_concat(view, extra.get("copies", {}), info, table, note)

    def _show_concat(self, view: ConcatView, copies: dict[str, str], info: Static,
                     table: StatsTable, note: Static) -> None:
        text = Text()
        text.append(view.layer, style="bold")
        parts = " + ".join(f"{s.blob} [{s.start}:{s.end})" for s in view.slices)
        if view.type == "Concat":
            text.append(f"  Concat along axis {view.axis}: top {view.whole} = {parts}\n")
            text.append("backward cuts the top diff into these slices, one per bottom",
                        style="dim")
        else:
            text.append(f"  Slice along axis {view.axis}: bottom {view.whole} = {parts}\n")
            text.append("backward pastes each top's diff into its slice of the bottom diff",
                        style="dim")
        info.update(text)
        rows: list[StatsRow] = []
        for s in view.slices:
            where = f"[{s.start}:{s.end}) {fmt_shape(s.shape)}"
            rows.append((Text(s.blob, style="bold"), f"{where} data", s.data_stats))
            rows.append(("", "diff", s.diff_stats))
        table.set_rows(rows)
        if copies:
            by_split: dict[str, list[str]] = {}
            for blob, split in copies.items():
                by_split.setdefault(split, []).append(blob)
            lines = Text()
            for split, blobs in by_split.items():
                lines.append(f"{', '.join(blobs)} are copies made by {split} (Split) of one "
                             "blob read more than once; its backward sums their diffs: "
                             f"select {split} to see each contribution and the sum.\n")
            note.update(lines)
        else:
            note.update("")

    def _show_split(self, view: SplitView, info: Static, table: StatsTable,
                    note: Static) -> None:
        text = Text()
        text.append(view.layer, style="bold")
        text.append(f"  Split: {view.bottom} is read by {len(view.contributions)} consumers; "
                    "backward sums the diffs they give back into its diff\n")
        text.append("each contribution as the Split's backward received it, their sum, and "
                    f"the diff it wrote into {view.bottom}", style="dim")
        info.update(text)
        rows: list[StatsRow] = [(Text(top, style="bold"), "contribution diff", stats)
                                for top, stats in view.contributions]
        rows.append((Text("sum", style="bold"), "of the contributions", view.sum_stats))
        rows.append((Text(view.bottom, style="bold"), "bottom diff", view.bottom_diff_stats))
        table.set_rows(rows)
        if view.max_abs_mismatch is None:
            note.update(Text("the sum appears once backward has reached this layer",
                             style="dim"))
        else:
            note.update(f"max |bottom diff − sum of contributions| = "
                        f"{fmt_num(view.max_abs_mismatch)}")
