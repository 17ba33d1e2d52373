"""What each training iteration did, in small numbers kept for every iteration.

The session's history holds full arrays for the pass being stepped through;
across iterations only these summaries are kept (a few numbers per param and
per blob), so a run of thousands of iterations stays within the memory budget
and the loss, the learning rate, the update ratios and the gradient flow can
be plotted over all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParamUpdateSummary:
    """One learnable param's update: ``param`` is ``layer#i`` of its owner."""

    param: str
    diff_l2: float  # the gradient that went in, as accumulated (before clipping)
    update_l2: float  # what was subtracted from the data
    data_l2: float  # the data before the update
    local_rate: float

    @property
    def ratio(self) -> float:
        """‖update‖ / ‖w‖ (about 1e-3 is healthy); NaN where the weights were all zero
        (a bias before its first update): no ratio to judge, and no breakpoint fires."""
        if self.data_l2 == 0:
            return math.nan
        return self.update_l2 / self.data_l2


@dataclass(frozen=True)
class TestSummary:
    """One test net's outputs, averaged over its test_iter batches, as Caffe logs them."""

    net_index: int
    outputs: dict[str, float]  # output name -> mean (one value per element as "name[k]")


@dataclass
class IterationRecord:
    iteration: int  # the solver's iter before the update (Caffe's "Iteration N")
    loss: float  # this iteration's loss (the mean over iter_size passes)
    smoothed_loss: float  # Caffe's average_loss smoothing, what its log prints
    rate: float  # the learning rate the update used
    batches: list[str] = field(default_factory=list)  # what each data layer read
    params: list[ParamUpdateSummary] = field(default_factory=list)
    flow: dict[str, float] = field(default_factory=dict)  # top -> L2 of its diff
    tests: list[TestSummary] = field(default_factory=list)  # tests run before it
    clip_scale: float | None = None  # the factor ClipGradients applied, if it did
    seconds: float = 0.0

    @property
    def max_ratio(self) -> tuple[str, float] | None:
        judged = [p for p in self.params if not math.isnan(p.ratio)]
        if not judged:
            return None
        worst = max(judged, key=lambda p: p.ratio)
        return worst.param, worst.ratio


class IterationLog:
    """Every finished iteration's record, in order; tests run at an iteration's start
    wait in ``pending_tests`` until that iteration finishes."""

    def __init__(self) -> None:
        self.records: list[IterationRecord] = []
        self.pending_tests: list[TestSummary] = []

    def add(self, record: IterationRecord) -> None:
        self.records.append(record)

    def pop(self) -> IterationRecord | None:
        """Forget the last iteration (its update was undone)."""
        return self.records.pop() if self.records else None

    @property
    def last(self) -> IterationRecord | None:
        return self.records[-1] if self.records else None

    def series(self, what: str) -> tuple[list[int], list[float]]:
        """(iterations, values) of ``loss``, ``smoothed_loss`` or ``rate``."""
        return ([r.iteration for r in self.records],
                [float(getattr(r, what)) for r in self.records])

    def ratio_series(self, param: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for r in self.records:
            for p in r.params:
                if p.param == param:
                    xs.append(r.iteration)
                    ys.append(p.ratio)
        return xs, ys

    def test_series(self) -> dict[str, tuple[list[int], list[float]]]:
        """Per ``test net k: output``, the iterations at which it was tested and the values."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for r in self.records:
            for t in r.tests:
                for name, value in t.outputs.items():
                    xs, ys = out.setdefault(f"test{t.net_index}:{name}", ([], []))
                    xs.append(r.iteration)
                    ys.append(value)
        return out

    def __iter__(self) -> Iterator[IterationRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def summarize_tests(results: Any) -> list[TestSummary]:
    """The solver's ``TestResult``s as summaries: one value per output element, named
    as Caffe's log names them (``accuracy``, or ``prob[3]`` for a blob of several)."""
    out = []
    for result in results or []:
        counts: dict[str, int] = {}
        for o in result.outputs:
            counts[o.blob] = counts.get(o.blob, 0) + 1
        values: dict[str, float] = {}
        seen: dict[str, int] = {}
        for o in result.outputs:
            k = seen.get(o.blob, 0)
            seen[o.blob] = k + 1
            values[o.blob if counts[o.blob] == 1 else f"{o.blob}[{k}]"] = float(o.value)
        out.append(TestSummary(int(result.net_id), values))
    return out
