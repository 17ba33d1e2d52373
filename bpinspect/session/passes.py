"""The finished passes of a training session, kept whole so that a step back can
cross into them.

A training session steps through one pass at a time (``training.py``); when it
moves on to the next pass, the one just finished is archived here as it was
at its end: its step history (every array each step wrote), the values it
started from (weights, accumulated param diffs, BatchNorm statistics) and the
solver's state before its update. Stepping back from the first step of a pass
takes the newest archived pass out again and continues backwards through it,
the update included.

The archive has a memory budget of its own (by default the same as the pass
history's, so the whole history stays within twice that) and keeps at most
``max_passes``; the oldest passes go first, and the iterations whose arrays
were dropped are said in a note (their summaries, the loss and update ratios,
stay in ``IterationLog``). A pass whose own history had already lost records
to its budget cannot be re-entered exactly and is not archived.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from bpinspect.backend import Array
from bpinspect.session.history import DEFAULT_BUDGET, History, Key

__all__ = ["ArchivedPass", "PassArchive"]

DEFAULT_MAX_PASSES = 16


@dataclass
class ArchivedPass:
    iteration: int  # the iteration the pass belongs to
    pass_index: int  # its place among the iteration's iter_size passes
    history: History
    initial: dict[Key, Array]  # the session's _initial_params of that pass
    pre_update: Any  # the solver's state before the update (None: no update in the pass)
    pass_losses: list[float]  # the losses of the iteration's passes, as the pass left them
    pass_loss: float
    batches: list[Any]  # each data layer's read_state() at the end of the pass

    @property
    def nbytes(self) -> int:
        own = sum(int(a.nbytes) for a in self.initial.values())
        solver = sum(int(h.nbytes) for h in getattr(self.pre_update, "history", ()) or ())
        return int(self.history.nbytes) + own + solver

    @property
    def name(self) -> str:
        return f"iteration {self.iteration}, pass {self.pass_index + 1}"


class PassArchive:
    """Finished passes, newest last, within ``budget`` bytes and ``max_passes``."""

    def __init__(self, budget: int = DEFAULT_BUDGET,
                 max_passes: int = DEFAULT_MAX_PASSES) -> None:
        self.budget = int(budget)
        self.max_passes = int(max_passes)
        self.passes: deque[ArchivedPass] = deque()
        self.nbytes = 0

    def push(self, finished: ArchivedPass) -> list[ArchivedPass]:
        """Keep ``finished``; returns what was dropped to stay within the limits
        (``finished`` itself, alone, when it is larger than the budget)."""
        self.passes.append(finished)
        self.nbytes += finished.nbytes
        dropped = []
        while self.passes and (self.nbytes > self.budget or len(self.passes) > self.max_passes):
            old = self.passes.popleft()
            self.nbytes -= old.nbytes
            dropped.append(old)
        return dropped

    def pop(self) -> ArchivedPass | None:
        """The newest pass, taken out (None when there is none)."""
        if not self.passes:
            return None
        newest = self.passes.pop()
        self.nbytes -= newest.nbytes
        return newest

    def clear(self) -> None:
        self.passes.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.passes)

    def describe(self) -> str:
        """``iterations 4–19 (38.2 MiB)`` or ``nothing``."""
        if not self.passes:
            return "nothing"
        first, last = self.passes[0].iteration, self.passes[-1].iteration
        span = f"iteration {first}" if first == last else f"iterations {first}–{last}"
        return f"{span} ({self.nbytes / 2**20:.1f} MiB)"
