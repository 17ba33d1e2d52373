"""What each step produced, as it was at that step, within a memory budget.

A record holds device copies of the arrays one step wrote: its tops' data
after a forward step, its bottoms' diffs and its params' diffs after a
backward step (keys ``(name, "data"|"diff")``, name a blob or a
``(layer, param index)`` pair). The diffs set when the backward pass begins
(loss weights, injections) are a *seed* record of the first backward step.
Positions order it all: ``before(s)`` is right before step ``s`` ran (after
its seeding), ``after(s)`` right after. Because every write is recorded
where it happens, an in-place layer (relu1 writing conv1) does not erase the
version before it: ``value_at`` finds the one current at any step.

Records are dropped oldest first when they exceed the budget; a lookup that
may have needed a dropped record says so (``DROPPED``) rather than answer
wrongly. Weights are never copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bpinspect.backend import Array

Key = tuple[Any, str]  # (blob name or (layer, param index), "data" | "diff")

DEFAULT_BUDGET = 1 << 30  # 1 GiB: CaffeNet at batch 16 records about 0.5 GiB a pass


class _Dropped:
    def __repr__(self) -> str:
        return "DROPPED"


DROPPED = _Dropped()


def after(step: int) -> int:
    """The position right after ``step`` ran."""
    return 2 * step + 1


def before(step: int) -> int:
    """The position right before ``step`` ran (after the seeding, if it is the first
    backward step)."""
    return 2 * step


@dataclass
class Record:
    step: int
    seed: bool
    arrays: dict[Key, Array] = field(default_factory=dict)

    @property
    def pos(self) -> int:
        return before(self.step) if self.seed else after(self.step)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


class History:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = int(budget)
        self.records: list[Record] = []
        self.nbytes = 0
        # Steps below this may have lost records to the budget.
        self.complete_from = 0

    def clear(self) -> None:
        self.records = []
        self.nbytes = 0
        self.complete_from = 0

    def add(self, record: Record) -> list[Record]:
        """Append ``record``; returns the records dropped to stay within the budget."""
        self.records.append(record)
        self.nbytes += record.nbytes
        dropped = []
        while self.records and self.nbytes > self.budget:
            old = self.records.pop(0)
            self.nbytes -= old.nbytes
            self.complete_from = max(self.complete_from, old.step + 1)
            dropped.append(old)
        return dropped

    def truncate(self, first_undone: int) -> None:
        """Forget the records of steps ``>= first_undone`` (they were undone)."""
        kept = [r for r in self.records if r.step < first_undone]
        self.records = kept
        self.nbytes = sum(r.nbytes for r in kept)
        self.complete_from = min(self.complete_from, first_undone)

    def value_at(self, key: Key, pos: int) -> Array | None | _Dropped:
        """The array ``key`` held at position ``pos`` (``after(step)``/``before(step)``),
        None if nothing up to there wrote it, DROPPED if the answer may have been dropped."""
        for rec in reversed(self.records):
            if rec.pos <= pos and key in rec.arrays:
                return rec.arrays[key]
        if self.complete_from > 0:
            return DROPPED
        return None

    def record_of(self, step: int, seed: bool = False) -> Record | None:
        return next((r for r in self.records if r.step == step and r.seed == seed), None)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)
