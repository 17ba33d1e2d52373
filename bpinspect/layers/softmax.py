"""Layer family: softmax, after src/caffe/layers/softmax_layer.cpp.

Along ``axis`` (default 1; negative counts from the end)::

    top = exp(x - max(x)) / sum(exp(x - max(x)))
    bottom_diff = (dy - sum(dy * top)) * top

Subtracting the maximum keeps ``exp`` from overflowing. Backward reads the
top data itself (the probabilities), so the layer keeps no internals.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis


def softmax(x: Array, axis: int) -> Array:
    """The numerically stable softmax of ``x`` along ``axis`` (a new array)."""
    xp = get_array_module(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e


def softmax_backward(prob: Array, dy: Array, axis: int) -> Array:
    """``(dy - sum(dy * prob, axis)) * prob``."""
    xp = get_array_module(prob)
    return (dy - xp.sum(dy * prob, axis=axis, keepdims=True)) * prob


@register("Softmax")
class Softmax(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.axis = int(param.softmax_param.axis)
        self._axis = 1

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        self._axis = canonical_axis(self, self.axis, len(shape))
        return [shape]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].data = softmax(bottom[0].data, self._axis)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            bottom[0].diff = softmax_backward(top[0].data, top[0].diff, self._axis)
