"""GetLearningRate's policies, at chosen iterations, with values worked out by hand."""

from __future__ import annotations

import pytest

from bpinspect.engine.lr_policy import learning_rate
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2


def param(**fields):
    stepvalue = fields.pop("stepvalue", [])
    p = caffe_pb2.SolverParameter(**fields)
    p.stepvalue.extend(stepvalue)
    return p


# base_lr, gamma and power are exact in float32, so the hand values are exact too.
@pytest.mark.parametrize(
    ("fields", "it", "expected"),
    [
        ({"lr_policy": "fixed", "base_lr": 0.5}, 1000, 0.5),
        ({"lr_policy": "step", "base_lr": 0.5, "gamma": 0.5, "stepsize": 3}, 2, 0.5),
        ({"lr_policy": "step", "base_lr": 0.5, "gamma": 0.5, "stepsize": 3}, 3, 0.25),
        ({"lr_policy": "step", "base_lr": 0.5, "gamma": 0.5, "stepsize": 3}, 7, 0.125),
        ({"lr_policy": "exp", "base_lr": 2.0, "gamma": 0.5}, 3, 0.25),
        ({"lr_policy": "exp", "base_lr": 2.0, "gamma": 0.5}, 0, 2.0),
        # (1 + 0.25 * 12) ^ -0.5 = 4 ^ -0.5
        ({"lr_policy": "inv", "base_lr": 1.0, "gamma": 0.25, "power": 0.5}, 12, 0.5),
        # (1 - 6/8) ^ 2 = 1/16
        ({"lr_policy": "poly", "base_lr": 1.0, "power": 2.0, "max_iter": 8}, 6, 0.0625),
        ({"lr_policy": "poly", "base_lr": 1.0, "power": 2.0, "max_iter": 8}, 8, 0.0),
        # at iter == stepsize the sigmoid is at its midpoint
        ({"lr_policy": "sigmoid", "base_lr": 0.5, "gamma": 0.25, "stepsize": 10}, 10, 0.25),
        # 1 / (1 + e^(-0.25 * 4))
        ({"lr_policy": "sigmoid", "base_lr": 1.0, "gamma": 0.25, "stepsize": 10}, 14,
         1 / (1 + 0.36787944117144233)),
    ],
)
def test_policies(fields, it, expected):
    rate, _ = learning_rate(param(**fields), it)
    assert rate == pytest.approx(expected, rel=1e-15, abs=1e-300)


def test_step_sets_current_step():
    p = param(lr_policy="step", base_lr=1.0, gamma=0.5, stepsize=3)
    assert learning_rate(p, 7, current_step=0) == (0.25, 2)


def test_multistep_bookkeeping_advances_one_step_per_call():
    p = param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[2, 4])
    steps, rates, current = [], [], 0
    for it in range(6):
        rate, current = learning_rate(p, it, current)
        rates.append(rate)
        steps.append(current)
    assert steps == [0, 0, 1, 1, 2, 2]
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    # A state restored at iteration 10 with current_step 0 catches up one value per call.
    assert learning_rate(p, 10, 0) == (0.5, 1)
    assert learning_rate(p, 11, 1) == (0.25, 2)
    assert learning_rate(p, 12, 2) == (0.25, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lr_policy": "cosine", "base_lr": 1.0}, "unknown learning rate policy"),
        ({"base_lr": 1.0}, "lr_policy: (none given)"),
        ({"lr_policy": "step", "base_lr": 1.0, "gamma": 0.5}, "needs stepsize > 0"),
        ({"lr_policy": "exp", "base_lr": 1.0, "gamma": -1.0}, "needs gamma >= 0"),
        ({"lr_policy": "poly", "base_lr": 1.0, "power": 1.0}, "needs max_iter > 0"),
    ],
)
def test_bad_policies_are_one_line_errors(fields, message):
    with pytest.raises(BpinspectError, match="solver.prototxt: .*") as e:
        learning_rate(param(**fields), 0, source="solver.prototxt")
    assert message in str(e.value) and "\n" not in str(e.value)
