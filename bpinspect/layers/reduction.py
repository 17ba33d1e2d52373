"""Layer family: reduction. Reduction sums the tail of a blob to one value per
leading position, after src/caffe/layers/reduction_layer.cpp.

With ``axis`` (default 0, negative counts from the end), the top has the shape
of the bottom's first ``axis`` axes (a scalar for axis 0), and each top value
reduces the ``dim`` values of the axes ``axis ..`` at its position::

    SUM    top = coeff * sum(x)               bottom_diff = coeff * top_diff
    ASUM   top = coeff * sum(|x|)             bottom_diff = coeff * top_diff * sign(x)
    SUMSQ  top = coeff * sum(x^2)             bottom_diff = coeff * top_diff * 2 x
    MEAN   top = coeff / dim * sum(x)         bottom_diff = coeff / dim * top_diff

(``coeff`` defaults to 1; as Caffe's sign, sign(0) = 0.) Caffe reduces only
whole tails; so does this layer. It keeps no internals: backward reads the
bottom and the top diff only.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count
from bpinspect.proto import caffe_pb2

_Op = caffe_pb2.ReductionParameter
SUM, ASUM, SUMSQ, MEAN = _Op.SUM, _Op.ASUM, _Op.SUMSQ, _Op.MEAN


@register("Reduction")
class Reduction(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.reduction_param
        self.operation = int(p.operation)
        self.axis = int(p.axis)
        self.coeff = float(p.coeff)
        if self.operation not in (SUM, ASUM, SUMSQ, MEAN):
            self.fail(f"unknown reduction operation {self.operation}")
        self._num = self._dim = 1
        self._scale = 1.0  # coeff, divided by dim for MEAN
        self._top_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        axis = canonical_axis(self, self.axis, len(shape)) if shape else 0
        self._num, self._dim = count(shape, 0, axis), count(shape, axis)
        self._scale = self.coeff / self._dim if self.operation == MEAN else self.coeff
        self._top_shape = shape[:axis]
        return [self._top_shape]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        rows = x.reshape(self._num, self._dim)
        if self.operation == ASUM:
            rows = xp.abs(rows)
        elif self.operation == SUMSQ:
            rows = rows * rows
        total = xp.sum(rows, axis=1)
        if self._scale != 1:
            total *= x.dtype.type(self._scale)
        top[0].data = total.reshape(self._top_shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        per_row = (dy.reshape(self._num, 1) * dy.dtype.type(self._scale))
        if self.operation in (SUM, MEAN):
            dx = xp.broadcast_to(per_row, (self._num, self._dim)).copy()
        else:
            x = bottom[0].data.reshape(self._num, self._dim)
            dx = per_row * (xp.sign(x) if self.operation == ASUM else 2 * x)
        bottom[0].diff = dx.reshape(bottom[0].shape)
