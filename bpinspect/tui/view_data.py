"""What the screen shows, gathered from the session in the worker thread.

Only Session methods compute anything here (statistics, histograms, layer
internals, all reduced on the device); this module picks *which* values to
ask for and packs the small host results into frozen dataclasses that the
widgets display. It runs in the session worker, never on the UI thread while
a step runs (a Session is not thread-safe).

Values are shown from the selected layer's point of view: its bottoms' data
as its forward read them, its tops' data as its forward wrote them, its
tops' diff as its backward received it and its bottoms' and params' diff as
its backward wrote them. An in-place layer (ReLU conv1 -> conv1) thus shows
both sides of its work, although the net holds one array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.session.batch_view import DEFAULT_COUNT as BATCH_PAGE
from bpinspect.session.batch_view import batch_view
from bpinspect.session.depth import depth_histograms
from bpinspect.session.schedule import BACKWARD, FORWARD, UPDATE, Step
from bpinspect.session.session import LayerInfo, Session
from bpinspect.session.stats import BlobStats, Histogram
from bpinspect.session.units import UNIT_LAYER_TYPES, UnitRow, session_units, unit_row

# Tabs beside the blob panel. Internals tabs show for the layer types that have them.
TAB_LRN = "tab-lrn"
TAB_GATES = "tab-gates"  # an LSTM's / RNN's gates over time
TAB_POOLING = "tab-pooling"
TAB_CONCAT = "tab-concat"
TAB_DROPOUT = "tab-dropout"
TAB_SOFTMAX = "tab-softmax"
TAB_SALIENCY = "tab-saliency"
TAB_FLOW = "tab-flow"
TAB_TRAINING = "tab-training"  # a training session only: loss, rate, update ratios
TAB_BATCH = "tab-batch"  # a net with a data layer: the images it read, with labels
TAB_UNITS = "tab-units"  # dead / saturated units of every ReLU, Sigmoid, TanH layer
TAB_DEPTH = "tab-depth"  # every layer's top data or diff as a heat strip, one range
INTERNALS_TABS = (TAB_LRN, TAB_POOLING, TAB_CONCAT, TAB_DROPOUT, TAB_SOFTMAX, TAB_GATES)
INTERNALS_TAB_OF_TYPE = {
    "LRN": TAB_LRN,
    "Pooling": TAB_POOLING,
    "Concat": TAB_CONCAT,
    "Slice": TAB_CONCAT,
    "Split": TAB_CONCAT,
    "Dropout": TAB_DROPOUT,
    "Softmax": TAB_SOFTMAX,
    "SoftmaxWithLoss": TAB_SOFTMAX,
    "LSTM": TAB_GATES,
    "RNN": TAB_GATES,
    "LSTMUnit": TAB_GATES,
}
DEFAULT_BINS = 48

BlobRef = tuple[str, int | None]  # (blob, None) or (layer, param index)

# The layer list's row (and the request's "layer") of a training pass's update step:
# not a layer name (a net may have a layer called "update").
UPDATE_ROW = "\u0394 update"


def is_training(session: Session) -> bool:
    """The session runs a solver's iterations (a TrainingSession)."""
    return hasattr(session, "iterations") and hasattr(session, "solver")


def update_step(session: Session) -> Step | None:
    """The update step of the pass being viewed (the last pass of an iteration has one)."""
    last = session.schedule[-1] if session.schedule else None
    return last if last is not None and last.direction == UPDATE else None


def row_of(step: Step) -> str:
    """The layer list row that stands for ``step``."""
    return UPDATE_ROW if step.direction == UPDATE else step.layer_name


@dataclass(frozen=True)
class TrainingInfo:
    """Where a training session is: the header's third line."""

    iteration: int  # the iteration being run
    max_iter: int
    pass_index: int  # 0-based pass within the iteration
    iter_size: int
    solver_type: str
    rate: float | None  # the learning rate of this iteration
    loss: float | None  # the last finished iteration's loss (None: none finished yet)
    smoothed_loss: float | None
    loss_iteration: int | None  # which iteration that loss is of
    batches: tuple[str, ...]  # what each data layer reads in this pass
    finished: bool  # max_iter reached


@dataclass(frozen=True)
class HeaderInfo:
    net: str
    phase: str  # the net's phase: "train" | "test"
    device: str
    weights: str
    injections: tuple[str, ...]  # "fc8=onehot:281"
    cursor: int  # steps done (the index of the next step)
    total: int
    direction: str  # where the cursor is: "forward" | "backward" | "done"
    next_label: str | None
    last_label: str | None
    training: TrainingInfo | None = None  # a training session's iteration, loss, batch
    memory: str = ""  # what the net needs, as planned (engine/memory.py): "480 MiB"


@dataclass(frozen=True)
class LayerRow:
    """One line of the layer list."""

    name: str
    type: str
    index: int
    forward_done: bool
    backward_done: bool
    backward_skipped: bool  # this layer's backward step runs nothing
    backward_reason: str  # why it is skipped, or why it runs
    current: str | None  # "forward" | "backward" | "update" when the next step is this row's
    breakpoint: str | None  # "forward" | "backward" | "both" | None
    update: bool = False  # the row of a training pass's update step (forward_done: it ran)
    forward_ms: float | None = None  # the last forward's time (None: not timed yet)
    backward_ms: float | None = None
    memory_bytes: int | None = None  # data + diff of its tops and params (None: not known)


@dataclass(frozen=True)
class Agreement:
    """How a blob's data or diff compares with the ``--compare`` dump's array."""

    status: str  # compare.AGREE, DIFFER, SHAPE, ONLY_A, ONLY_B, PENDING
    rel_diff: float | None  # max |a - b| / max |a| (None: not compared)


@dataclass(frozen=True)
class CompareTo:
    """The dump a TUI opened with ``--compare DUMP`` marks the blob table against."""

    dump: Any  # a session.compare.Dump
    rtol: float
    atol: float


@dataclass(frozen=True)
class BlobEntry:
    """A bottom, top or param of the selected layer, with its statistics."""

    role: str  # "bottom" | "top" | "param"
    name: str  # blob name; for a param, the layer name
    param: int | None
    shape: tuple[int, ...]
    data: BlobStats | None
    diff: BlobStats | None
    data_step: int | None  # the step whose values are shown (None: the current state)
    diff_step: int | None
    in_place: bool = False
    needs_diff: bool = True  # False: no gradient is ever computed for it
    error: str | None = None
    data_label: str | None = None  # what the values are, instead of the step ("new weights")
    diff_label: str | None = None
    data_vs: Agreement | None = None  # agreement with the --compare dump (None: no dump)
    diff_vs: Agreement | None = None

    @property
    def ref(self) -> BlobRef:
        return (self.name, self.param)

    @property
    def label(self) -> str:
        return self.name if self.param is None else f"{self.name}#{self.param}"


@dataclass(frozen=True)
class UpdateInfo:
    """The update step of a training pass, for the blob panel's title."""

    step: int  # its index in the schedule
    done: bool  # it ran: the params hold the new weights and the update value
    iteration: int
    solver_type: str
    rate: float | None  # the learning rate the update used (done) or will use
    max_ratio: tuple[str, float] | None  # the largest ‖Δw‖/‖w‖ of that update (done)
    clip_scale: float | None  # the factor ClipGradients applied, if it did


@dataclass(frozen=True)
class TrainingData:
    """The training tab: the loss over iterations, tests, the rate and the update ratios."""

    loss: tuple[tuple[int, ...], tuple[float, ...]]  # (iterations, values)
    smoothed_loss: tuple[tuple[int, ...], tuple[float, ...]]
    tests: tuple[tuple[str, tuple[int, ...], tuple[float, ...]], ...]  # (name, its, values)
    rate: float | None  # this iteration's learning rate
    last_iteration: int | None  # the iteration the params' numbers are of
    params: tuple[ParamRow, ...]
    iterations_kept: int  # how many iterations have summaries
    iteration: int
    max_iter: int
    archived: str = "nothing"  # the earlier passes kept whole, e.g. "iterations 3–18 (40 MiB)"


@dataclass(frozen=True)
class ParamRow:
    """One learnable param's last update, with the range of its ratio over iterations."""

    param: str  # "layer#i"
    ratio: float  # ‖Δw‖/‖w‖ of the last update
    local_rate: float
    diff_l2: float  # the gradient that went in
    update_l2: float
    data_l2: float  # ‖w‖ before that update
    ratio_min: float  # over every iteration kept (NaN ratios left out)
    ratio_max: float
    history: tuple[tuple[int, ...], tuple[float, ...]] = ((), ())  # (iterations, ratios)


@dataclass(frozen=True)
class LayerPanel:
    info: LayerInfo
    entries: tuple[BlobEntry, ...]
    selected: int  # index of the entry whose histograms are shown
    data_hist: Histogram | None
    diff_hist: Histogram | None
    forward_step: int
    backward_step: int
    forward_done: bool
    backward_done: bool
    backward_skipped: bool
    backward_reason: str
    update: UpdateInfo | None = None  # set when the panel shows a training update step
    units: UnitRow | None = None  # a ReLU/Sigmoid/TanH layer's dead / saturated units

    @property
    def selected_entry(self) -> BlobEntry | None:
        return self.entries[self.selected] if self.entries else None


@dataclass(frozen=True)
class ViewRequest:
    """What the screen wants to see; built on the UI thread from its widgets' state."""

    layer: str | None = None
    blob: BlobRef | None = None
    tab: str = TAB_FLOW
    bins: int = DEFAULT_BINS
    item: int = 0  # batch item of the plane views (LRN, pooling, dropout, saliency)
    channel: int = 0  # channel of the LRN and pooling views
    pool_cell: tuple[int, int] = (0, 0)  # output cell (y, x) of the pooling view
    depth_kind: str = "data"  # what the depth tab shows: "data" | "diff"
    depth_per_layer: bool = False  # the depth tab: each strip over its own range


@dataclass(frozen=True)
class InternalsData:
    """The active tab's content: one of the session's views, or a message why not."""

    tab: str
    layer: str | None
    view: Any = None  # LRNView | PoolingView | ConcatView | SplitView | DropoutView | ...
    cell: Any = None  # PoolCell for the pooling tab
    extra: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class ViewData:
    header: HeaderInfo
    rows: tuple[LayerRow, ...]
    request: ViewRequest
    panel: LayerPanel | None
    internals: InternalsData | None
    conditions: tuple[tuple[str, float | None], ...] = ()  # (kind, bound) of each condition
    training_conditions: TrainingConditionsState | None = None  # a training session's


@dataclass(frozen=True)
class TrainingConditionsState:
    """A training session's loss, ratio and iteration breakpoints (the dialog's start)."""

    loss_nonfinite: bool
    loss_above: float | None
    ratio_above: float | None
    iterations: tuple[int, ...]


def effective_tab(preferred: str, layer_type: str | None) -> str:
    """The tab to show for a layer: the preferred one where it applies; an internals tab
    stands for "this layer's internals" (LRN on an LRN layer, Pooling on a pooling one),
    and falls back to the gradient flow on a layer that keeps none."""
    own = INTERNALS_TAB_OF_TYPE.get(layer_type or "")
    if preferred in INTERNALS_TABS:
        return own or TAB_FLOW
    return preferred


# ------------------------------------------------------------------------- header + list
def header_info(session: Session) -> HeaderInfo:
    net = session.net
    nxt, last = session.next_step, session.last_step
    return HeaderInfo(
        net=net.name,
        phase=net.phase,
        device=session.device_name,
        weights=net.weights_source,
        injections=tuple(f"{b}={inj.spec}" for b, inj in session.injections.items()),
        cursor=session.cursor,
        total=len(session.schedule),
        direction=session.phase,
        next_label=None if nxt is None else nxt.label,
        last_label=None if last is None else last.label,
        training=training_info(session) if is_training(session) else None,
        memory=net.memory.short if getattr(net, "memory", None) is not None else "",
    )


def _learning_rate(solver: Any) -> float | None:
    rate = getattr(solver, "learning_rate", None)
    if rate is None:
        return None
    return float(rate() if callable(rate) else rate)


def training_info(session: Any) -> TrainingInfo:
    last = session.iterations.last
    return TrainingInfo(
        iteration=int(session.iteration),
        max_iter=int(session.max_iter),
        pass_index=int(session.pass_index),
        iter_size=int(session.iter_size),
        solver_type=str(session.solver.type),
        rate=_learning_rate(session.solver),
        loss=None if last is None else float(last.loss),
        smoothed_loss=None if last is None else float(last.smoothed_loss),
        loss_iteration=None if last is None else int(last.iteration),
        batches=tuple(session.describe_batches()),
        finished=bool(session.finished),
    )


def layer_rows(session: Session, costs: Any = None) -> tuple[LayerRow, ...]:
    """The layer list's rows; ``costs``: a session.layer_cost.CostMeter attached to the
    session's net, whose last times and memory the rows show."""
    bp = session.breakpoints
    nxt = session.next_step
    rows = []
    for i, name in enumerate(session.net.layer_names):
        fwd = session.step_of(name, FORWARD)
        bwd = session.step_of(name, BACKWARD)
        on_fwd, on_bwd = bp.has(name, FORWARD), bp.has(name, BACKWARD)
        mark = "both" if on_fwd and on_bwd else FORWARD if on_fwd else BACKWARD if on_bwd \
            else None
        current = None
        if nxt is not None and nxt.layer_index == i:
            current = nxt.direction
        cost = None if costs is None else costs.costs[i]
        rows.append(LayerRow(
            name=name, type=fwd.layer_type, index=i,
            forward_done=session.is_done(fwd.index),
            backward_done=session.is_done(bwd.index) and not bwd.skipped,
            backward_skipped=bwd.skipped, backward_reason=bwd.reason,
            current=current, breakpoint=mark,
            forward_ms=None if cost is None else cost.forward_ms,
            backward_ms=None if cost is None else cost.backward_ms,
            memory_bytes=None if cost is None else cost.memory_bytes,
        ))
    update = update_step(session)
    if update is not None:
        rows.append(LayerRow(
            name=UPDATE_ROW, type=update.layer_type, index=-1,
            forward_done=session.is_done(update.index), backward_done=False,
            backward_skipped=False, backward_reason=update.reason,
            current=UPDATE if nxt is not None and nxt.index == update.index else None,
            breakpoint=None, update=True,
        ))
    return tuple(rows)


def follow_layer(session: Session, moved_back: bool = False) -> str | None:
    """The row to show after the cursor moved: the step just run, else the next one."""
    step = session.next_step if moved_back else (session.last_step or session.next_step)
    if step is None:
        step = session.last_step
    return None if step is None else row_of(step)


# ------------------------------------------------------------------------- blob panel
class StatsCache:
    """Statistics and histograms of values that cannot change within one
    ``session.generation``: a recorded step's value, and params' data (weights are
    fixed in a session's pass). fc6's weights are 38M values: their histogram takes
    half a second.

    In training the update step changes the weights within a pass (and a step back
    over it puts them back) without a new generation: params' data are keyed on the
    solver's iteration too, which the update advances and its undo restores."""

    def __init__(self) -> None:
        self._stats: dict[tuple[Any, ...], Any] = {}
        self._generation: int | None = None  # one cache per session (the app makes a new one)

    def _cached(self, session: Session, key: tuple[Any, ...] | None, compute: Any) -> Any:
        if key is None:
            return compute()
        if session.generation != self._generation:  # new inputs, injections, a restart
            self._stats.clear()
            self._generation = session.generation
        if key not in self._stats:
            self._stats[key] = compute()
        return self._stats[key]

    @staticmethod
    def _key(session: Session, name: str, kind: str, step: int | None, param: int | None,
             *extra: Any) -> tuple[Any, ...] | None:
        """None for a live value that may still change (no step, not a weight)."""
        fixed = param is not None and kind == "data"
        if step is None and not fixed:
            return None
        weights = weights_version(session) if fixed else None
        return (name, kind, None if fixed and step is None else step, param, weights, *extra)

    def stats(self, session: Session, name: str, kind: str, step: int | None,
              param: int | None) -> BlobStats | None:
        return self._cached(session, self._key(session, name, kind, step, param),
                            lambda: session.stats(name, kind, step, param))

    def histogram(self, session: Session, name: str, kind: str, step: int | None,
                  param: int | None, bins: int) -> Histogram | None:
        key = self._key(session, name, kind, step, param, "histogram", bins)
        return self._cached(session, key,
                            lambda: session.histogram(name, kind, step, param, bins=bins))


def weights_version(session: Session) -> tuple[Any, ...] | None:
    """What tells the weights of one generation apart: in training, the solver's
    iteration and whether this pass's update has run (None: weights never change)."""
    if not is_training(session):
        return None
    update = update_step(session)
    return (int(session.solver.iter),  # type: ignore[attr-defined]
            update is not None and session.is_done(update.index))


def _ran(session: Session, step: int) -> int | None:
    """``step`` if it has run (ask the history for it), else None (the current state)."""
    return step if 0 <= step < session.cursor else None


def compare_entries(session: Session, entries: list[BlobEntry],
                    compare: CompareTo) -> list[BlobEntry]:
    """``entries`` with their agreement with the ``--compare`` dump: the session's
    current values of those blobs and params against the dump's (session.compare)."""
    from bpinspect.session.compare import PENDING, compare_session

    by_name = compare_session(session, compare.dump, rtol=compare.rtol, atol=compare.atol,
                              names={e.label for e in entries}).by_name()

    def agreement(e: BlobEntry, kind: str) -> Agreement:
        c = by_name.get((e.label, kind))
        if c is None:
            return Agreement(PENDING, None)
        rel = None if c.result is None else c.result.rel_diff
        return Agreement(c.status, rel)

    return [replace(e, data_vs=agreement(e, "data"), diff_vs=agreement(e, "diff"))
            for e in entries]


def layer_panel(session: Session, layer: str, request: ViewRequest, cache: StatsCache,
                moved: str | None = None, compare: CompareTo | None = None) -> LayerPanel:
    """The selected layer's blobs with statistics, and the histograms of one of them.

    ``moved``: the direction of the step just run on this layer (picks the blob whose
    histograms show first: a top after forward, a bottom or param after backward).
    """
    info = session.layer_info(layer)
    fwd = session.step_of(layer, FORWARD)
    bwd = session.step_of(layer, BACKWARD)
    fwd_done = session.is_done(fwd.index)
    bwd_reached = session.is_done(bwd.index)
    before_fwd = _ran(session, fwd.index - 1)
    after_fwd = _ran(session, fwd.index)
    before_bwd = _ran(session, bwd.index - 1)
    after_bwd = _ran(session, bwd.index)

    entries: list[BlobEntry] = []

    def add(role: str, name: str, param: int | None, shape: tuple[int, ...],
            data_step: int | None, diff_step: int | None, *, skip_data: bool = False,
            skip_diff: bool = False, in_place: bool = False, needs_diff: bool = True) -> None:
        data = diff = None
        error = None
        try:
            if not skip_data:
                data = cache.stats(session, name, "data", data_step, param)
            if not skip_diff and needs_diff:
                diff = cache.stats(session, name, "diff", diff_step, param)
        except BpinspectError as exc:
            error = str(exc)
        if data is not None:  # the shape at the step shown (a Filter's top varies)
            shape = tuple(data.shape)
        entries.append(BlobEntry(role, name, param, shape, data, diff, data_step, diff_step,
                                 in_place, needs_diff, error))

    blobs = session.net.blobs
    for j, b in enumerate(info.bottoms):
        add("bottom", b, None, tuple(blobs[b].shape), before_fwd, after_bwd,
            skip_diff=not bwd_reached, in_place=b in info.in_place,
            needs_diff=info.bottom_need_backward[j])
    seeded = set(session.injections) | set(session.net.loss_weights)
    for t in info.tops:
        # The diff a top had when backward began (loss weight, injection) is seeded after
        # the step before; until the session can name that point, show the live value.
        top_diff_step = None if t in seeded and bwd_reached else before_bwd
        add("top", t, None, tuple(blobs[t].shape), after_fwd, top_diff_step,
            skip_data=not fwd_done, skip_diff=before_bwd is None,
            in_place=t in info.in_place)
    # The weights this layer's forward used: in training an update later in the pass
    # changes the live ones (the update row shows those).
    weights_step = after_fwd if is_training(session) else None
    for j, shape in info.params:
        down = info.param_propagate_down[j] if j < len(info.param_propagate_down) else True
        add("param", layer, j, tuple(shape), weights_step, after_bwd,
            skip_diff=not bwd_reached, needs_diff=down and info.need_backward)
    if compare is not None:
        entries = compare_entries(session, entries, compare)

    selected = _pick_entry(entries, request.blob, moved)
    data_hist = diff_hist = None
    if entries:
        e = entries[selected]
        try:
            if e.data is not None:
                data_hist = cache.histogram(session, e.name, "data", e.data_step, e.param,
                                            request.bins)
            if e.diff is not None:
                diff_hist = cache.histogram(session, e.name, "diff", e.diff_step, e.param,
                                            request.bins)
        except BpinspectError:
            data_hist = diff_hist = None
    return LayerPanel(
        info=info, entries=tuple(entries), selected=selected, data_hist=data_hist,
        diff_hist=diff_hist, forward_step=fwd.index, backward_step=bwd.index,
        forward_done=fwd_done, backward_done=bwd_reached and not bwd.skipped,
        backward_skipped=bwd.skipped, backward_reason=bwd.reason,
        units=layer_units(session, info, fwd.index if fwd_done else None),
    )


def layer_units(session: Session, info: LayerInfo, step: int | None) -> UnitRow | None:
    """The dead (ReLU) or saturated (Sigmoid, TanH) units of the layer's top right after
    its forward ``step`` (None: not run yet, or not such a layer)."""
    if info.type not in UNIT_LAYER_TYPES or step is None or not info.tops:
        return None
    top = info.tops[0]
    try:
        a = session.array(top, "data", step=step)
    except BpinspectError:
        return None
    return None if a is None else unit_row(info.name, info.type, top, a, step=step)


def learnable_params(session: Session) -> list[tuple[str, int, tuple[int, ...]]]:
    """Each learnable param once, (owner layer, index, shape), in layer order (a param
    shared between layers is one array: shown under its first owner)."""
    seen: set[int] = set()
    out = []
    for layer in session.net.layer_names:
        for j, blob in enumerate(session.net.params.get(layer, [])):
            if id(blob) not in seen:
                seen.add(id(blob))
                out.append((layer, j, tuple(blob.shape)))
    return out


def update_panel(session: Any, request: ViewRequest, cache: StatsCache) -> LayerPanel | None:
    """The update step of a training pass: every learnable param's data and diff.

    Before the update: the weights and the gradient accumulated over the
    iteration's passes. After it: the new weights, and the update value that was
    subtracted (Caffe's ApplyUpdate leaves it in the diff)."""
    step = update_step(session)
    if step is None:
        return None
    done = session.is_done(step.index)
    shown = _ran(session, step.index)
    last = session.iterations.last if done else None
    entries: list[BlobEntry] = []
    for layer, j, shape in learnable_params(session):
        data = diff = None
        error = None
        try:
            data = cache.stats(session, layer, "data", shown, j)
            diff = cache.stats(session, layer, "diff", shown, j)
        except BpinspectError as exc:
            error = str(exc)
        entries.append(BlobEntry(
            "param", layer, j, shape, data, diff, shown, shown, error=error,
            data_label="new weights" if done else "weights",
            diff_label="update value" if done else "gradient (summed)"))
    info = LayerInfo(
        name=UPDATE_ROW, type=step.layer_type, index=-1, bottoms=[], tops=[], in_place=[],
        params=[], need_backward=False, backward_reason=step.reason, bottom_need_backward=[],
        param_propagate_down=[], internals=[])
    selected = _pick_entry(entries, request.blob, None)
    data_hist = diff_hist = None
    if entries:
        e = entries[selected]
        try:
            if e.data is not None:
                data_hist = cache.histogram(session, e.name, "data", shown, e.param,
                                            request.bins)
            if e.diff is not None:
                diff_hist = cache.histogram(session, e.name, "diff", shown, e.param,
                                            request.bins)
        except BpinspectError:
            data_hist = diff_hist = None
    update = UpdateInfo(
        step=step.index, done=done, iteration=int(session.iteration),
        solver_type=str(session.solver.type),
        rate=float(last.rate) if last is not None else _learning_rate(session.solver),
        max_ratio=None if last is None else last.max_ratio,
        clip_scale=None if last is None else last.clip_scale)
    return LayerPanel(
        info=info, entries=tuple(entries), selected=selected, data_hist=data_hist,
        diff_hist=diff_hist, forward_step=step.index, backward_step=step.index,
        forward_done=done, backward_done=done, backward_skipped=False,
        backward_reason=step.reason, update=update)


def _pick_entry(entries: list[BlobEntry], wanted: BlobRef | None, moved: str | None) -> int:
    if not entries:
        return 0
    if wanted is not None and moved is None:
        for i, e in enumerate(entries):
            if e.ref == wanted:
                return i
    roles = ("top",) if moved != BACKWARD else ("bottom", "param")
    for role in roles:
        for i, e in enumerate(entries):
            if e.role == role and (moved != BACKWARD or e.diff is not None):
                return i
    for i, e in enumerate(entries):
        if e.role == "top":
            return i
    return 0


# ------------------------------------------------------------------------- internals
def internals(session: Session, request: ViewRequest, panel: LayerPanel | None,
              units: Any = None) -> InternalsData:
    """The active tab's view; ``units``: a UnitTracker over the training iterations (the
    Units tab then plots each layer's flagged fraction over them)."""
    tab, layer = request.tab, request.layer
    try:
        if tab == TAB_TRAINING:
            if not is_training(session):
                return InternalsData(tab, layer, message="not a training session (--solver)")
            return InternalsData(tab, layer, view=training_data(session))
        if tab == TAB_FLOW:
            return InternalsData(tab, layer, view=tuple(session.gradient_flow()))
        if tab == TAB_DEPTH:
            return InternalsData(tab, layer, view=depth_histograms(
                session, request.depth_kind, per_layer=request.depth_per_layer))
        if tab == TAB_UNITS:
            rows = tuple(session_units(session))
            series = {} if units is None else {r.layer: units.series(r.layer) for r in rows}
            return InternalsData(tab, layer, view=rows, extra={"series": series})
        if tab == TAB_BATCH:
            first = max(request.item, 0) // BATCH_PAGE * BATCH_PAGE
            return InternalsData(tab, layer, view=batch_view(session, first=first,
                                                             count=BATCH_PAGE))
        if tab == TAB_SALIENCY:
            return _saliency(session, request)
        if layer is None or panel is None:
            return InternalsData(tab, layer, message="no layer selected")
        if INTERNALS_TAB_OF_TYPE.get(panel.info.type) != tab:
            return InternalsData(tab, layer, message=f"{layer} ({panel.info.type}) keeps no "
                                 "state of this kind")
        if not panel.forward_done:
            return InternalsData(tab, layer, message=f"{layer} has not run forward yet in this "
                                 "pass: press n (step) or c (continue)")
        kind = panel.info.type
        if tab == TAB_LRN:
            return InternalsData(tab, layer, view=session.lrn_view(
                layer, request.item, request.channel))
        if tab == TAB_POOLING:
            return _pooling(session, request, layer)
        if tab == TAB_CONCAT and kind == "Split":
            return InternalsData(tab, layer, view=session.split_view(layer))
        if tab == TAB_CONCAT:
            view = session.concat_view(layer)
            return InternalsData(tab, layer, view=view, extra={"copies": _copies(session, view)})
        if tab == TAB_DROPOUT:
            return InternalsData(tab, layer, view=session.dropout_view(layer, request.item))
        if tab == TAB_SOFTMAX:
            return InternalsData(tab, layer, view=session.softmax_view(layer, k=5))
        if tab == TAB_GATES:
            return InternalsData(tab, layer, view=session.recurrent_view(
                layer, request.item, request.channel))
    except BpinspectError as exc:
        return InternalsData(tab, layer, message=str(exc))
    return InternalsData(tab, layer, message="nothing to show")


def training_data(session: Any) -> TrainingData:
    """The training tab's numbers, all from ``session.iterations``."""
    log = session.iterations
    loss_x, loss_y = log.series("loss")
    smooth_x, smooth_y = log.series("smoothed_loss")
    tests = tuple((name, tuple(xs), tuple(ys))
                  for name, (xs, ys) in sorted(log.test_series().items()))
    last = log.last
    params = []
    if last is not None:
        for p in last.params:
            iterations, series = log.ratio_series(p.param)
            ratios = [r for r in series if not math.isnan(r)]  # NaN: no weight to compare
            params.append(ParamRow(
                param=p.param, ratio=float(p.ratio), local_rate=float(p.local_rate),
                diff_l2=float(p.diff_l2), update_l2=float(p.update_l2),
                data_l2=float(p.data_l2),
                ratio_min=float(min(ratios, default=p.ratio)),
                ratio_max=float(max(ratios, default=p.ratio)),
                history=(tuple(iterations), tuple(float(r) for r in series))))
    return TrainingData(
        loss=(tuple(loss_x), tuple(loss_y)), smoothed_loss=(tuple(smooth_x), tuple(smooth_y)),
        tests=tests, rate=_learning_rate(session.solver),
        last_iteration=None if last is None else int(last.iteration), params=tuple(params),
        iterations_kept=len(log), iteration=int(session.iteration),
        max_iter=int(session.max_iter), archived=session.archive.describe())


def training_conditions_state(session: Any) -> TrainingConditionsState:
    tc = session.training_conditions
    return TrainingConditionsState(
        loss_nonfinite=bool(tc.loss_nonfinite), loss_above=tc.loss_above,
        ratio_above=tc.ratio_above, iterations=tuple(sorted(tc.iterations)))


def _pooling(session: Session, request: ViewRequest, layer: str) -> InternalsData:
    view = session.pooling_view(layer, request.item, request.channel)
    cell = None
    if view is not None and len(view.top_shape) == 4:
        y = min(max(request.pool_cell[0], 0), view.top_shape[2] - 1)
        x = min(max(request.pool_cell[1], 0), view.top_shape[3] - 1)
        cell = session.pooling_cell(layer, request.item, request.channel, y, x)
    elif view is not None:  # AVE pooling keeps no argmax: the top shape from the net
        top = session.net.blobs[session.net.top_names[layer][0]].shape
        if len(top) == 4:
            y = min(max(request.pool_cell[0], 0), top[2] - 1)
            x = min(max(request.pool_cell[1], 0), top[3] - 1)
            cell = session.pooling_cell(layer, request.item, request.channel, y, x)
    top_shape = tuple(session.net.blobs[session.net.top_names[layer][0]].shape)
    return InternalsData(TAB_POOLING, layer, view=view, cell=cell,
                         extra={"top_shape": top_shape})


def _copies(session: Session, view: Any) -> dict[str, str]:
    """Concat parts that are copies of one blob made by a Split (Caffe inserts one when
    a blob feeds a layer twice): part -> the split layer that sums their diffs."""
    if view is None:
        return {}
    net = session.net
    out = {}
    for s in view.slices:
        try:
            producer = net.producer_index(s.blob)
        except BpinspectError:
            continue
        if net.layers[producer].type == "Split":
            out[s.blob] = net.layer_names[producer]
    return out


def no_loss_hint(session: Session) -> str:
    """For a net with no loss and nothing injected, say that backward carries zeros and
    how to inject a top diff ("" when a loss or an injection gives backward a diff)."""
    net = session.net
    if session.injections or net.loss_weights:
        return ""
    top = next((net.top_names[n][0] for n in reversed(net.layer_names) if net.top_names[n]),
               "a top")
    return (f"no loss and nothing injected: backward will carry zeros; press i to inject "
            f"a top diff, e.g. onehot:281 at {top}")


def _saliency(session: Session, request: ViewRequest) -> InternalsData:
    images = [b for b in session.net.inputs if len(session.net.blobs[b].shape) == 4]
    if not images:
        return InternalsData(TAB_SALIENCY, request.layer,
                             message="the net has no image input blob (N, C, H, W)")
    blob = images[0]
    batch = session.net.blobs[blob].shape[0]
    item = min(max(request.item, 0), batch - 1)
    plane = session.saliency(blob, item)
    message = ""
    if plane is None:
        message = (f"{blob} has no diff yet: the saliency map appears once backward has "
                   f"reached the input (run to the end with c)")
    hint = no_loss_hint(session)
    if hint:  # a map of zeros, or none yet: either way the user must inject first
        plane, message = None, f"{hint}; then c runs backward to {blob}"
    return InternalsData(TAB_SALIENCY, request.layer, view=plane, message=message,
                         extra={"blob": blob, "item": item, "batch": batch,
                                "source": session.input_sources.get(blob, "")})


# ------------------------------------------------------------------------- all of it
def gather(session: Session, request: ViewRequest, cache: StatsCache,
           moved: str | None = None, compare: CompareTo | None = None,
           costs: Any = None, units: Any = None) -> ViewData:
    """Everything the screen shows for ``request`` (in the session worker). NaN and Inf
    are for the statistics to count, not for NumPy to warn about over the screen.
    ``compare``: the dump whose agreement the blob table marks (``--compare``);
    ``costs``: the CostMeter whose times the layer list shows; ``units``: the
    UnitTracker of a training session (dead units over iterations)."""
    with np.errstate(all="ignore"):
        return _gather(session, request, cache, moved, compare, costs, units)


def _gather(session: Session, request: ViewRequest, cache: StatsCache,
            moved: str | None, compare: CompareTo | None = None,
            costs: Any = None, units: Any = None) -> ViewData:
    panel = None
    if request.layer == UPDATE_ROW and is_training(session):
        panel = update_panel(session, request, cache)
        if panel is None:  # a pass without the update: show where the cursor is
            request = replace(request, layer=follow_layer(session), blob=None)
    if request.layer is not None and panel is None:
        panel = layer_panel(session, request.layer, request, cache, moved, compare)
    if panel is not None:
        if request.blob is None or moved is not None:
            entry = panel.selected_entry
            request = replace(request, blob=None if entry is None else entry.ref)
    tab = effective_tab(request.tab, None if panel is None else panel.info.type)
    return ViewData(
        header=header_info(session),
        rows=layer_rows(session, costs),
        request=request,
        panel=panel,
        internals=internals(session, replace(request, tab=tab), panel, units),
        conditions=tuple((c.kind, getattr(c, "bound", None))
                         for c in session.breakpoints.conditions),
        training_conditions=training_conditions_state(session) if is_training(session)
        else None,
    )

