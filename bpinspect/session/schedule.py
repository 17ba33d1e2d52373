"""The schedule of a pass: forward layer 0..n-1, then backward n-1..0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORWARD = "forward"
BACKWARD = "backward"
UPDATE = "update"  # a training iteration's last step: the solver's update
BOTH = "both"
DIRECTIONS = (FORWARD, BACKWARD, BOTH)


@dataclass(frozen=True)
class Step:
    index: int  # position in the schedule
    layer_index: int  # index into net.layers
    layer_name: str
    layer_type: str
    direction: str  # "forward" | "backward"
    skipped: bool  # True: nothing runs at this step
    reason: str  # why it is skipped, or (backward) why it runs

    @property
    def label(self) -> str:
        if self.direction == UPDATE:
            return f"Δ {self.layer_type}"
        arrow = "→" if self.direction == FORWARD else "←"
        return f"{arrow} {self.layer_name} ({self.layer_type})"


def build_schedule(net: Any, backward_start: int | None, start_reason: str = "") -> list[Step]:
    """Steps for ``net``; backward runs from layer ``backward_start`` down (all: None).

    Layers after ``backward_start`` are skipped with ``start_reason``; layers
    the net says need no backward, with the net's own reason.
    """
    n = len(net.layers)
    steps: list[Step] = []
    for i, layer in enumerate(net.layers):
        steps.append(Step(len(steps), i, net.layer_names[i], layer.type, FORWARD, False, ""))
    last = n - 1 if backward_start is None else backward_start
    for i in reversed(range(n)):
        name, kind = net.layer_names[i], net.layers[i].type
        if i > last:
            steps.append(Step(len(steps), i, name, kind, BACKWARD, True, start_reason))
        elif not net.layer_need_backward[i]:
            steps.append(Step(len(steps), i, name, kind, BACKWARD, True, net.backward_reason[i]))
        else:
            steps.append(Step(len(steps), i, name, kind, BACKWARD, False, net.backward_reason[i]))
    return steps
