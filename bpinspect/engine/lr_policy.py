"""Learning-rate policies: ``SGDSolver::GetLearningRate`` (``src/caffe/solvers/sgd_solver.cpp``).

With ``base_lr``, ``gamma``, ``power``, ``stepsize``, ``stepvalue``, ``max_iter``
from the ``SolverParameter`` and ``iter`` the number of updates done so far:

- ``fixed``: ``base_lr``
- ``step``: ``base_lr * gamma ^ floor(iter / stepsize)``; sets ``current_step``
  to ``floor(iter / stepsize)``
- ``exp``: ``base_lr * gamma ^ iter``
- ``inv``: ``base_lr * (1 + gamma * iter) ^ (-power)``
- ``multistep``: ``base_lr * gamma ^ current_step``, where each call first
  advances ``current_step`` by one (at most one) when ``iter >=
  stepvalue[current_step]``. This bookkeeping is state: the ``.solverstate``
  stores ``current_step``, and a solver restored at iteration 1000 with
  ``current_step: 0`` catches up one step value per call, as Caffe's does.
- ``poly``: ``base_lr * (1 - iter / max_iter) ^ power``
- ``sigmoid``: ``base_lr / (1 + exp(-gamma * (iter - stepsize)))``

The arithmetic is Caffe's for ``Dtype = double`` (the proto's float fields,
as floats, promoted to double where C++ promotes them; ``gamma * iter`` in
``inv`` is a float product in Caffe, and here too). A float32 net rounds the
double result once; Caffe's float build rounds some intermediate steps of
``inv``/``poly``/``sigmoid`` too, which can differ in the last bit.
"""

from __future__ import annotations

import math

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

__all__ = ["POLICIES", "check_policy", "learning_rate"]

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def check_policy(param: caffe_pb2.SolverParameter, source: str = "solver") -> None:
    """The checks ``GetLearningRate`` makes (CHECKs on gamma and stepsize), done up front."""
    policy = param.lr_policy
    if policy not in POLICIES:
        shown = repr(policy) if policy else "(none given)"
        raise BpinspectError(
            f"{source}: unknown learning rate policy lr_policy: {shown} "
            f"(Caffe's are {', '.join(POLICIES)})"
        )
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        raise BpinspectError(
            f"{source}: lr_policy {policy!r} needs stepsize > 0, got {param.stepsize}"
        )
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        raise BpinspectError(f"{source}: lr_policy {policy!r} needs gamma >= 0, got {param.gamma}")
    if policy == "poly" and param.max_iter <= 0:
        # Caffe divides by max_iter and goes on with inf or NaN; say it instead.
        raise BpinspectError(f"{source}: lr_policy 'poly' needs max_iter > 0, got {param.max_iter}")


def learning_rate(
    param: caffe_pb2.SolverParameter, it: int, current_step: int = 0, source: str = "solver"
) -> tuple[float, int]:
    """``(rate, current_step)`` at iteration ``it``: Caffe's ``GetLearningRate``.

    ``current_step`` is the solver's before the call; the one returned is
    what Caffe leaves in ``current_step_`` (changed by ``step`` and
    ``multistep`` only).
    """
    check_policy(param, source)
    policy = param.lr_policy
    base_lr, gamma, power = param.base_lr, param.gamma, param.power
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        current_step = it // param.stepsize
        rate = base_lr * _pow(gamma, current_step)
    elif policy == "exp":
        rate = base_lr * _pow(gamma, it)
    elif policy == "inv":
        # gamma() * iter_ is float * int in C++: a float product.
        product = float(np.float32(gamma) * np.float32(it))
        rate = base_lr * _pow(1.0 + product, -power)
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
            current_step += 1
        rate = base_lr * _pow(gamma, current_step)
    elif policy == "poly":
        rate = base_lr * _pow(1.0 - it / param.max_iter, power)
    else:  # sigmoid
        rate = base_lr * (1.0 / (1.0 + _exp(-gamma * (it - param.stepsize))))
    return rate, current_step


def _pow(x: float, y: float) -> float:
    """C's ``pow``: inf on overflow, NaN for a negative base and a fractional power."""
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def _exp(x: float) -> float:
    """C's ``exp``: inf on overflow."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
