"""TrainingSession: a solver's iterations stepped layer by layer, on the demo digits net
(a real LMDB in nets/). The solver's own arithmetic is checked against an independent
float64 reference in tests/engine/test_solver*.py; here the session driving it one
step at a time must give exactly what the solver's own Step gives, and stepping back
must put everything back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bpinspect.engine.solver import get_solver
from bpinspect.io.solver_prototxt import load_solver
from bpinspect.session.schedule import BACKWARD, FORWARD, UPDATE
from bpinspect.session.train_run import run_iteration
from bpinspect.session.training import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SOLVER = ROOT / "nets" / "digits_solver.prototxt"
TOO_HIGH = ROOT / "nets" / "digits_solver_lr_too_high.prototxt"


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the solver's paths are relative to it, as Caffe's examples


def _params(net):
    return {(layer, j): b.data.copy() for layer, blobs in net.params.items()
            for j, b in enumerate(blobs)}


def _solver_param(**changes):
    param = load_solver(str(SOLVER), [])
    for name, value in changes.items():
        setattr(param, name, value)
    return param


def test_stepping_an_iteration_equals_the_solvers_own_step():
    session = TrainingSession(get_solver(str(SOLVER)))
    reference = get_solver(str(SOLVER))
    for _ in range(3):
        run = run_iteration(session)
        assert not run.hits
    reference.step(3)
    assert session.solver.iter == reference.iter == 3
    ours, theirs = _params(session.net), _params(reference.net)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=str(key))
    for h, r in zip(session.solver.history, reference.history, strict=True):
        np.testing.assert_array_equal(h, r)
    assert [r.iteration for r in session.iterations] == [0, 1, 2]
    # The loss Caffe would log at iteration 2 (average_loss 1): the reference's smoothed loss.
    assert session.iterations.last.loss == pytest.approx(reference.smoothed_loss, rel=1e-6)


def test_iter_size_two_is_two_passes_then_one_update():
    session = TrainingSession(get_solver(_solver_param(iter_size=2)))
    reference = get_solver(_solver_param(iter_size=2))
    assert session.schedule[-1].direction != UPDATE  # the first pass has no update step
    run_iteration(session)
    assert session.pass_index == 1 and session.schedule[-1].direction == UPDATE
    reference.step(1)
    for key, value in _params(reference.net).items():
        np.testing.assert_array_equal(_params(session.net)[key], value, err_msg=str(key))
    # Two passes read two batches: batch 1 was the second pass's.
    assert session.net.layers[0].last_batch == 1


def test_step_back_over_the_update_puts_weights_history_and_iter_back():
    session = TrainingSession(get_solver(str(SOLVER)))
    run_iteration(session)  # iteration 0 with its update: momentum history is non-zero now
    session.step()  # the first step of iteration 1
    while session.next_step.direction != UPDATE:
        session.step()
    before = _params(session.net)
    history = [h.copy() for h in session.solver.history]
    diffs = {k: session.array(k[0], "diff", param=k[1]).copy() for k in before}
    session.step()
    after = _params(session.net)
    assert session.solver.iter == 2 and len(session.iterations) == 2
    assert any(not np.array_equal(after[k], before[k]) for k in before)
    # Looking back: the weights as they were before the update, without stepping back.
    update = session.schedule[-1].index
    np.testing.assert_array_equal(
        session.array("ip1", "data", step=update - 1, param=0), before[("ip1", 0)])
    stepped = session.step_back()
    assert stepped.direction == UPDATE
    assert session.solver.iter == 1 and len(session.iterations) == 1
    for k in before:
        np.testing.assert_array_equal(session.net.params[k[0]][k[1]].data, before[k])
        np.testing.assert_array_equal(session.net.params[k[0]][k[1]].diff, diffs[k])
    for h, saved in zip(session.solver.history, history, strict=True):
        np.testing.assert_array_equal(h, saved)
    session.step()  # the same update again: the same weights
    for k, value in after.items():
        np.testing.assert_array_equal(session.net.params[k[0]][k[1]].data, value)


def test_restart_and_step_back_reread_the_same_batch():
    session = TrainingSession(get_solver(str(SOLVER)))
    run_iteration(session)
    session.step()  # iteration 1 reads batch 1: records 64-127
    data = session.net.blobs["data"].data.copy()
    label = session.net.blobs["label"].data.copy()
    assert "records 64–127 of 1500" in session.describe_batches()[0]
    session.step()
    session.restart()
    session.step()
    np.testing.assert_array_equal(session.net.blobs["data"].data, data)
    np.testing.assert_array_equal(session.net.blobs["label"].data, label)
    session.step_back()  # back over the data layer's forward, and that forward again
    session.step()
    np.testing.assert_array_equal(session.net.blobs["data"].data, data)
    np.testing.assert_array_equal(session.net.blobs["label"].data, label)
    assert "records 64–127 of 1500" in session.describe_batches()[0]
    assert session.iteration == 1


def test_the_demo_loss_falls_over_100_iterations():
    session = TrainingSession(get_solver(str(SOLVER)))
    for _ in range(100):
        assert not run_iteration(session).hits
    _, losses = session.iterations.series("loss")
    assert losses[0] > 2.0  # ln(10) = 2.30 for an untrained 10-class net
    assert np.mean(losses[-10:]) < 0.5 * losses[0]
    tests = session.iterations.test_series()
    xs, accuracy = tests["test0:accuracy"]
    assert xs == [0, 50] and accuracy[-1] > 0.8  # tested at the start of iterations 0, 50


def test_too_high_a_rate_stops_at_the_first_nan_naming_the_layer():
    session = TrainingSession(get_solver(str(TOO_HIGH)))
    session.breakpoints.set_condition("nonfinite", True)
    stop = session.continue_()
    assert stop.reason == "condition"
    hit = stop.hits[0]
    assert hit.kind == "nonfinite"
    assert 20 <= session.iteration <= 70  # helper runs saw 25-63 over seeds
    assert hit.first_layer in session.net.layer_names
    assert f"layer {hit.first_layer!r}" in hit.message
    losses = session.iterations.series("loss")[1]
    assert all(math.isfinite(v) for v in losses)  # every finished iteration had a loss


def test_loss_condition_names_the_iteration():
    session = TrainingSession(get_solver(str(TOO_HIGH)))
    session.training_conditions.loss_nonfinite = True
    stop = session.continue_()
    assert stop.hits[0].kind == "loss_nonfinite"
    assert f"iteration {session.iteration}" in stop.hits[0].message
    assert "first non-finite value" in stop.hits[0].message


def test_update_ratio_and_iteration_breakpoints():
    session = TrainingSession(get_solver(str(SOLVER)))
    session.training_conditions.set_ratio_above(1e-4)
    stop = session.continue_()
    assert stop.hits[0].kind == "update_ratio" and session.schedule[-1].index < session.cursor
    assert "iteration 0" in stop.hits[0].message
    session.training_conditions.set_ratio_above(None)
    session.training_conditions.add_iteration(4)
    stop = session.continue_()
    assert stop.hits[0].kind == "iteration"
    assert session.solver.iter == 4 and session.at_iteration_start


def test_run_to_iteration_passes_over_layer_breakpoints():
    session = TrainingSession(get_solver(str(SOLVER)))
    session.breakpoints.add("conv1", FORWARD)
    stop = session.run_to_iteration(3)
    assert stop.reason == "target" and session.solver.iter == 3 and session.at_iteration_start
    assert session.breakpoints.has("conv1", FORWARD)  # still set afterwards
    stop = session.continue_()
    assert stop.reason == "breakpoint" and session.next_step.layer_name == "conv1"
    assert session.next_step.direction == FORWARD and session.iteration == 3


def test_backward_steps_keep_param_diffs_for_the_update():
    """The update consumes the accumulated diffs: the diff the last backward wrote is what
    went in (as the update report says)."""
    session = TrainingSession(get_solver(str(SOLVER)))
    while session.next_step.direction != UPDATE:
        step = session.step().step
    assert step.direction == BACKWARD
    grad = session.net.params["ip2"][0].diff.copy()
    report = session.solver.apply_update(record=True)
    np.testing.assert_array_equal(report.params[("ip2", 0)].diff_in, grad)
