"""An LSTM's (or RNN's) gates over time: what its backward through time will reuse.

One gate or state of one batch item as a heatmap, time steps down and hidden units
across, so a forget gate stuck at 0 (the cell forgets every step), an input gate
stuck at 1, or a hidden state that saturates shows as a band; beside it every
gate's mean per time step and its saturated fraction, and the steps where
``cont`` starts a new sequence (the state is reset there).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from bpinspect.session.internals_view import RecurrentView
from bpinspect.tui.formatting import fmt_num, fmt_percent, fmt_shape, stats_line
from bpinspect.tui.widgets.heatmap import Heatmap
from bpinspect.tui.widgets.plane_pane import PlanePane
from bpinspect.tui.widgets.units_pane import spark

FORMULA = {
    "LSTM": "i f o = σ(a);  g = tanh(a);  c_t = cont·f·c_{t-1} + i·g;  h_t = o·tanh(c_t)",
    "LSTMUnit": "i f o = σ(a);  g = tanh(a);  c = cont·f·c_prev + i·g;  h = o·tanh(c)",
    "RNN": "h_t = tanh(W_xh x_t + b_h + W_hh cont·h_{t-1});  o_t = tanh(W_ho h_t + b_o)",
}
TIME_LINE = 32  # time steps in each gate's line of means (the last ones)


class GatesPane(PlanePane):
    """``[ ]`` choose the gate (i, f, o, g, c, h), ``{ }`` the batch item."""

    DEFAULT_CSS = """
    GatesPane > #gates-info { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    GatesPane > #gates-legend { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.view: RecurrentView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="gates-info")
        yield Static("", id="gates-legend")
        yield Heatmap(id="gates-heatmap")

    def show(self, view: RecurrentView | None, message: str = "") -> None:
        self.view = view
        info = self.query_one("#gates-info", Static)
        heatmap = self.query_one(Heatmap)
        legend = self.query_one("#gates-legend", Static)
        if view is None:
            info.update(Text(message or "the gates exist once the layer ran forward",
                             style="dim"))
            heatmap.set_plane(None)
            legend.update("")
            return
        steps, items, units = view.shape
        self.set_extent(items, len(view.names))
        self.item, self.channel = view.n, view.index
        info.update(self.text(view))
        heatmap.set_plane(view.plane)
        name = view.names[view.index]
        marks = Text(f"{name}[:, {view.n}, :] ({fmt_shape(view.plane.shape)}, time ↓ units →):  ")
        marks.append_text(heatmap.legend())
        legend.update(marks)

    @staticmethod
    def text(view: RecurrentView) -> Text:
        steps, items, units = view.shape
        text = Text()
        text.append(view.layer, style="bold")
        text.append(f"  {view.type}  {steps} time step{'s' if steps != 1 else ''} × "
                    f"{items} item{'s' if items != 1 else ''} × {units} units\n")
        text.append(FORMULA.get(view.type, "") + "\n", style="dim")
        for k, (name, what) in enumerate(zip(view.names, view.descriptions, strict=True)):
            chosen = k == view.index
            text.append(f"{'▶' if chosen else ' '} {name} ", style="bold" if chosen else "")
            means = view.time_mean[name]
            text.append(f"mean over time {fmt_num(float(means.mean())):>9}  ")
            sat = view.saturated.get(name)
            text.append(f"{'saturated ' + fmt_percent(sat) if sat is not None else '':<17}  ")
            lo, hi = float(means.min()), float(means.max())
            scaled = [(m - lo) / (hi - lo) if hi > lo else 0.5 for m in means]
            text.append(spark(scaled, min(TIME_LINE, len(scaled))), style="dim")
            text.append(f"  {what}\n", style="dim")
        text.append(f"{view.names[view.index]} over every step and item: ")
        text.append_text(stats_line(view.stats))
        if view.resets:
            shown = ", ".join(str(t) for t in view.resets[:12])
            more = " …" if len(view.resets) > 12 else ""
            text.append(f"\nnew sequence (cont 0) at t = {shown}{more}", style="dim")
        text.append("\neach line: the gate's mean per time step (own min..max); "
                    "[ ] gate  { } item", style="dim")
        return text
