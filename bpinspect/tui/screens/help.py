"""Every key, and how to read the screen: what a first-time user needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SCREEN_GUIDE = """\
bpinspect runs a Caffe net one layer at a time: every layer forward (→), then \
every layer backward (←). Nothing runs until you press a key.

Header: the net, its phase (train/test), where the math runs, which weights \
(a seeded MSRA filler when no --weights was given: the numbers are then \
random but reproducible), and the step the pass is at.

Schedule (left): one line per layer. ▶→ / ▶← marks the step that runs next; \
the two columns after it say whether the layer's forward and backward have \
run (✓ done, · to do, – this layer needs no backward: the blob panel says why). \
● is a breakpoint (●→ forward only, ●← backward only). Move with ↑ ↓.

Blobs (top right): the selected layer's bottoms (in), tops (out) and params \
(prm) with their shape, and statistics of data and diff as this layer saw \
them: bottoms before its forward, tops after it, the top diff it received in \
backward, the diffs it wrote. NaN/Inf counts turn red. Below: histograms of \
the blob under the cursor (l: log counts).

Tabs (bottom right): what the selected layer keeps for its backward (LRN \
scale cache, max-pooling argmax, concat/split slices, dropout mask, softmax \
probabilities), the saliency map of the input (max |diff| over channels, \
once backward reached it) and the gradient flow: every layer's data and diff \
L2 norm, to spot vanishing or exploding gradients.

A first pass: n a few times, c to run to the end; i, fc8, onehot:281 to ask \
what class 281 looks at, then c and the Saliency tab."""

EXTRA_KEYS = [
    ("↑ ↓", "choose a layer (schedule) or a blob (blob table)"),
    ("← ↑ → ↓", "pooling tab: move the output cell"),
    ("[ ]", "LRN / pooling tabs: previous / next channel"),
    ("{ }", "plane tabs: previous / next batch item"),
    ("ctrl+p", "command palette: every action by name"),
]


def _key_text(binding: Binding) -> str:
    names = {"question_mark": "?", "escape": "escape", "shift+tab": "shift+tab"}
    return " / ".join(names.get(k, k.upper() if k.startswith("f") and k[1:].isdigit() else k)
                      for k in binding.key.split(","))


def key_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            rows.append((_key_text(b), b.description, b.tooltip))
    return rows


class HelpScreen(ModalScreen[None]):
    """Keys (from the bindings themselves, so the list is always complete) and a guide."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "close", id="help-close",
                tooltip="Back to the debugger"),
    ]

    def compose(self) -> ComposeResult:
        from bpinspect.tui.app import BpinspectApp
        from bpinspect.tui.screens.main import MainScreen

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("does")
        table.add_column("")
        for key, description, tooltip in key_rows(MainScreen.BINDINGS) + key_rows(
                BpinspectApp.BINDINGS):
            table.add_row(key, description, Text(tooltip, style="dim"))
        for key, what in EXTRA_KEYS:
            table.add_row(key, "", Text(what, style="dim"))
        with Vertical(id="help-dialog"):
            yield Static(Text("bpinspect — keys (escape closes)", style="bold"),
                         classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(table, id="help-keys")
                yield Static(Text("\nReading the screen\n", style="bold"))
                yield Static(SCREEN_GUIDE, id="help-guide")

    def action_close(self) -> None:
        self.dismiss(None)
