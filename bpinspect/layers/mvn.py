"""Layer family: MVN, mean-variance normalization, after src/caffe/layers/mvn_layer.cpp.

Each (n, c) plane (each sample n, all channels together, with
``across_channels``) is normalized over its ``dim`` values::

    mean = sum(x) / dim
    y = x - mean                                  (normalize_variance false)
    std = sqrt(sum((x - mean)^2) / dim) + eps;  y = (x - mean) / std   (true, default)

Note where Caffe adds ``eps`` (default 1e-9): to the standard deviation, not
to the variance. The gradient is Caffe's, which treats ``std + eps`` as the
standard deviation (exact for eps = 0)::

    bottom_diff = top_diff - mean(top_diff)                         (no variance)
    bottom_diff = (top_diff - mean(top_diff) - y * mean(top_diff * y)) / std

The bottom is read as Caffe's legacy (num, channels, height, width): at most
4 axes, missing ones of size 1, and the top has that 4-axis shape.
``internals()``: ``mean`` (N, C, 1, 1) or (N, 1, 1, 1) across channels, and with
``normalize_variance`` ``std`` (the ``std + eps`` that backward divides by).
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register


@register("MVN")
class MVN(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)
        self._shape: Shape = (1, 1, 1, 1)
        self._mean: Array | None = None
        self._std: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if not 1 <= len(shape) <= 4:
            self.fail(f"reads its bottom as (num, channels, height, width): 1 to 4 axes, "
                      f"got {shape}")
        self._shape = shape + (1,) * (4 - len(shape))
        self._mean = self._std = None
        return [self._shape]

    def _groups(self, a: Array) -> Array:
        """(groups, dim) view of a bottom-shaped array."""
        n, c = self._shape[:2]
        return a.reshape(n if self.across_channels else n * c, -1)

    def _stat_shape(self) -> Shape:
        n, c = self._shape[:2]
        return (n, 1, 1, 1) if self.across_channels else (n, c, 1, 1)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = self._groups(bottom[0].data)
        mean = xp.mean(x, axis=1, keepdims=True)
        y = x - mean
        self._mean = mean.reshape(self._stat_shape())
        self._std = None
        if self.normalize_variance:
            std = xp.sqrt(xp.mean(y * y, axis=1, keepdims=True)) + x.dtype.type(self.eps)
            y = y / std
            self._std = std.reshape(self._stat_shape())
        top[0].data = y.reshape(self._shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = self._groups(top[0].diff)
        dx = dy - xp.mean(dy, axis=1, keepdims=True)
        if self.normalize_variance:
            if self._std is None:
                self.fail("backward before forward: no statistics yet")
            y = self._groups(top[0].data)
            dx = (dx - y * xp.mean(dy * y, axis=1, keepdims=True)) / self._groups(self._std)
        bottom[0].diff = dx.reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        if self._mean is None:
            return {}
        found = {"mean": self._mean}
        if self._std is not None:
            found["std"] = self._std
        return found
