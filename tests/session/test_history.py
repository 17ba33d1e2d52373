"""The history's bookkeeping: positions, lookups, the budget, truncation."""

from __future__ import annotations

import numpy as np

from bpinspect.session.history import DROPPED, History, Record, after, before


def _rec(step, seed=False, **arrays):
    return Record(step, seed, {(k, "data"): np.full(4, v, np.float32) for k, v in arrays.items()})


def test_value_at_finds_the_version_current_at_a_position():
    h = History()
    h.add(_rec(1, conv=1.0))
    h.add(_rec(2, conv=2.0))  # an in-place layer overwrote conv
    h.add(_rec(4, seed=True, conv=3.0))
    assert h.value_at(("conv", "data"), after(0)) is None
    assert h.value_at(("conv", "data"), after(1))[0] == 1.0
    assert h.value_at(("conv", "data"), after(3))[0] == 2.0
    assert h.value_at(("conv", "data"), before(4))[0] == 3.0  # the seed precedes step 4
    assert h.value_at(("other", "data"), after(9)) is None


def test_budget_drops_oldest_and_says_so():
    h = History(budget=40)  # each record is 16 bytes
    dropped = [h.add(_rec(s, a=float(s))) for s in range(4)]
    assert [len(d) for d in dropped] == [0, 0, 1, 1]
    assert [r.step for r in h] == [2, 3] and h.nbytes == 32
    assert h.value_at(("a", "data"), after(3))[0] == 3.0
    assert h.value_at(("b", "data"), after(3)) is DROPPED  # might have been in a dropped one
    assert h.complete_from == 2


def test_truncate_forgets_undone_steps():
    h = History()
    for s in range(5):
        h.add(_rec(s, a=float(s)))
    h.truncate(3)
    assert [r.step for r in h] == [0, 1, 2] and h.nbytes == 48
    assert h.value_at(("a", "data"), after(4))[0] == 2.0
    h.clear()
    assert len(h) == 0 and h.nbytes == 0
