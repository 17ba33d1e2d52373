"""Layer family: PReLU, the ReLU with a learned negative slope, after
src/caffe/layers/prelu_layer.cpp.

With ``a`` the slope of x's channel (axis 1; one slope for all channels with
``channel_shared``)::

    top = max(x, 0) + a * min(x, 0)
    bottom_diff = top_diff * (x > 0 ? 1 : a)
    a_diff += sum of top_diff * x over the positions of its channel where x <= 0

The slope blob has shape (C,), or () with ``channel_shared``; its filler is
``prelu_param.filler``, constant 0.25 when not given (Caffe's). In place
(``bottom == top``) the top overwrites x, so forward keeps the input:
``internals()["bottom_memory"]`` is that saved x, which backward then reads.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.proto import caffe_pb2


@register("PReLU")
class PReLU(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.prelu_param
        self.channel_shared = bool(p.channel_shared)
        self._filler = (p.filler if p.HasField("filler")
                        else caffe_pb2.FillerParameter(type="constant", value=0.25))
        self._ndim = 2
        self._bottom_memory: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            self.fail(f"needs a bottom with at least 2 axes (N, C, ...), got {shape}")
        self._ndim = len(shape)
        self.param_shapes = [() if self.channel_shared else (shape[1],)]
        self._bottom_memory = None
        return [shape]

    def param_fillers(self) -> list[Any]:
        return [self._filler]

    def _slope(self) -> Array:
        """The slope blob, shaped to broadcast along axis 1."""
        a = self.blobs[0].data
        return a if self.channel_shared else a.reshape((1, -1) + (1,) * (self._ndim - 2))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        # The top gets a new array, so in place x stays the input it was.
        self._bottom_memory = x if bottom[0] is top[0] else None
        top[0].data = xp.maximum(x, 0) + self._slope() * xp.minimum(x, 0)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        x = self._bottom_memory if bottom[0] is top[0] else bottom[0].data
        if x is None:
            self.fail("backward before forward: no saved input yet")
        negative = x <= 0
        if self.param_propagate_down and self.param_propagate_down[0]:
            contrib = xp.where(negative, dy * x, 0)
            if self.channel_shared:
                self.blobs[0].diff += xp.sum(contrib)
            else:
                axes = (0,) + tuple(range(2, self._ndim))
                self.blobs[0].diff += xp.sum(contrib, axis=axes)
        if propagate_down[0]:
            bottom[0].diff = xp.where(negative, dy * self._slope(), dy)

    def internals(self) -> dict[str, Array]:
        return {} if self._bottom_memory is None else {"bottom_memory": self._bottom_memory}
