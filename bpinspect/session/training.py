"""Training in the debugger: a Session whose passes are a solver's iterations.

An iteration of Caffe's ``Solver::Step`` is ``iter_size`` passes of forward and
backward over the train net, accumulating the param diffs, then the update.
Here each pass is the session's schedule (forward layer 0..n-1, backward
n-1..0), and the last pass of an iteration ends with one more step, the
**update**: the solver's ApplyUpdate (clip, normalize, regularize, compute
the update value, ``data -= diff``) and the end of Caffe's iteration (``iter``
goes up, the smoothed loss, a snapshot when due). Stepping on past the end of a
pass begins the next pass, or the next iteration (with the tests Caffe runs at
its start, when due).

Stepping back puts everything back as it was, the update included: the
weights, the param diffs and the solver's history. From the first step of a
pass it goes on into the pass before, kept whole in a :class:`PassArchive`
(``passes.py``) for the recent passes, within a memory budget. The data layers
read batch ``(iter - start) * iter_size + pass`` of their source, so a restart
or a step back re-reads the same batch; ``start`` is the iteration the session
began at (a resumed Caffe, too, reads from the first record again: a
``.solverstate`` holds no data position).

Every iteration keeps its small summaries (``iterations.IterationLog``: loss,
rate, norms, update ratios, gradient flow); full arrays are kept for the pass
being stepped through and the archived recent ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bpinspect.backend import get_array_module
from bpinspect.errors import BpinspectError
from bpinspect.session.breakpoints import Hit
from bpinspect.session.history import DEFAULT_BUDGET, History, Record, after
from bpinspect.session.iterations import (
    IterationLog,
    IterationRecord,
    ParamUpdateSummary,
    summarize_tests,
)
from bpinspect.session.passes import ArchivedPass, PassArchive
from bpinspect.session.schedule import FORWARD, UPDATE, Step
from bpinspect.session.session import Cancel, Key, Progress, Session, StepResult, Stop, display_name
from bpinspect.session.stats import l2_norm


class TrainingConditions:
    """Breakpoints of training: the loss non-finite or above a bound (checked when a
    pass's loss is complete), an update ratio above a bound (after the update), and
    iterations to stop at (before they begin)."""

    def __init__(self) -> None:
        self.loss_nonfinite = False
        self.loss_above: float | None = None
        self.ratio_above: float | None = None
        self.iterations: set[int] = set()

    def set_loss_above(self, bound: float | None) -> None:
        if bound is not None and not math.isfinite(bound):
            raise BpinspectError(f"breakpoint loss above {bound}: the bound must be finite")
        self.loss_above = bound

    def set_ratio_above(self, bound: float | None) -> None:
        if bound is not None and (not math.isfinite(bound) or bound <= 0):
            raise BpinspectError(f"breakpoint update ratio above {bound}: expected a bound > 0")
        self.ratio_above = bound

    def add_iteration(self, iteration: int) -> None:
        if iteration < 0:
            raise BpinspectError(f"breakpoint at iteration {iteration}: expected >= 0")
        self.iterations.add(int(iteration))

    def describe(self) -> list[str]:
        out = []
        if self.loss_nonfinite:
            out.append("loss NaN/Inf")
        if self.loss_above is not None:
            out.append(f"loss > {self.loss_above:g}")
        if self.ratio_above is not None:
            out.append(f"update ratio > {self.ratio_above:g}")
        out += [f"iteration {i}" for i in sorted(self.iterations)]
        return out


class TrainingSession(Session):
    """A Session over ``solver.net`` whose schedule is one pass of an iteration,
    with the update as the last step of an iteration's last pass."""

    def __init__(
        self,
        solver: Any,
        *,
        inputs: dict[str, Any] | None = None,
        injections: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        seed: int = 0,
        history_budget: int = DEFAULT_BUDGET,
        export_dir: str = ".",
    ) -> None:
        self.solver = solver
        self.iter_size = max(1, int(solver.param.iter_size))
        self.max_iter = int(solver.param.max_iter)
        self.start_iter = int(solver.iter)
        self.pass_index = 0
        self.iterations = IterationLog()
        self.training_conditions = TrainingConditions()
        self._pass_losses: list[float] = []
        self._pass_loss = 0.0
        self._pass_started = time.perf_counter()
        self._pre_update: Any = None  # the solver's state before the update step ran
        self.archive = PassArchive(history_budget)
        """The recent finished passes, whole, for stepping back into them."""
        self._archive_noted = False
        net = solver.net
        self._data_layers = [i for i, layer in enumerate(net.layers)
                             if hasattr(layer, "next_batch")]
        self._loss_layers = [i for i in range(len(net.layers))
                             if any(net.top_loss_weights(i))]
        self._learnable = self._learnable_keys(net)
        super().__init__(net, inputs=inputs, injections=injections, seed=seed,
                         history_budget=history_budget, export_dir=export_dir)
        self._begin_iteration()

    # ------------------------------------------------------------------ state
    @staticmethod
    def _learnable_keys(net: Any) -> list[tuple[str, int]]:
        """Each param blob once, keyed by its first owner (layer, index)."""
        seen: dict[int, tuple[str, int]] = {}
        for layer, blobs in net.params.items():
            for j, blob in enumerate(blobs):
                seen.setdefault(id(blob), (layer, j))
        return list(seen.values())

    @property
    def iteration(self) -> int:
        """The iteration being run (Caffe's ``iter_`` before this iteration's update)."""
        return int(self.solver.iter) - (1 if self._update_done else 0)

    @property
    def _update_index(self) -> int | None:
        last = self.schedule[-1] if self.schedule else None
        return last.index if last is not None and last.direction == UPDATE else None

    @property
    def _update_done(self) -> bool:
        u = self._update_index
        return u is not None and self.cursor > u

    @property
    def finished(self) -> bool:
        """max_iter reached: the last iteration's update has run."""
        return self.at_end and self._update_index is not None and self.solver.iter >= self.max_iter

    def batch_number(self) -> int:
        return (self.iteration - self.start_iter) * self.iter_size + self.pass_index

    def describe_batches(self) -> list[str]:
        """What each data layer of the train net reads in this pass."""
        out = []
        for i in self._data_layers:
            layer = self.net.layers[i]
            name = self.net.layer_names[i]
            if self.is_done(i) and layer.last_batch is not None:  # read in this pass
                out.append(f"{name}: {layer.describe_batch()}")
            else:
                out.append(f"{name}: batch {self.batch_number()} next")
        return out

    # ------------------------------------------------------------------ schedule
    def _rebuild_schedule(self) -> None:
        super()._rebuild_schedule()
        if self.pass_index == self.iter_size - 1:
            index = len(self.schedule)
            self.schedule.append(Step(
                index, -1, "update", f"{self.solver.type} update", UPDATE, False,
                f"iteration {self.iteration}: clip, normalize, regularize, "
                f"{self.solver.type} update value, data -= diff",
            ))
            for key in self._update_keys():
                self._writers.setdefault(key, []).append(after(index))

    def _update_keys(self) -> list[Key]:
        return [(owner, kind) for owner in self._learnable for kind in ("data", "diff")]

    def step_of(self, layer: str, direction: str) -> Step:
        if direction == UPDATE:
            index = self._update_index
            if index is None:
                raise BpinspectError(
                    f"this pass ({self.pass_index + 1} of iter_size {self.iter_size}) has no "
                    "update step; the last pass of the iteration has it"
                )
            return self.schedule[index]
        return super().step_of(layer, direction)

    # ------------------------------------------------------------------ passes
    def _begin_iteration(self) -> None:
        """Caffe's Step, before the passes: param diffs cleared, tests when due."""
        self.solver.begin_iteration()
        if self.solver.test_due():
            self.iterations.pending_tests = summarize_tests(self.solver.test_all())

    def _set_batches(self) -> None:
        batch = self.batch_number()
        for i in self._data_layers:
            self.net.layers[i].next_batch = batch

    def _clear_diffs_before_backward(self) -> None:
        self.net.clear_blob_diffs()  # the param diffs accumulate over iter_size passes

    def restart(self) -> None:
        """This pass again, from its first step: weights, param diffs and the solver's
        history as they were when the pass began, and the same batch."""
        if getattr(self, "_pre_update", None) is not None:
            self.solver.load_state(self._pre_update)
            self._pre_update = None
            self._forget_update_record()
        if getattr(self, "pass_index", 0) == 0 and hasattr(self, "solver"):
            self.net.clear_param_diffs()
        super().restart()
        if hasattr(self, "_data_layers"):
            self._set_batches()
        self._pass_loss = 0.0
        self._pass_started = time.perf_counter()

    def _forget_update_record(self) -> None:
        """The update was undone: its summary goes, the tests that began its iteration
        wait for the update to run again."""
        undone = self.iterations.pop()
        if undone is not None:
            self.iterations.pending_tests = list(undone.tests)

    def _restore(self, k: int) -> None:
        undo = self._update_done and k <= (self._update_index or 0)
        super()._restore(k)
        if undo and self._pre_update is not None:
            self._new_generation()
            self.solver.load_state(self._pre_update)
            self._pre_update = None
            self._forget_update_record()
        if k == 0:
            self._pass_loss = 0.0

    def next_pass(self) -> Hit | None:
        """At the end of a pass, begin the next pass or iteration; a Hit when an
        iteration breakpoint stops there. An error past max_iter."""
        if not self.at_end:
            raise BpinspectError("the pass has steps left to run")
        if self.finished:
            raise BpinspectError(f"max_iter {self.max_iter} reached")
        self._archive_pass()
        if self._update_index is not None:
            self.pass_index = 0
            self._pass_losses = []
            self._begin_iteration()
        else:
            self._pass_losses.append(self._pass_loss)
            self.pass_index += 1
        self._pre_update = None
        # A new pass starts from the state the last one left: the running statistics a
        # forward updates (BatchNorm), and the param diffs accumulated so far.
        self._initial_params = {
            key: self._live(key).copy()
            for i in range(len(self.net.layers)) for key in self._forward_param_keys(i)
        }
        if self.pass_index > 0:
            for owner in self._learnable:
                self._initial_params[(owner, "diff")] = self._live((owner, "diff")).copy()
        self._rebuild_schedule()
        self.restart()
        if self.pass_index == 0 and self.solver.iter in self.training_conditions.iterations:
            step = self.next_step
            assert step is not None
            return Hit("iteration", step, None, None,
                       f"breakpoint: at the start of iteration {self.solver.iter}")
        return None

    def _archive_pass(self) -> None:
        """Keep the pass just finished for stepping back into; a fresh history for the next."""
        finished = ArchivedPass(
            iteration=self.iteration, pass_index=self.pass_index, history=self.history,
            initial=self._initial_params, pre_update=self._pre_update,
            pass_losses=list(self._pass_losses), pass_loss=self._pass_loss,
            batches=[self.net.layers[i].read_state() for i in self._data_layers])
        self.history = History(self.history.budget)
        if finished.history.complete_from > 0:
            self.archive.clear()  # it cannot be re-entered exactly, nor anything before it
            return
        dropped = self.archive.push(finished)
        if dropped and not self._archive_noted:
            self._archive_noted = True
            self._note(
                f"history: full arrays are kept for the last {len(self.archive)} pass(es) "
                f"({self.archive.budget / 2**20:.0f} MiB, at most {self.archive.max_passes}); "
                f"older ones were dropped (the first: {dropped[0].name}); every iteration's "
                "summaries stay")

    def _reenter_pass(self) -> Step | None:
        """Step back from the start of this pass into the end of the archived one before
        it, and undo that pass's last step (an iteration's update, or a backward)."""
        previous = self.archive.pop()
        if previous is None:
            return None
        self._new_generation()
        self.iterations.pending_tests = []  # run again when the iteration begins again
        self.history = previous.history
        self._initial_params = previous.initial
        self.pass_index = previous.pass_index
        self._pass_losses = previous.pass_losses
        self._pass_loss = previous.pass_loss
        self._pre_update = previous.pre_update
        for i, state in zip(self._data_layers, previous.batches, strict=True):
            self.net.layers[i].restore_read_state(state)
        self._rebuild_schedule()
        end = len(self.schedule)
        # Every array the archived pass wrote, as it left it (the pass being left may
        # have run steps and stepped back over them; begin_iteration cleared the diffs).
        for key in self._writers:
            self._put_back(key, self.history.value_at(key, after(end - 1)))
        self.cursor = end
        first_backward = self._first_backward()
        self._seeded = first_backward is not None
        return super().step_back()

    # ------------------------------------------------------------------ running
    def step_back(self) -> Step | None:
        """Undo the last step; from the start of a pass, the last step of the pass before
        (when the archive still has it)."""
        if self.last_step is None:
            return self._reenter_pass()
        return super().step_back()

    @property
    def can_step_back(self) -> bool:
        return self.last_step is not None or len(self.archive) > 0

    def step(self) -> StepResult | None:
        """The next step; at the end of a pass, the first step of the next one."""
        if self.at_end and not self.finished:
            self.next_pass()
        return super().step()

    def _run_step(self, step: Step, check: bool) -> StepResult:
        if step.direction == UPDATE:
            return self._run_update(step, check)
        if step.direction == FORWARD and step.layer_index in self._data_layers:
            # This pass's batch, also when the step runs again after a step back.
            self.net.layers[step.layer_index].next_batch = self.batch_number()
        result = super()._run_step(step, check)
        if step.direction != FORWARD:
            return result
        self._pass_loss += result.loss
        if step.layer_index == (self._loss_layers[-1] if self._loss_layers else None) and check:
            hits = self._loss_hits(step)
            if hits:
                return replace(result, hits=result.hits + hits)
        return result

    def _loss_hits(self, step: Step) -> list[Hit]:
        tc, loss = self.training_conditions, self._pass_loss
        where = f"iteration {self.iteration}"
        if self.iter_size > 1:
            where += f", pass {self.pass_index + 1} of {self.iter_size}"
        if tc.loss_nonfinite and not math.isfinite(loss):
            message = f"loss is {loss} at {where}"
            found = self.first_nonfinite(step.index)
            if found is not None:
                first, blob, kind = found
                message += (f"; first non-finite value: {blob} {kind} after {first.direction} "
                            f"of layer {first.layer_name!r} ({first.layer_type})")
                message += self._params_note(first)
            return [Hit("loss_nonfinite", step, None, None, message,
                        found[0].layer_name if found else step.layer_name)]
        if tc.loss_above is not None and loss > tc.loss_above:
            return [Hit("loss_above", step, None, None,
                        f"loss {loss:.6g} > {tc.loss_above:g} at {where}")]
        return []

    def _params_note(self, step: Step) -> str:
        """Say so when the layer's own weights were already non-finite (an update did it)."""
        if step.direction != FORWARD:
            return ""
        xp_bad = []
        for j, blob in enumerate(self.net.params.get(step.layer_name, [])):
            xp = get_array_module(blob.data)
            if not bool(xp.isfinite(blob.data).all()):
                xp_bad.append(f"{step.layer_name}#{j}")
        if not xp_bad:
            return ""
        return f" (its param {', '.join(xp_bad)} was already non-finite: set by an update)"

    def _run_update(self, step: Step, check: bool) -> StepResult:
        solver = self.solver
        self._new_generation()  # the weights change: what was derived from them is stale
        self._pre_update = solver.save_state()
        for owner in self._learnable:  # the weights before, for a step back or a look back
            self._initial_params[(owner, "data")] = self._live((owner, "data")).copy()
        iteration = int(solver.iter)
        self._pass_losses.append(self._pass_loss)
        loss = sum(self._pass_losses) / len(self._pass_losses)
        report = solver.apply_update()  # ends with ++iter, as Caffe's ApplyUpdate
        solver.finish_iteration(loss)  # the smoothed loss; a snapshot when due
        self.iterations.add(IterationRecord(
            iteration=iteration, loss=loss, smoothed_loss=float(solver.smoothed_loss),
            rate=float(report.rate), batches=self.describe_batches(),
            params=[ParamUpdateSummary(display_name(p.key), p.diff_norm, p.update_norm,
                                       p.data_norm_before, p.local_rate)
                    for p in report.params.values()],
            flow=self._diff_flow(), tests=self.iterations.pending_tests,
            clip_scale=report.clip_scale, seconds=time.perf_counter() - self._pass_started,
        ))
        self.iterations.pending_tests = []
        produced = [(owner, kind, self._live((owner, kind)))
                    for owner in self._learnable for kind in ("data", "diff")]
        self._record(Record(step.index, False, {(n, k): a for n, k, a in produced}))
        self.cursor = step.index + 1
        hits: list[Hit] = []
        if check and self.breakpoints.conditions:
            hits = self.breakpoints.check(step, [(display_name(n), k, a) for n, k, a in produced])
            hits = [self._explain(h) for h in hits]
        if check and self.training_conditions.ratio_above is not None:
            bound = self.training_conditions.ratio_above
            record = self.iterations.last
            assert record is not None
            over = [p for p in record.params if p.ratio > bound]
            if over:
                worst = max(over, key=lambda p: p.ratio)
                hits.append(Hit("update_ratio", step, worst.param, "diff",
                                f"update ratio ‖Δw‖/‖w‖ of {worst.param} is {worst.ratio:.3g} > "
                                f"{bound:g} at iteration {iteration}"
                                + (f" (+{len(over) - 1} more params)" if len(over) > 1 else "")))
        refs = [(n[0], k, n[1]) for n, k, _ in produced]
        return StepResult(step, refs, hits, loss)

    def _diff_flow(self) -> dict[str, float]:
        """L2 of each blob's diff as the pass left it: the gradient flow of the iteration."""
        return {name: l2_norm(blob.diff) for name, blob in self.net.blobs.items()}

    def continue_(self, progress: Progress | None = None, cancel: Cancel | None = None) -> Stop:
        """Run to the next breakpoint, through later passes and iterations, to max_iter."""
        return self._run_iterations(None, progress, cancel)

    def run_to_iteration(self, iteration: int, progress: Progress | None = None,
                         cancel: Cancel | None = None) -> Stop:
        """Run to the start of ``iteration`` (layer breakpoints are passed over; the
        conditions still stop it)."""
        if iteration > self.max_iter:
            raise BpinspectError(f"iteration {iteration} is past max_iter {self.max_iter}")
        if iteration < self.solver.iter or (iteration == self.solver.iter
                                            and not self._update_done
                                            and not self.at_iteration_start):
            raise BpinspectError(f"iteration {iteration} is not ahead (now in iteration "
                                 f"{self.iteration})")
        return self._run_iterations(iteration, progress, cancel)

    @property
    def at_iteration_start(self) -> bool:
        """Before the first step of an iteration's first pass."""
        return self.pass_index == 0 and self.last_step is None

    def _run_iterations(self, target: int | None, progress: Progress | None,
                        cancel: Cancel | None) -> Stop:
        total, last = 0, self.last_step
        saved = self.breakpoints.suspend_layers() if target is not None else None
        try:
            while True:
                if target is not None and self.at_iteration_start and self.solver.iter >= target:
                    return Stop("target", [], total, last)
                if self.at_end:
                    if self.finished:
                        return Stop("max_iter", [], total, last)
                    hit = self.next_pass()
                    if target is not None:
                        continue
                    if hit is not None:
                        return Stop("breakpoint", [hit], total, last)
                    first = self.next_step
                    if first is not None and total > 0 and self.breakpoints.stops_before(first):
                        return Stop("breakpoint", [Hit(
                            "layer", first, None, None,
                            f"breakpoint: before {first.direction} of layer "
                            f"{first.layer_name!r} ({first.layer_type})")], total, last)
                stop = Session.continue_(self, progress, cancel)
                total += stop.steps_run
                last = stop.step or last
                if stop.reason != "end":
                    return replace(stop, steps_run=total)
                if cancel is not None and cancel():
                    return Stop("cancelled", [], total, last)
        finally:
            if saved is not None:
                self.breakpoints.resume_layers(saved)

    def manifest_header(self) -> dict[str, Any]:
        header = super().manifest_header()
        header.update(solver=self.solver.type, iteration=self.iteration,
                      pass_=self.pass_index, batches=self.describe_batches())
        return header
