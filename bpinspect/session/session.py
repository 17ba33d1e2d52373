"""The debugger, with no user interface in it.

A ``Session`` drives a ``Net`` one layer at a time along a schedule (forward
layer 0..n-1, then backward n-1..0), keeps a history of what each step
produced, stops at breakpoints, injects top diffs, and answers questions
about any blob at any recorded step with small host results. The TUI is a
view over it; ``bpinspect dump`` and a Python script drive the same object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpinspect import backend
from bpinspect.backend import Array, get_array_module
from bpinspect.errors import BpinspectError
from bpinspect.session.breakpoints import BreakpointSet, Hit, NonFinite
from bpinspect.session.diffspec import parse_spec
from bpinspect.session.export import ExportItem, encode_name, export_items, step_file_name
from bpinspect.session.history import DEFAULT_BUDGET, DROPPED, History, Record, after, before
from bpinspect.session.schedule import BACKWARD, FORWARD, Step, build_schedule
from bpinspect.session.stats import (
    DEFAULT_BINS,
    BlobStats,
    Histogram,
    compute_histogram,
    compute_stats,
)
from bpinspect.session.views import LayerViews

# A key names one array the session tracks: (blob name, kind) for a blob,
# ((layer name, param index), kind) for a learnable param; kind "data" | "diff".
Name = str | tuple[str, int]
Key = tuple[Name, str]

Progress = Callable[[int, int, Step], None]
Cancel = Callable[[], bool]

# Inputs nobody gave get seeded Gaussian noise of about a mean-subtracted image's spread.
NOISE_STD = 50.0


def display_name(name: Name) -> str:
    """``conv1`` for a blob, ``conv1#0`` for param 0 of layer conv1."""
    return name if isinstance(name, str) else f"{name[0]}#{name[1]}"


@dataclass(frozen=True)
class Injection:
    blob: str
    spec: str
    shape: tuple[int, ...]
    array: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class StepResult:
    step: Step
    produced: list[tuple[str, str, int | None]]  # (blob, kind, None) or (layer, kind, param)
    hits: list[Hit]
    loss: float = 0.0


@dataclass(frozen=True)
class Stop:
    reason: str  # "breakpoint" | "condition" | "end" | "target" | "cancelled" | "max_iter"
    hits: list[Hit]
    steps_run: int
    step: Step | None  # the last step run, if any

    @property
    def message(self) -> str:
        if self.hits:
            return self.hits[0].message + (
                f" (+{len(self.hits) - 1} more)" if len(self.hits) > 1 else ""
            )
        if self.reason == "end":
            return f"end of the pass ({self.steps_run} steps run)"
        if self.reason == "max_iter":
            return f"max_iter reached ({self.steps_run} steps run)"
        if self.reason == "cancelled":
            return f"cancelled after {self.steps_run} steps"
        if self.reason == "target" and self.step is not None:
            return f"at {self.step.direction} of {self.step.layer_name!r}"
        return self.reason


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    index: int
    bottoms: list[str]
    tops: list[str]
    in_place: list[str]  # blobs that are both bottom and top
    params: list[tuple[int, tuple[int, ...]]]  # (index, shape)
    need_backward: bool
    backward_reason: str
    bottom_need_backward: list[bool]
    param_propagate_down: list[bool]
    internals: list[str]


class Session(LayerViews):
    """A debugger over one net: schedule, cursor, history, breakpoints, injection.

    The views over what layers keep (LRN scale, pooling argmax, concat split, ...),
    the saliency and the gradient flow are in :class:`~bpinspect.session.views.LayerViews`.
    """

    def __init__(
        self,
        net: Any,
        *,
        inputs: dict[str, Any] | None = None,
        injections: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        seed: int = 0,
        history_budget: int = DEFAULT_BUDGET,
        export_dir: str = ".",
        noise_std: float = NOISE_STD,
    ) -> None:
        self.net = net
        self.seed = int(seed)
        self.noise_std = float(noise_std)
        self.export_dir = export_dir
        self.notes: list[str] = list(getattr(net, "notes", []))
        self.breakpoints = BreakpointSet(net.layer_names)
        self.history = History(history_budget)
        self.injections: dict[str, Injection] = {}
        self.cursor = 0
        self._seeded = False  # the backward pass has begun (diffs seeded)
        # Bumped when what a step computes may change (inputs, injections, a restart):
        # values derived from steps already run stay valid until then.
        self.generation = 0
        self._flow_norms: dict[tuple[Any, ...], float] = {}
        self._inputs: dict[str, np.ndarray] = {}
        self.input_sources: dict[str, str] = {}  # blob -> where its values came from
        given = dict(inputs or {})
        for name in given:
            self._check_input_name(name)
        for name in net.inputs:
            if name in given:
                self._inputs[name] = self._fit_input(name, given[name])
                self.input_sources[name] = "given"
            else:
                self._inputs[name] = self._default_input(name)
        self._n = len(net.layers)
        # A param shared between layers (param { name: ... }) is one array: key it
        # by its first owner, so that both layers' backward steps write that key.
        self._param_owner: dict[tuple[str, int], tuple[str, int]] = {}
        owners: dict[int, tuple[str, int]] = {}
        for layer, blobs in net.params.items():
            for j, b in enumerate(blobs):
                self._param_owner[(layer, j)] = owners.setdefault(id(b), (layer, j))
        # Params a forward step writes (BatchNorm's running statistics in TRAIN): their
        # values before the pass, so that a restart or a step back puts them back and
        # a replayed forward updates them once, as Caffe's single pass does.
        self._initial_params: dict[Key, Array] = {
            key: net.params[key[0][0]][key[0][1]].data.copy()
            for i in range(len(net.layers)) for key in self._forward_param_keys(i)
        }
        self.schedule: list[Step] = []
        self._rebuild_schedule()
        items = injections.items() if isinstance(injections, dict) else (injections or ())
        for blob, spec in items:
            self._set_injection(blob, spec)
        self._rebuild_schedule()
        self.restart()

    # ------------------------------------------------------------------ basics
    @property
    def device_name(self) -> str:
        return self.net.device.name

    @property
    def next_step(self) -> Step | None:
        return self.schedule[self.cursor] if self.cursor < len(self.schedule) else None

    @property
    def last_step(self) -> Step | None:
        for i in range(self.cursor - 1, -1, -1):
            if not self.schedule[i].skipped:
                return self.schedule[i]
        return None

    @property
    def can_step_back(self) -> bool:
        """A step back has something to undo."""
        return self.last_step is not None

    @property
    def at_end(self) -> bool:
        return self.cursor >= len(self.schedule)

    @property
    def phase(self) -> str:
        if self.at_end:
            return "done"
        return self.schedule[self.cursor].direction

    def is_done(self, step_index: int) -> bool:
        return step_index < self.cursor

    def step_of(self, layer: str, direction: str) -> Step:
        i = self.net.layer_index(layer)
        if direction == FORWARD:
            return self.schedule[i]
        if direction == BACKWARD:
            return self.schedule[2 * self._n - 1 - i]
        raise BpinspectError(f"direction {direction!r} is not forward or backward")

    def _note(self, text: str) -> None:
        self.notes.append(text)

    # ------------------------------------------------------------------ inputs
    def _check_input_name(self, name: str) -> None:
        if name not in self.net.inputs:
            raise BpinspectError(
                f"--input {name}: {name!r} is not an input blob of the net "
                f"(inputs: {', '.join(self.net.inputs) or 'none'})"
            )

    def _fit_input(self, name: str, value: Any) -> np.ndarray:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise BpinspectError(f"--input {name}: expected numbers, got {a.dtype}")
        shape = self.net.blobs[name].shape
        if a.shape == shape[1:]:  # one item: fill the batch with it
            a = np.broadcast_to(a, shape)
        if a.shape != shape:
            raise BpinspectError(
                f"--input {name}: shape {a.shape} does not fit the blob's shape {shape}"
            )
        return np.ascontiguousarray(a, dtype=self.net.blobs[name].dtype)

    def _default_input(self, name: str) -> np.ndarray:
        blob = self.net.blobs[name]
        labels = self._label_range(name)
        gen = backend.rng(self.seed + 7919 * (1 + self.net.inputs.index(name)))
        if labels is not None:
            self.input_sources[name] = f"seeded random labels 0..{labels - 1} (seed {self.seed})"
            self._note(f"input {name}: no --input given; {self.input_sources[name]}")
            return gen.integers(0, labels, size=blob.shape).astype(blob.dtype)
        self.input_sources[name] = (
            f"seeded Gaussian noise, std {self.noise_std:g} (seed {self.seed})"
        )
        self._note(f"input {name}: no --input given; {self.input_sources[name]}")
        return (gen.standard_normal(blob.shape) * self.noise_std).astype(blob.dtype)

    def _label_range(self, name: str) -> int | None:
        """The class count when ``name`` only feeds label bottoms (no gradient)."""
        net = self.net
        classes = None
        for i, layer in enumerate(net.layers):
            for j, b in enumerate(net.bottom_names[net.layer_names[i]]):
                if b != name:
                    continue
                if layer.allow_force_backward(j) or j == 0:
                    return None
                scores = net.blobs[net.bottom_names[net.layer_names[i]][0]].shape
                if len(scores) < 2:
                    return None
                classes = scores[1]
        return classes

    def set_input(self, name: str, value: Any) -> None:
        """Give input blob ``name`` new values and restart; an array of another shape
        (a new batch size) reshapes the net, as pycaffe's ``blobs[name].reshape``."""
        self._check_input_name(name)
        a = np.asarray(value)
        blob = self.net.blobs[name]
        old_shape = blob.shape
        if a.ndim == len(old_shape) and a.shape != old_shape:
            old_injections = dict(self.injections)
            try:
                blob.reshape(a.shape)
                self.net.reshape()
                for inj in old_injections.values():
                    self._set_injection(inj.blob, inj.spec)
            except BpinspectError:
                blob.reshape(old_shape)
                self.net.reshape()
                self.injections = old_injections
                raise
        self._inputs[name] = self._fit_input(name, a)
        self.input_sources[name] = "given"
        self._rebuild_schedule()
        self.restart()

    def input_array(self, name: str) -> np.ndarray:
        return self._inputs[name]

    # ------------------------------------------------------------------ schedule
    def _backward_start(self) -> tuple[int | None, str]:
        if not self.injections:
            return None, ""
        producers = {b: self.net.producer_index(b) for b in self.injections}
        start = max(producers.values())
        blob = next(b for b, p in producers.items() if p == start)
        layer = self.net.layer_names[start]
        args = ", ".join(f"{b}=..." for b in self.injections)
        return start, (
            f"after the injection point: backward starts at {layer!r}, the producer of the "
            f"injected blob {blob} (pycaffe net.backward({args}))"
        )

    def _rebuild_schedule(self) -> None:
        start, reason = self._backward_start()
        self.schedule = build_schedule(self.net, start, reason)
        self._writers = self._compute_writers()

    def _compute_writers(self) -> dict[Key, list[int]]:
        """For each key, the positions in a pass where it is written (from the graph)."""
        net = self.net
        writers: dict[Key, list[int]] = {}
        first_backward = self._first_backward()
        for step in self.schedule:
            if step.skipped:
                continue
            name = step.layer_name
            if step.index == first_backward:
                for b in self._seeded_blobs():
                    writers.setdefault((b, "diff"), []).append(before(step.index))
            keys: list[Key] = []
            if step.direction == FORWARD:
                keys = [(t, "data") for t in net.top_names[name]]
                keys += self._forward_param_keys(step.layer_index)
            else:
                need = net.bottom_need_backward[step.layer_index]
                keys += [(b, "diff")
                         for b, d in zip(net.bottom_names[name], need, strict=True) if d]
                keys += [(self._param_owner[(name, j)], "diff")
                         for j in self._param_indices(step.layer_index)]
            for k in keys:
                writers.setdefault(k, []).append(after(step.index))
        return writers

    def _first_backward(self) -> int | None:
        return next((s.index for s in self.schedule[self._n:] if not s.skipped), None)

    def _seeded_blobs(self) -> list[str]:
        blobs = [b for b in self.net.loss_weights if b not in self.injections]
        return blobs + list(self.injections)

    def _param_indices(self, layer_index: int) -> list[int]:
        name = self.net.layer_names[layer_index]
        layer = self.net.layers[layer_index]
        params = self.net.params.get(name, [])
        down = list(getattr(layer, "param_propagate_down", [])) or [True] * len(params)
        return [j for j in range(len(params)) if j < len(down) and down[j]]

    def _forward_param_keys(self, layer_index: int) -> list[Key]:
        """The param data keys that layer ``layer_index``'s forward writes."""
        if not getattr(self.net.layers[layer_index], "forward_writes_params", False):
            return []
        name = self.net.layer_names[layer_index]
        return [(self._param_owner[(name, j)], "data")
                for j in range(len(self.net.params.get(name, [])))]

    def _skip_skipped(self) -> None:
        while self.cursor < len(self.schedule) and self.schedule[self.cursor].skipped:
            self.cursor += 1

    # ------------------------------------------------------------------ injection
    def _set_injection(self, blob: str, spec_text: str) -> Injection:
        if blob not in self.net.blobs:
            names = list(self.net.blobs)
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise BpinspectError(f"top diff {blob}={spec_text}: no blob named {blob!r} "
                                 f"(blobs: {shown})")
        spec = parse_spec(spec_text)
        b = self.net.blobs[blob]
        array = spec.build(b.shape, np.dtype(str(b.dtype)), blob)
        inj = Injection(blob, spec.text, b.shape, array)
        self.injections[blob] = inj
        return inj

    def inject(self, blob: str, spec: str) -> Injection:
        """Set ``blob``'s top diff from ``spec``; backward then starts at its producer."""
        inj = self._set_injection(blob, spec)
        self._injections_changed(f"injected {blob}={inj.spec}")
        return inj

    def clear_injection(self, blob: str) -> None:
        if self.injections.pop(blob, None) is not None:
            self._injections_changed(f"removed the injection at {blob}")

    def _new_generation(self) -> None:
        self.generation += 1
        self._flow_norms.clear()

    def _injections_changed(self, what: str) -> None:
        self._new_generation()
        if self._seeded:
            self._restore(self._n)
            what += "; rewound to the start of the backward pass"
        self._rebuild_schedule()
        self._skip_skipped()
        start = self._first_backward()
        if start is not None:
            what += f"; backward starts at {self.schedule[start].layer_name!r}"
        self._note(what)

    # ------------------------------------------------------------------ running
    def restart(self) -> None:
        """A new pass with the same inputs, weights and injections; breakpoints kept."""
        self._new_generation()
        self._undo_forwards(0)
        self.history.clear()
        self.cursor = 0
        self._seeded = False
        for key, initial in self._initial_params.items():
            setattr(self._blob_of(key[0]), key[1], initial.copy())
        dev = self.net.device
        for name, host in self._inputs.items():
            blob = self.net.blobs[name]
            blob.data = dev.asarray(host, dtype=blob.dtype).copy()
        self._skip_skipped()

    def step(self) -> StepResult | None:
        """Run the next step that does something; None at the end."""
        self._skip_skipped()
        if self.at_end:
            return None
        return self._run(self.schedule[self.cursor])

    def _run(self, step: Step, check: bool = True) -> StepResult:
        # NaN and Inf are for the debugger to show (stats, conditions), not for NumPy to
        # print as warnings over the screen.
        with np.errstate(all="ignore"):
            return self._run_step(step, check)

    def _run_step(self, step: Step, check: bool) -> StepResult:
        net = self.net
        i = step.layer_index
        name = step.layer_name
        loss = 0.0
        seed_record = None
        if step.direction == FORWARD:
            net.layers[i].reset_rng(net.seed + 1 + i)  # every pass draws the same masks
            loss = float(net.forward_layer(i))
            produced: list[tuple[Name, str, Array]] = [
                (t, "data", net.blobs[t].data) for t in net.top_names[name]
            ]
            produced += [(n, k, self._live((n, k))) for n, k in self._forward_param_keys(i)]
        else:
            if not self._seeded:
                seed_record = self._begin_backward(step)
            net.backward_layer(i)
            need = net.bottom_need_backward[i]
            produced = [
                (b, "diff", net.blobs[b].diff)
                for b, d in zip(net.bottom_names[name], need, strict=True) if d
            ]
            produced += [
                (self._param_owner[(name, j)], "diff", net.params[name][j].diff)
                for j in self._param_indices(i)
            ]
        if seed_record is not None:
            self._record(seed_record)
        self._record(Record(step.index, False, {(n, k): a for n, k, a in produced}))
        self.cursor = step.index + 1
        self._skip_skipped()
        hits: list[Hit] = []
        if check and self.breakpoints.conditions:
            hits = self.breakpoints.check(
                step, [(display_name(n), k, a) for n, k, a in produced]
            )
            hits = [self._explain(h) for h in hits]
        refs = [(n, k, None) if isinstance(n, str) else (n[0], k, n[1]) for n, k, _ in produced]
        return StepResult(step, refs, hits, loss)

    def _clear_diffs_before_backward(self) -> None:
        """Every blob's diff and param diff starts the backward pass at zero (a
        training session keeps the param diffs that earlier passes accumulated)."""
        self.net.clear_diffs()

    def _begin_backward(self, step: Step) -> Record:
        """Zero the diffs, seed loss tops with their loss weight, apply injections."""
        net = self.net
        self._clear_diffs_before_backward()
        net.seed_loss_diffs()
        dev = net.device
        for inj in self.injections.values():
            blob = net.blobs[inj.blob]
            blob.diff = dev.asarray(inj.array, dtype=blob.dtype).copy()
        self._seeded = True
        return Record(step.index, True, {(b, "diff"): net.blobs[b].diff
                                         for b in self._seeded_blobs()})

    def _record(self, record: Record) -> None:
        if self.history.budget <= 0:
            self.history.complete_from = record.step + 1
            return
        record.arrays = {k: a.copy() for k, a in record.arrays.items()}
        dropped = self.history.add(record)
        if dropped:
            steps = sorted({r.step for r in dropped})
            span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}..{steps[-1]}"
            self._note(
                f"history: dropped the record of {span} to stay within the memory budget "
                f"({self.history.budget / 2**20:.0f} MiB); going back there replays the pass"
            )

    def _explain(self, hit: Hit) -> Hit:
        """For a non-finite hit, name the first layer whose output was non-finite."""
        if hit.kind != "nonfinite":
            return hit
        found = self.first_nonfinite(hit.step.index)
        first = found[0] if found is not None else hit.step
        message = (
            f"{hit.message}; first produced by {first.direction} of layer "
            f"{first.layer_name!r} ({first.layer_type}) at step {first.index}"
        )
        if self.history.complete_from > 0 and first.index >= self.history.complete_from:
            message += " (earlier records were dropped)"
        return Hit(hit.kind, hit.step, hit.blob, hit.what, message, first.layer_name)

    def first_nonfinite(self, upto: int) -> tuple[Step, str, str] | None:
        """The first recorded step up to ``upto`` that wrote a NaN or Inf, with the
        blob (or ``layer#i``) and kind; None if the records hold none."""
        cond = NonFinite()
        for rec in self.history:
            if rec.step > upto:
                break
            for (name, kind), a in rec.arrays.items():
                if cond.match(a) is not None:
                    return self.schedule[rec.step], display_name(name), kind
        return None

    def continue_(self, progress: Progress | None = None, cancel: Cancel | None = None) -> Stop:
        """Run to the next breakpoint or the end of the pass."""
        return self._run_until(len(self.schedule), progress, cancel, False, "end")

    def run_to(
        self,
        layer: str,
        direction: str = FORWARD,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        ignore_breakpoints: bool = False,
    ) -> Stop:
        """Run up to and including ``layer``'s ``direction`` step (or go back to it)."""
        target = self.step_of(layer, direction)
        if target.index < self.cursor:
            self.goto(target.index + 1)
            return Stop("target", [], 0, self.last_step)
        return self._run_until(target.index + 1, progress, cancel, ignore_breakpoints, "target")

    def _run_until(
        self, end: int, progress: Progress | None, cancel: Cancel | None,
        ignore_breakpoints: bool, reason: str,
    ) -> Stop:
        self._skip_skipped()
        todo = sum(1 for s in self.schedule[self.cursor:end] if not s.skipped)
        run = 0
        last = None
        while self.cursor < end:
            step = self.schedule[self.cursor]
            if run > 0 and not ignore_breakpoints and self.breakpoints.stops_before(step):
                hit = Hit("layer", step, None, None,
                          f"breakpoint: before {step.direction} of layer {step.layer_name!r} "
                          f"({step.layer_type})")
                return Stop("breakpoint", [hit], run, last)
            if cancel is not None and cancel():
                return Stop("cancelled", [], run, last)
            result = self._run(step, check=not ignore_breakpoints)
            run += 1
            last = step
            if progress is not None:
                progress(run, todo, step)
            if result.hits:
                return Stop("condition", result.hits, run, last)
        return Stop(reason, [], run, last or self.last_step)

    def goto(self, step_index: int) -> None:
        """Make ``cursor == step_index``: run forward to it, or restore state back to it."""
        if not 0 <= step_index <= len(self.schedule):
            raise BpinspectError(f"step {step_index} is outside the schedule "
                                 f"(0..{len(self.schedule)})")
        if step_index > self.cursor:
            while self.cursor < step_index:
                self._run(self.schedule[self.cursor], check=False)
        elif step_index < self.cursor:
            self._restore(step_index)

    def step_back(self) -> Step | None:
        """Undo the last step run; returns it (None at the start)."""
        last = self.last_step
        if last is None:
            return None
        self._restore(last.index)
        return last

    def _restore(self, k: int) -> None:
        """Put the net back in the state it had before step ``k`` ran.

        Each array a step in ``k..cursor-1`` wrote gets the value it had after
        step ``k-1`` (from the history); a diff nothing had written is zeroed.
        When a needed record was dropped, the pass is replayed instead.
        """
        lo, hi = before(k), self._position()
        keys = {key for key, ws in self._writers.items() if any(lo <= w <= hi for w in ws)}
        values: dict[Key, Array | None] = {}
        for key in keys:
            v = self.history.value_at(key, lo - 1) if k > 0 else None
            if v is DROPPED:
                self._replay_to(k)
                return
            values[key] = v
        # Assign fresh arrays (as layers do) rather than write into the live ones:
        # a layer may have made two blobs share one array.
        for key, v in values.items():
            self._put_back(key, v)
        self._undo_forwards(k)
        self.history.truncate(k)
        first_backward = self._first_backward()
        self._seeded = first_backward is not None and k > first_backward
        self.cursor = k
        self._skip_skipped()

    def _undo_forwards(self, k: int) -> None:
        """Tell the layers whose forward steps ``k..cursor-1`` ran that those are undone:
        running them again is the same forward, not a second (HDF5Output rewrites)."""
        for step in self.schedule[k:self.cursor]:
            if step.direction == FORWARD and not step.skipped:
                self.net.undo_forward(step.layer_index)

    def _put_back(self, key: Key, value: Array | None) -> None:
        """Give ``key`` a copy of a recorded ``value``; None: its value before the pass
        (the pass's initial params), or zeros for a diff nothing had written."""
        blob, kind = self._blob_of(key[0]), key[1]
        if value is not None:
            setattr(blob, kind, value.copy())
        elif key in self._initial_params:
            setattr(blob, kind, self._initial_params[key].copy())
        elif kind == "diff":  # shaped as the data (a Filter's top varies from pass to pass)
            live = blob.data
            setattr(blob, kind, get_array_module(live).zeros(live.shape, dtype=blob.diff.dtype))

    def _replay_to(self, k: int) -> None:
        self._note(f"history: replaying the pass from the start to step {k} "
                   "(the record needed had been dropped)")
        self.restart()
        while self.cursor < k:
            self._run(self.schedule[self.cursor], check=False)

    # ------------------------------------------------------------------ arrays
    def _key(self, name: str, kind: str, param: int | None) -> Key:
        if kind not in ("data", "diff"):
            raise BpinspectError(f"kind {kind!r} is not data or diff")
        if param is None:
            if name not in self.net.blobs:
                raise BpinspectError(f"no blob named {name!r}")
            return name, kind
        params = self.net.params.get(name)
        if params is None:
            raise BpinspectError(f"layer {name!r} has no params")
        if not 0 <= param < len(params):
            raise BpinspectError(f"layer {name!r} has {len(params)} params, no param {param}")
        return self._param_owner[(name, param)], kind

    def _blob_of(self, name: Name) -> Any:
        return self.net.blobs[name] if isinstance(name, str) else self.net.params[name[0]][name[1]]

    def _live(self, key: Key) -> Array:
        return getattr(self._blob_of(key[0]), key[1])

    def _position(self) -> int:
        """The position of the live state: right after the last step run."""
        return after(self.cursor - 1)

    def _resolve_step(self, step: int | None) -> int:
        last = self.cursor - 1
        if step is None:
            return last
        if not 0 <= step < len(self.schedule):
            raise BpinspectError(
                f"step {step} is outside the schedule (0..{len(self.schedule) - 1})"
            )
        if step > last:
            raise BpinspectError(f"step {step} has not run yet (the cursor is at {self.cursor})")
        return step

    def _value(self, key: Key, step: int | None) -> Array | None:
        """``key``'s array right after ``step`` (None: the current state)."""
        return self._value_at(key, after(self._resolve_step(step)))

    def _value_at(self, key: Key, pos: int) -> Array | None:
        name, kind = key
        if kind == "data" and key not in self._initial_params and (
            not isinstance(name, str) or name in self._inputs
        ):
            return self._live(key)  # weights and inputs do not change during a pass
        now = self._position()
        pos = min(pos, now)  # "before the next step" is now (its seeding has not happened)
        writes = self._writers.get(key, [])
        if not any(w <= pos for w in writes):
            return self._initial_params.get(key)
        if not any(pos < w <= now for w in writes):
            return self._live(key)  # nothing wrote it since: the live array is that value
        v = self.history.value_at(key, pos)
        if v is DROPPED:
            raise BpinspectError(
                f"the value of {display_name(name)} {kind} at step {pos // 2} was dropped from "
                "the history (memory budget); step back to it to replay"
            )
        return v

    def _layer_value(self, blob: str, kind: str, layer: str, direction: str,
                     when: str) -> Array | None:
        """``blob``'s array right ``when`` ("before"/"after") ``layer``'s ``direction`` step,
        or None if that step has not been reached."""
        step = self.step_of(layer, direction)
        if when == "before":
            if step.index > self.cursor:
                return None
            return self._value_at(self._key(blob, kind, None), before(step.index))
        if step.index >= self.cursor:
            return None
        return self._value_at(self._key(blob, kind, None), after(step.index))

    def array(self, blob: str, kind: str = "data", step: int | None = None,
              param: int | None = None) -> Array | None:
        """The device array of ``blob``'s data/diff at ``step`` (None: not produced)."""
        return self._value(self._key(blob, kind, param), step)

    def stats(self, blob: str, kind: str = "data", step: int | None = None,
              param: int | None = None) -> BlobStats | None:
        a = self.array(blob, kind, step, param)
        if a is None:
            return None
        with np.errstate(all="ignore"):  # NaN and Inf are counted, not warned about
            return compute_stats(a)

    def histogram(self, blob: str, kind: str = "data", step: int | None = None,
                  param: int | None = None, bins: int = DEFAULT_BINS,
                  log: bool = False) -> Histogram | None:
        a = self.array(blob, kind, step, param)
        if a is None:
            return None
        with np.errstate(all="ignore"):
            return compute_histogram(a, bins, log)

    def layer_info(self, layer: str) -> LayerInfo:
        net = self.net
        i = net.layer_index(layer)
        bottoms = list(net.bottom_names[layer])
        tops = list(net.top_names[layer])
        params = net.params.get(layer, [])
        down = list(getattr(net.layers[i], "param_propagate_down", []))
        return LayerInfo(
            name=layer,
            type=net.layers[i].type,
            index=i,
            bottoms=bottoms,
            tops=tops,
            in_place=[t for t in tops if t in bottoms],
            params=[(j, p.shape) for j, p in enumerate(params)],
            need_backward=bool(net.layer_need_backward[i]),
            backward_reason=net.backward_reason[i],
            bottom_need_backward=list(net.bottom_need_backward[i]),
            param_propagate_down=down,
            internals=sorted(net.layers[i].internals()),
        )

    # ------------------------------------------------------------------ export
    def _export_item(self, key: Key, step: int) -> ExportItem | None:
        """The value of ``key`` at ``step``, named after the step that produced it."""
        a = self._value(key, step)
        if a is None:
            return None
        name, kind = key
        blob = name if isinstance(name, str) else f"{name[0]}.param{name[1]}"
        writers = [w for w in self._writers.get(key, []) if w <= after(step)]
        if writers:
            st = self.schedule[writers[-1] // 2]
            file = step_file_name(st.index, st.direction, st.layer_name, blob, kind)
            return ExportItem(file, a, display_name(name), st.layer_name, st.index,
                              st.direction, kind)
        # Weights and inputs: not produced by a step of the pass.
        layer = name[0] if not isinstance(name, str) else self.net.layer_names[
            self.net.producer_index(name)]
        file = f"{encode_name(layer)}-{encode_name(blob)}.{kind}.npy"
        return ExportItem(file, a, display_name(name), layer, None, None, kind)

    def export(self, blob: str, kind: str = "both", step: int | None = None,
               param: int | None = None, directory: str | None = None,
               overwrite: bool = False) -> list[Any]:
        """Write ``blob``'s data and/or diff at ``step`` to ``.npy`` (+ manifest.json)."""
        kinds = ("data", "diff") if kind == "both" else (kind,)
        s = self._resolve_step(step)
        items = []
        for k in kinds:
            item = self._export_item(self._key(blob, k, param), s)
            if item is not None:
                items.append(item)
        if not items:
            raise BpinspectError(f"export: {blob} has no {' or '.join(kinds)} yet at step {s}")
        return export_items(directory or self.export_dir, items, overwrite=overwrite,
                            header=self.manifest_header())

    def export_all(self, step: int | None = None, kinds: tuple[str, ...] = ("data", "diff"),
                   directory: str | None = None, overwrite: bool = False) -> list[Any]:
        """Every blob's (and param diff's) values at ``step`` that exist by then."""
        s = self._resolve_step(step)
        items = []
        for blob in self.net.blobs:
            for k in kinds:
                item = self._export_item(self._key(blob, k, None), s)
                if item is not None:
                    items.append(item)
        if "diff" in kinds:
            for layer, params in self.net.params.items():
                for j in range(len(params)):
                    key = (self._param_owner[(layer, j)], "diff")
                    item = self._export_item(key, s) if key[0] == (layer, j) else None
                    if item is not None:
                        items.append(item)
        if not items:
            raise BpinspectError(f"export: nothing has been computed yet at step {s}")
        return export_items(directory or self.export_dir, items, overwrite=overwrite,
                            header=self.manifest_header())

    def manifest_header(self) -> dict[str, Any]:
        """What manifest.json says about the run the exported values come from."""
        net = self.net
        return {
            "net": net.name,
            "phase": net.phase,
            "device": net.device.name,
            "weights": net.weights_source,
            "injections": {b: inj.spec for b, inj in self.injections.items()},
            "inputs": dict(self.input_sources),
        }
