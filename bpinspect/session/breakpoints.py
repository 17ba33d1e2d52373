"""Breakpoints: by layer and direction, and conditional ones over what a step produced.

A layer breakpoint stops *before* its step runs, as a debugger stops before a
line. A condition is checked *after* each step, on the arrays the step wrote
(tops' data after a forward step; bottoms' and params' diffs after a backward
step), as tfdbg's ``has_inf_or_nan`` watches tensors as they are produced.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.errors import BpinspectError
from bpinspect.session.schedule import BACKWARD, BOTH, DIRECTIONS, FORWARD, Step


@dataclass(frozen=True)
class Hit:
    """Why a run stopped: the condition, and the layer and blob it is about."""

    kind: str  # "layer" | "nonfinite" | "max_abs" | "zero_diff"
    step: Step
    blob: str | None  # a blob name, or "layer#i" for a layer's param i
    what: str | None  # "data" | "diff"
    message: str
    first_layer: str | None = None  # nonfinite: the first layer that produced one


@dataclass(frozen=True)
class LayerBreakpoint:
    layer: str
    direction: str  # "forward" | "backward" | "both"


class Condition(ABC):
    """A test over one array a step produced; ``match`` returns a detail or None."""

    kind: str = ""
    kinds_checked: tuple[str, ...] = ("data", "diff")

    @abstractmethod
    def match(self, a: Array) -> str | None: ...

    @abstractmethod
    def describe(self) -> str: ...


@dataclass(frozen=True)
class NonFinite(Condition):
    """Any NaN or Inf in data or diff."""

    kind = "nonfinite"

    def match(self, a: Array) -> str | None:
        xp = get_array_module(a)
        if a.size == 0 or np.isfinite(float(a.sum(dtype=xp.float64))):
            return None
        nan = int(xp.isnan(a).sum())
        inf = int(xp.isinf(a).sum())
        if nan == 0 and inf == 0:  # huge finite values whose sum overflowed
            return None
        return f"{nan} NaN, {inf} Inf"

    def describe(self) -> str:
        return "any NaN or Inf"


@dataclass(frozen=True)
class MaxAbsAbove(Condition):
    """max |x| above ``bound`` (data or diff)."""

    bound: float
    kind = "max_abs"

    def match(self, a: Array) -> str | None:
        if a.size == 0:
            return None
        xp = get_array_module(a)
        m = float(xp.abs(a).max())
        if m > self.bound:
            return f"max |x| = {m:.6g} > {self.bound:g}"
        return None

    def describe(self) -> str:
        return f"max |x| > {self.bound:g}"


@dataclass(frozen=True)
class ZeroDiff(Condition):
    """A diff that is all zero: a dead gradient."""

    kind = "zero_diff"
    kinds_checked = ("diff",)

    def match(self, a: Array) -> str | None:
        xp = get_array_module(a)
        if a.size and not bool(xp.any(a)):
            return "every value is 0"
        return None

    def describe(self) -> str:
        return "a diff that is all zero (dead gradient)"


CONDITION_KINDS = ("nonfinite", "max_abs", "zero_diff")


def make_condition(kind: str, bound: float | None = None) -> Condition:
    if kind == "nonfinite":
        return NonFinite()
    if kind == "zero_diff":
        return ZeroDiff()
    if kind == "max_abs":
        if bound is None or not np.isfinite(bound) or bound < 0:
            raise BpinspectError(f"breakpoint max_abs needs a finite bound >= 0, got {bound}")
        return MaxAbsAbove(float(bound))
    raise BpinspectError(f"breakpoint condition {kind!r}: expected one of {CONDITION_KINDS}")


class BreakpointSet:
    """Layer breakpoints and conditions; layer names are checked against the net."""

    def __init__(self, layer_names: Iterable[str]) -> None:
        self._known = list(layer_names)
        self._layers: dict[str, set[str]] = {}
        self.conditions: list[Condition] = []

    # -- layer breakpoints --------------------------------------------------
    def _check(self, layer: str, direction: str) -> list[str]:
        if layer not in self._known:
            raise BpinspectError(f"breakpoint: no layer named {layer!r} in the net")
        if direction not in DIRECTIONS:
            raise BpinspectError(
                f"breakpoint on {layer!r}: direction {direction!r} is not forward, backward "
                "or both"
            )
        return [FORWARD, BACKWARD] if direction == BOTH else [direction]

    def add(self, layer: str, direction: str = BOTH) -> None:
        self._layers.setdefault(layer, set()).update(self._check(layer, direction))

    def remove(self, layer: str, direction: str = BOTH) -> None:
        dirs = self._check(layer, direction)
        current = self._layers.get(layer, set())
        current.difference_update(dirs)
        if not current:
            self._layers.pop(layer, None)

    def toggle(self, layer: str, direction: str = BOTH) -> bool:
        """Set it if any of its directions is unset, else clear it; True when now set."""
        dirs = self._check(layer, direction)
        if all(self.has(layer, d) for d in dirs):
            self.remove(layer, direction)
            return False
        self.add(layer, direction)
        return True

    def has(self, layer: str, direction: str) -> bool:
        dirs = [FORWARD, BACKWARD] if direction == BOTH else [direction]
        return all(d in self._layers.get(layer, ()) for d in dirs)

    def clear(self) -> None:
        self._layers.clear()

    def layer_breakpoints(self) -> list[LayerBreakpoint]:
        out = []
        for layer in self._known:
            dirs = self._layers.get(layer)
            if not dirs:
                continue
            direction = BOTH if len(dirs) == 2 else next(iter(dirs))
            out.append(LayerBreakpoint(layer, direction))
        return out

    def suspend_layers(self) -> dict[str, set[str]]:
        """Take the layer breakpoints out (a run to an iteration passes over them)."""
        saved, self._layers = self._layers, {}
        return saved

    def resume_layers(self, saved: dict[str, set[str]]) -> None:
        for layer, dirs in saved.items():
            self._layers.setdefault(layer, set()).update(dirs)

    def stops_before(self, step: Step) -> bool:
        return not step.skipped and step.direction in self._layers.get(step.layer_name, ())

    # -- conditions ---------------------------------------------------------
    def add_condition(self, condition: Condition) -> None:
        """Add a condition; one of the same kind is replaced."""
        self.conditions = [c for c in self.conditions if c.kind != condition.kind]
        self.conditions.append(condition)

    def remove_condition(self, condition: Condition | str) -> None:
        kind = condition if isinstance(condition, str) else condition.kind
        self.conditions = [c for c in self.conditions if c.kind != kind]

    def clear_conditions(self) -> None:
        self.conditions = []

    def set_condition(self, kind: str, enabled: bool, bound: float | None = None) -> None:
        if enabled:
            self.add_condition(make_condition(kind, bound))
        else:
            make_condition(kind, 0.0 if bound is None else bound)  # validates the kind
            self.remove_condition(kind)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.kind == kind), None)

    def check(self, step: Step, produced: list[tuple[str, str, Array]]) -> list[Hit]:
        """The conditions matched by ``produced``: (blob, "data"|"diff", array)."""
        hits = []
        for cond in self.conditions:
            for blob, what, array in produced:
                if what not in cond.kinds_checked:
                    continue
                detail = cond.match(array)
                if detail is not None:
                    message = (
                        f"{cond.describe()}: {detail} in {blob} {what} after "
                        f"{step.direction} of layer {step.layer_name!r} ({step.layer_type})"
                    )
                    hits.append(Hit(cond.kind, step, blob, what, message))
        return hits
