"""Stepping back across passes and iterations of a TrainingSession (the demo digits
net and its LMDB): into the archived pass before, through its update, and forward
again to exactly what the solver's own uninterrupted Step gives; the archive's
budget and what it says when it drops passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpinspect.engine.solver import get_solver
from bpinspect.io.solver_prototxt import load_solver
from bpinspect.session.schedule import BACKWARD, UPDATE
from bpinspect.session.train_run import run_iteration
from bpinspect.session.training import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SOLVER = ROOT / "nets" / "digits_solver.prototxt"


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _solver(**changes):
    param = load_solver(str(SOLVER), [])
    for name, value in changes.items():
        setattr(param, name, value)
    return get_solver(param)


def _params(net):
    return {(layer, j): b.data.copy() for layer, blobs in net.params.items()
            for j, b in enumerate(blobs)}


def _assert_params_equal(net, expected):
    for key, value in expected.items():
        np.testing.assert_array_equal(net.params[key[0]][key[1]].data, value, err_msg=str(key))


def _weights_before_update(iterations):
    """An uninterrupted solver's weights, and its param diffs, just before the update of
    iteration ``iterations``: ``step(iterations)``, then one more forward and backward."""
    reference = _solver()
    reference.step(iterations)
    reference.begin_iteration()
    reference.forward_backward()
    diffs = {(layer, j): b.diff.copy() for layer, blobs in reference.net.params.items()
             for j, b in enumerate(blobs)}
    return _params(reference.net), diffs


def test_step_back_from_an_iteration_start_undoes_the_last_update():
    session = TrainingSession(_solver())
    run_iteration(session)
    run_iteration(session)
    session.step()  # iteration 2 begins: its first step...
    session.step_back()  # ...undone: the start of iteration 2, nothing run
    assert session.last_step is None and session.can_step_back and session.iteration == 2
    stepped = session.step_back()  # into iteration 1: its update undone
    assert stepped.direction == UPDATE
    assert session.iteration == 1 and session.solver.iter == 1 and len(session.iterations) == 1
    assert session.next_step.direction == UPDATE
    weights, diffs = _weights_before_update(1)
    _assert_params_equal(session.net, weights)
    for key, value in diffs.items():
        np.testing.assert_array_equal(session.net.params[key[0]][key[1]].diff, value)
    # The blobs of iteration 1 are there again: its batch, records 64-127.
    assert "records 64–127 of 1500" in session.describe_batches()[0]
    labels = session.array("label")
    reference = _solver()
    reference.step(1)
    reference.begin_iteration()
    reference.forward_backward()
    np.testing.assert_array_equal(labels, reference.net.blobs["label"].data)
    np.testing.assert_array_equal(session.array("ip2", "diff"), reference.net.blobs["ip2"].diff)


def test_forward_again_after_stepping_back_over_two_iterations_equals_an_uninterrupted_run():
    session = TrainingSession(_solver())
    for _ in range(3):
        run_iteration(session)
    session.step()
    session.step_back()
    steps = 0
    while session.iteration > 1 or session.last_step is not None:
        assert session.step_back() is not None
        steps += 1
    # The start of iteration 1: two whole passes stepped back, updates included.
    assert steps == 2 * sum(not s.skipped for s in session.schedule)
    assert session.solver.iter == 1 and len(session.iterations) == 1
    reference = _solver()
    reference.step(1)
    _assert_params_equal(session.net, _params(reference.net))
    # One step back more reaches iteration 0's update; then forward again to iteration 4.
    assert session.step_back().direction == UPDATE and session.solver.iter == 0
    while session.solver.iter < 4:
        session.step()
    reference = _solver()
    reference.step(4)
    _assert_params_equal(session.net, _params(reference.net))
    for h, r in zip(session.solver.history, reference.history, strict=True):
        np.testing.assert_array_equal(h, r)
    assert [r.iteration for r in session.iterations] == [0, 1, 2, 3]
    assert session.iterations.last.loss == pytest.approx(reference.smoothed_loss, rel=1e-6)


def test_the_tests_that_began_an_iteration_survive_its_update_undone_and_redone():
    session = TrainingSession(_solver())
    run_iteration(session)  # iteration 0 begins with the test nets (test_interval 50)
    tests = session.iterations.last.tests
    assert tests
    session.step()
    session.step_back()
    session.step_back()  # into iteration 0, its update undone
    session.step()  # and run again
    assert session.iterations.last.iteration == 0 and session.iterations.last.tests == tests


def test_iter_size_two_steps_back_from_the_second_pass_into_the_first():
    session = TrainingSession(_solver(iter_size=2))
    reference = _solver(iter_size=2)
    run_iteration(session)  # iteration 0: both passes and the update
    session.step()  # iteration 1, pass 1
    while not session.at_end:
        session.step()
    accumulated = {k: session.net.params[k[0]][k[1]].diff.copy() for k in _params(session.net)}
    session.step()  # pass 2 begins
    assert session.pass_index == 1
    session.step_back()
    stepped = session.step_back()  # into pass 1: its last backward step undone
    assert session.pass_index == 0 and stepped.direction == BACKWARD
    assert session.iteration == 1
    session.step()
    for k, value in accumulated.items():
        np.testing.assert_array_equal(session.net.params[k[0]][k[1]].diff, value)
    while session.solver.iter < 3:
        session.step()
    reference.step(3)
    _assert_params_equal(session.net, _params(reference.net))


def test_the_archive_keeps_what_its_budget_holds_and_says_what_it_dropped():
    session = TrainingSession(_solver(), history_budget=64 << 20)
    session.archive.max_passes = 2
    for _ in range(4):
        run_iteration(session)
    session.step()
    assert len(session.archive) == 2
    assert [p.iteration for p in session.archive.passes] == [2, 3]
    assert any("full arrays are kept for the last 2 pass(es)" in n and "iteration 0" in n
               for n in session.notes)
    session.step_back()
    for _ in range(2 * sum(not s.skipped for s in session.schedule)):
        session.step_back()
    assert session.iteration == 2 and session.last_step is None
    assert not session.can_step_back and session.step_back() is None


def test_a_pass_whose_history_lost_records_is_not_archived():
    session = TrainingSession(_solver(), history_budget=1 << 16)  # 64 KiB: records drop
    run_iteration(session)
    session.step()
    session.step_back()
    assert len(session.archive) == 0 and not session.can_step_back
