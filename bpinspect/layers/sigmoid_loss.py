"""Layer family: SigmoidCrossEntropyLoss, after
src/caffe/layers/sigmoid_cross_entropy_loss_layer.cpp.

Bottom[0] holds scores x, bottom[1] targets t in [0, 1] (same count). With
``p = sigmoid(x)``, over the positions whose target is not ``ignore_label``::

    loss = -sum(t log p + (1 - t) log(1 - p)) / normalizer
         = -sum(x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))) / normalizer
    bottom_diff = (p - t) * top_diff / normalizer          (0 where ignored)

(the second form, Caffe's, never overflows). ``normalizer`` is max(1, n) for
n = the number of positions (FULL), of non-ignored ones (VALID), the first
dimension (BATCH_SIZE) or 1 (NONE). Unlike SoftmaxWithLoss, the default here is
BATCH_SIZE; a legacy ``normalize: true`` means VALID, ``false`` BATCH_SIZE.
No gradient flows to the targets. ``internals()["sigmoid_output"]`` is ``p``.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.loss import normalizer
from bpinspect.layers.registry import register
from bpinspect.layers.shape import count
from bpinspect.proto import caffe_pb2

_Norm = caffe_pb2.LossParameter
FULL, VALID, BATCH_SIZE, NONE = _Norm.FULL, _Norm.VALID, _Norm.BATCH_SIZE, _Norm.NONE


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        lp = param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        if lp.HasField("normalization"):
            self.normalization = int(lp.normalization)
        elif lp.HasField("normalize"):
            self.normalization = VALID if lp.normalize else BATCH_SIZE
        else:
            self.normalization = BATCH_SIZE
        if self.normalization not in (FULL, VALID, BATCH_SIZE, NONE):
            self.fail(f"unknown normalization mode {self.normalization}")
        self._outer = self._count = 1
        self._prob: Array | None = None
        self._valid: Array | None = None
        self._normalizer: Any = 1.0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, target = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if not shape or not target or shape[0] != target[0]:
            self.fail(f"bottom[0] {shape} and bottom[1] {target} must have the same "
                      "first dimension")
        if count(shape) != count(target):
            self.fail(f"scores {shape} and targets {target} must have the same count")
        self._outer, self._count = shape[0], count(shape)
        self._prob = self._valid = None
        return [()]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def _normalizer_of(self, valid_count: Any, dtype: Any) -> Any:
        return normalizer(self, valid_count, self._count, self._outer, dtype)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        t = bottom[1].data.reshape(x.shape)
        if self.ignore_label is None:
            valid = xp.ones(x.shape, dtype=bool)
        else:
            valid = t.astype(xp.int64) != self.ignore_label  # static_cast<int>
        positive = (x >= 0).astype(x.dtype)
        terms = x * (t - positive) - xp.log1p(xp.exp(x - 2 * x * positive))
        loss = -xp.sum(xp.where(valid, terms, 0))
        self._normalizer = self._normalizer_of(xp.sum(valid), x.dtype)
        half = x.dtype.type(0.5)
        self._prob = half * xp.tanh(half * x) + half
        self._valid = valid
        top[0].data = xp.asarray(loss / self._normalizer, dtype=x.dtype).reshape(())

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[1]:
            self.fail("cannot backpropagate to the targets (bottom[1])")
        if not propagate_down[0]:
            return
        if self._prob is None or self._valid is None:
            self.fail("backward before forward: no sigmoid output yet")
        xp = get_array_module(self._prob)
        t = bottom[1].data.reshape(self._prob.shape)
        diff = xp.where(self._valid, self._prob - t, 0)
        scale = top[0].diff / self._normalizer
        bottom[0].diff = (diff * scale).astype(self._prob.dtype)

    def internals(self) -> dict[str, Array]:
        return {} if self._prob is None else {"sigmoid_output": self._prob}
