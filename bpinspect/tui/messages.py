"""Messages between the session worker, the app and the screen (past tense, dataclasses).

The worker thread posts them with ``post_message`` (thread-safe); progress
messages define ``can_replace`` so that a flood of them coalesces into the
newest one while the UI is busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from bpinspect.session.schedule import Step
from bpinspect.session.session import Stop
from bpinspect.tui.view_data import ViewData


@dataclass
class LoadProgressed(Message):
    """Building the session got further (parsing, weights, inputs)."""

    done: int
    total: int | None  # None: no count known (an indeterminate bar)
    what: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgressed)


@dataclass
class SessionLoaded(Message):
    """The session exists; ``notes`` are what it says about itself (weights, inputs)."""

    notes: list[str]
    seconds: float
    blobs: list[str] = field(default_factory=list)  # every blob name, for the inject dialog
    export_dir: str = "."
    training: bool = False  # a TrainingSession: its keys, tab and header line
    data_layers: bool = False  # the net reads a data source: the Batch tab


@dataclass
class SessionFailed(Message):
    """Building the session failed; ``message`` is one line for the user."""

    message: str
    details: str = ""  # a Python layer's traceback (its own frames)


@dataclass
class RunStarted(Message):
    """A command began in the worker: ``label`` says what (e.g. ``step → conv1``)."""

    label: str
    total: int | None  # steps a continue may run; None for a single command


@dataclass
class RunProgressed(Message):
    """A continue ran one more step."""

    done: int
    total: int
    step: Step
    where: str = ""  # training: "iteration 3" (done/total then count iterations)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgressed)


@dataclass
class RunStopped(Message):
    """A continue, step or other command ended; ``stop`` is set for continue/step."""

    label: str
    status: str  # one line for the status bar
    severity: str = "information"  # "warning": a breakpoint or condition stopped it
    result: Stop | None = None  # (not `stop`: Message.stop() stops bubbling)
    compute_seconds: float = 0.0


@dataclass
class ViewUpdated(Message):
    """Fresh data for the screen (after a command, or for a new selection)."""

    data: ViewData
    moved: bool  # the cursor moved: follow it in the layer list
    gather_seconds: float = 0.0


@dataclass
class GradientChecked(Message):
    """``g`` ran the numerical gradient check of a layer (a netcheck.LayerCheck)."""

    check: Any
    eps: float
    threshold: float


@dataclass
class ConsoleEvaluated(Message):
    """An input of the ``!`` console ran (posted to the console screen)."""

    output: str  # what it printed and echoed, or its traceback, bounded
    status: str  # "ok" | "error" | "interrupted"


@dataclass
class CommandFailed(Message):
    """A user error (BpinspectError) in a command: shown, never raised."""

    label: str
    message: str


@dataclass
class LayerCodeFailed(Message):
    """The user's Python layer raised in a command: the modal shows the line and the
    layer's own traceback; the session stays where it was."""

    label: str
    message: str
    details: str = ""


@dataclass
class InternalErrorRaised(Message):
    """A bug: shown in the error modal with its traceback, the app keeps running."""

    label: str
    message: str
    details: str = ""


@dataclass
class NotesAdded(Message):
    """The session said something new (history dropped, injection rewound, ...)."""

    notes: list[str] = field(default_factory=list)


@dataclass
class FilesExported(Message):
    paths: list[str]
    directory: str


@dataclass
class PlaneSelected(Message):
    """A plane view (LRN, pooling, dropout, saliency) moved to another item or channel."""

    item: int
    channel: int


@dataclass
class PoolCellMoved(Message):
    """The pooling view's output cell moved (arrow keys)."""

    y: int
    x: int
