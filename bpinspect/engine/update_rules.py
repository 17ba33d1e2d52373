"""Caffe's ``ComputeUpdateValue`` for each solver type, one small rule per type.

Each rule turns a param's (clipped, normalized, regularized) gradient ``g`` in
``diff`` into the update value that ``Net::Update`` subtracts from the data,
in place, and keeps its history arrays (Caffe's ``history_`` blobs) up to
date. ``local_rate = rate * lr_mult``. The formulas are those of the CUDA
kernels in ``src/caffe/solvers/*_solver.cu`` (the CPU code in the ``.cpp``
files does the same in several BLAS calls):

- **SGD** (``sgd_solver.cu``): ``h = momentum * h + local_rate * g; g = h``.
  The rate enters *before* the momentum: the history holds rate-scaled steps.
- **Nesterov** (``nesterov_solver.cu``): ``h_old = h; h = momentum * h +
  local_rate * g; g = (1 + momentum) * h - momentum * h_old``.
- **AdaGrad** (``adagrad_solver.cu``): ``h = h + g^2; g = local_rate * g /
  (sqrt(h) + delta)``.
- **RMSProp** (``rmsprop_solver.cu``): ``h = rms_decay * h + (1 - rms_decay)
  * g^2; g = local_rate * g / (sqrt(h) + delta)``.
- **AdaDelta** (``adadelta_solver.cu``), two history sets, gradients ``h``
  and updates ``h2``, both decayed by ``momentum``: ``h = momentum * h + (1 -
  momentum) * g^2; g = g * sqrt((h2 + delta) / (h + delta)); h2 = momentum *
  h2 + (1 - momentum) * g^2; g = local_rate * g``. ``h2`` takes the update
  *before* the rate is applied.
- **Adam** (``adam_solver.cu``), two history sets ``m`` and ``v`` (``beta1 =
  momentum``, ``beta2 = momentum2``, ``eps = delta``): ``m = beta1 * m + (1 -
  beta1) * g; v = beta2 * v + (1 - beta2) * g^2; g = local_rate * correction *
  m / (sqrt(v) + eps)``, with ``correction = sqrt(1 - beta2^t) / (1 - beta1^t)``
  and ``t = iter + 1`` (``iter`` before this update's increment).

The constructor checks are Caffe's ``constructor_sanity_check``: AdaGrad and
RMSProp refuse a momentum, RMSProp needs ``0 <= rms_decay < 1``.

Rules are written once against the arrays' module (NumPy or CuPy) and never
know which net or param they serve, as chainer's ``UpdateRule``.
"""

from __future__ import annotations

import math
from typing import ClassVar

from bpinspect.backend import Array, get_array_module
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

__all__ = [
    "RULES",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "Nesterov",
    "RMSProp",
    "SGD",
    "UpdateRule",
]


class UpdateRule:
    """The hyperparameters of one solver type and its ``ComputeUpdateValue``."""

    type: ClassVar[str] = ""
    history_sets: ClassVar[int] = 1
    """How many history arrays per learnable param (Caffe appends the second set
    after the first: ``history_[n + i]`` is param ``i``'s second array)."""

    def __init__(self, param: caffe_pb2.SolverParameter, source: str = "solver") -> None:
        self.momentum = float(param.momentum)
        self.momentum2 = float(param.momentum2)
        self.delta = float(param.delta)
        self.rms_decay = float(param.rms_decay)
        self.check(source)

    def check(self, source: str) -> None:
        """Caffe's constructor_sanity_check for the type (nothing by default)."""

    def compute_update_value(
        self, diff: Array, history: list[Array], local_rate: float, it: int
    ) -> None:
        """Replace the gradient in ``diff`` by the update, in place; update ``history``.

        ``it`` is the solver's ``iter`` (updates done before this one).
        """
        raise NotImplementedError

    def _no_momentum(self, source: str) -> None:
        if self.momentum != 0:
            raise BpinspectError(
                f"{source}: momentum cannot be used with {self.type} (got momentum: "
                f"{self.momentum:g}); remove it"
            )


class SGD(UpdateRule):
    type = "SGD"

    def compute_update_value(self, diff, history, local_rate, it):
        (h,) = history
        h *= self.momentum
        h += local_rate * diff
        diff[...] = h


class Nesterov(UpdateRule):
    type = "Nesterov"

    def compute_update_value(self, diff, history, local_rate, it):
        (h,) = history
        h_old = h.copy()
        h *= self.momentum
        h += local_rate * diff
        # Step back (the old momentum), then over-step along the new one.
        diff[...] = (1 + self.momentum) * h - self.momentum * h_old


class AdaGrad(UpdateRule):
    type = "AdaGrad"

    def check(self, source):
        self._no_momentum(source)

    def compute_update_value(self, diff, history, local_rate, it):
        xp = get_array_module(diff)
        (h,) = history
        h += diff * diff
        diff[...] = local_rate * diff / (xp.sqrt(h) + self.delta)


class RMSProp(UpdateRule):
    type = "RMSProp"

    def check(self, source):
        self._no_momentum(source)
        if not 0 <= self.rms_decay < 1:
            raise BpinspectError(
                f"{source}: rms_decay should lie between 0 and 1 (0 <= rms_decay < 1), "
                f"got {self.rms_decay:g}"
            )

    def compute_update_value(self, diff, history, local_rate, it):
        xp = get_array_module(diff)
        (h,) = history
        h *= self.rms_decay
        h += (1 - self.rms_decay) * (diff * diff)
        diff[...] = local_rate * diff / (xp.sqrt(h) + self.delta)


class AdaDelta(UpdateRule):
    type = "AdaDelta"
    history_sets = 2

    def compute_update_value(self, diff, history, local_rate, it):
        xp = get_array_module(diff)
        h, h2 = history
        m = self.momentum
        h *= m
        h += (1 - m) * (diff * diff)
        diff *= xp.sqrt((h2 + self.delta) / (h + self.delta))
        h2 *= m
        h2 += (1 - m) * (diff * diff)
        diff *= local_rate


class Adam(UpdateRule):
    type = "Adam"
    history_sets = 2

    def compute_update_value(self, diff, history, local_rate, it):
        xp = get_array_module(diff)
        m, v = history
        beta1, beta2 = self.momentum, self.momentum2
        t = it + 1
        correction = _divide(math.sqrt(1 - beta2**t), 1 - beta1**t)
        m *= beta1
        m += (1 - beta1) * diff
        v *= beta2
        v += (1 - beta2) * (diff * diff)
        diff[...] = (local_rate * correction) * m / (xp.sqrt(v) + self.delta)


def _divide(a: float, b: float) -> float:
    """``a / b`` as C divides doubles (beta1 = 1 makes Adam's correction infinite)."""
    if b == 0:
        return math.copysign(math.inf, a) if a else math.nan
    return a / b


RULES: dict[str, type[UpdateRule]] = {
    rule.type: rule for rule in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)
}
