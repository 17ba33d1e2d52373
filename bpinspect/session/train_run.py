"""``bpinspect train``'s work, without its printing: whole iterations of a
TrainingSession, with the statistics Caffe's ``debug_info`` logs for the ones
asked for (forward: each top's data; backward: each bottom's and param's diff;
update: each param's data and diff), taken right after each step."""

from __future__ import annotations

from dataclasses import dataclass, field

from bpinspect.session.breakpoints import Hit
from bpinspect.session.dump import StatRow
from bpinspect.session.schedule import UPDATE
from bpinspect.session.training import TrainingSession


@dataclass
class IterationRun:
    iteration: int
    rows: list[StatRow] = field(default_factory=list)  # empty unless asked for
    hits: list[Hit] = field(default_factory=list)  # what stopped it early, if anything


def run_iteration(session: TrainingSession, collect: bool = False) -> IterationRun:
    """Run the rest of the current iteration (every pass, then the update), or, at the
    end of one, the whole next iteration; stops early at a condition's hit."""
    if session.at_end and not session.finished:
        session.next_pass()  # (iteration breakpoints are the debugger's, not train's)
    run = IterationRun(session.iteration)
    while True:
        result = session.step()
        if result is None:
            return run
        if collect:
            for name, kind, param in result.produced:
                label = name if param is None else f"{name}#{param}"
                run.rows.append(StatRow(result.step, label, kind,
                                        session.stats(name, kind, param=param)))
        if result.hits:
            run.hits = list(result.hits)
            return run
        if result.step.direction == UPDATE:
            return run
        if session.at_end:
            session.next_pass()  # the next of iter_size passes
