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
probabilities, an LSTM's gates over time), the saliency map of the input (max \
|diff| over channels, once backward reached it), the gradient flow: every \
layer's data and diff L2 norm, to spot vanishing or exploding gradients; Units: \
dead ReLU and saturated Sigmoid/TanH units per layer; Depth: every layer's \
histogram as one strip (d: data or diff, D: shared or own range).

The line over the status line holds the session's notes (N lists them).

A first pass: n a few times, c to run to the end; i, fc8, onehot:281 to ask \
what class 281 looks at, then c and the Saliency tab."""

TRAINING_GUIDE = """\
Training (bpinspect --solver): each pass is forward and backward over the train \
net's batch; the last pass of an iteration (iter_size passes) ends with the \
solver's update (Δ in the schedule): clip, normalize, regularize, the update \
value, data -= diff. Select the Δ row to see every param: before the update \
its weights and summed gradient, after it the new weights and the update \
value (Caffe leaves it in the diff). n at the end of a pass begins the next \
one; c runs on through iterations to a breakpoint or max_iter; u runs to the \
start of an iteration. The third header line: the iteration, the solver and \
its learning rate, the last iteration's loss and the batch each data layer \
reads. The Training tab: the loss and the tests over iterations, and each \
param's update ratio ‖Δw‖/‖w‖ (about 1e-3 is healthy). B adds training \
conditions: the loss NaN/Inf or above a bound, a ratio above a bound, an \
iteration."""

EXTRA_KEYS = [
    ("↑ ↓", "choose a layer (schedule) or a blob (blob table)"),
    ("← ↑ → ↓", "pooling tab: move the output cell"),
    ("[ ]", "LRN / pooling tabs: previous / next channel; Gates: the gate"),
    ("{ }", "plane tabs: previous / next batch item"),
    ("ctrl+p", "command palette: every action by name"),
]


def _key_text(binding: Binding) -> str:
    names = {"question_mark": "?", "exclamation_mark": "!", "escape": "escape",
             "shift+tab": "shift+tab"}
    return " / ".join(names.get(k, k.upper() if k.startswith("f") and k[1:].isdigit() else k)
                      for k in binding.key.split(","))


def key_rows(bindings: Iterable[BindingType],
             leave_out: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
    """(keys, description, tooltip) of each binding whose action is not in ``leave_out``."""
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.action not in leave_out:
            rows.append((_key_text(b), b.description, b.tooltip))
    return rows


class HelpScreen(ModalScreen[None]):
    """Keys (from the bindings themselves, so the list is always complete) and a guide;
    a training session's keys and guide only when the session trains."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "close", id="help-close",
                tooltip="Back to the debugger"),
    ]

    def __init__(self, training: bool = False) -> None:
        super().__init__()
        self.training = training
        """The session is a TrainingSession: list its keys and explain its views."""

    def compose(self) -> ComposeResult:
        from bpinspect.tui.app import BpinspectApp
        from bpinspect.tui.screens.main import TRAINING_ACTIONS, MainScreen

        leave_out = frozenset() if self.training else TRAINING_ACTIONS

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("does")
        table.add_column("")
        for key, description, tooltip in key_rows(MainScreen.BINDINGS, leave_out) + key_rows(
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
                if self.training:
                    yield Static("\n" + TRAINING_GUIDE, id="help-training")

    def action_close(self) -> None:
        self.dismiss(None)
