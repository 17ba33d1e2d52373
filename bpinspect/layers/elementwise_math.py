"""Layer family: element-wise math. Exp, Log, Threshold, Clip and Swish: one bottom,
one top of its shape, after src/caffe/layers/{exp,log,threshold,clip,swish}_layer.cpp.

=========  ======================================  =====================================
type       forward                                 gradient (bottom_diff =)
=========  ======================================  =====================================
Exp        base^(shift + scale * x)                top_diff * y * scale * ln(base)
Log        log_base(shift + scale * x)             top_diff * scale / (ln(base) *
                                                   (shift + scale * x))
Threshold  x > threshold ? 1 : 0                   none (Caffe's is NOT_IMPLEMENTED)
Clip       max(min, min(x, max))                   top_diff * (min <= x <= max)
Swish      x * sigmoid(beta * x)                   top_diff * (beta y + s (1 - beta y)),
                                                   s = sigmoid(beta * x)
=========  ======================================  =====================================

``base`` -1 (the default) means e. Another base must be positive and not 1
for Log (1/ln(base) must be finite), as Caffe checks. Exp's backward reads its
top, so it works in place; Log's reads its bottom, so in place it keeps the
input (``internals()["bottom_memory"]``); so does Clip. Swish keeps
``internals()["sigmoid_output"]`` (s) and reads its top.

Threshold has no gradient: ``allow_force_backward`` is False, and a backward
asked to reach its bottom is an error naming the layer.
"""

from __future__ import annotations

import math
from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register


class _Elementwise(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]


def _log_base(layer: Layer, base: float) -> float:
    """ln(base), with -1 meaning e; a base <= 0 is an error."""
    if base == -1:
        return 1.0
    if not base > 0:
        layer.fail(f"base must be strictly positive (or -1 for e), got {base:g}")
    value = math.log(base)
    if not math.isfinite(value):
        layer.fail(f"log(base) = log({base:g}) is not finite")
    return value


@register("Exp")
class Exp(_Elementwise):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.exp_param
        self.base, self.scale, self.shift = float(p.base), float(p.scale), float(p.shift)
        self.inner_scale = 1.0
        self.outer_scale = 1.0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        self.inner_scale = _log_base(self, self.base) * self.scale
        if self.shift == 0:
            self.outer_scale = 1.0
        elif self.base == -1:
            self.outer_scale = math.exp(self.shift)
        else:
            self.outer_scale = self.base ** self.shift
        return super().setup(bottom_shapes)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        t = x.dtype.type
        y = xp.exp(x * t(self.inner_scale))
        if self.outer_scale != 1:
            y *= t(self.outer_scale)
        top[0].data = y

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            dy = top[0].diff
            bottom[0].diff = dy * top[0].data * dy.dtype.type(self.inner_scale)


@register("Log")
class Log(_Elementwise):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.log_param
        self.base, self.scale, self.shift = float(p.base), float(p.scale), float(p.shift)
        self.base_scale = 1.0
        self._bottom_memory: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        log_base = _log_base(self, self.base)
        if log_base == 0:
            self.fail(f"base {self.base:g}: 1/log(base) is not finite")
        self.base_scale = 1.0 / log_base
        self._bottom_memory = None
        return super().setup(bottom_shapes)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        t = x.dtype.type
        self._bottom_memory = x if bottom[0] is top[0] else None
        y = xp.log(x * t(self.scale) + t(self.shift))
        if self.base_scale != 1:
            y *= t(self.base_scale)
        top[0].data = y

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        x = self._bottom_memory if bottom[0] is top[0] else bottom[0].data
        if x is None:
            self.fail("backward before forward: no saved input yet")
        dy = top[0].diff
        t = dy.dtype.type
        bottom[0].diff = dy * t(self.scale * self.base_scale) / (x * t(self.scale) + t(self.shift))

    def internals(self) -> dict[str, Array]:
        return {} if self._bottom_memory is None else {"bottom_memory": self._bottom_memory}


@register("Threshold")
class Threshold(_Elementwise):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.threshold = float(param.threshold_param.threshold)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        top[0].data = (x > x.dtype.type(self.threshold)).astype(x.dtype)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            self.fail("has no gradient (a step function; Caffe's backward is not "
                      "implemented): give the layer after it propagate_down: false")


@register("Clip")
class Clip(_Elementwise):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            self.fail("clip_param needs both min and max")
        self.min, self.max = float(p.min), float(p.max)
        self._bottom_memory: Array | None = None

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        t = x.dtype.type
        self._bottom_memory = x if bottom[0] is top[0] else None
        top[0].data = xp.maximum(t(self.min), xp.minimum(x, t(self.max)))

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        x = self._bottom_memory if bottom[0] is top[0] else bottom[0].data
        if x is None:
            self.fail("backward before forward: no saved input yet")
        t = x.dtype.type
        inside = (x >= t(self.min)) & (x <= t(self.max))
        bottom[0].diff = top[0].diff * inside

    def internals(self) -> dict[str, Array]:
        return {} if self._bottom_memory is None else {"bottom_memory": self._bottom_memory}


@register("Swish")
class Swish(_Elementwise):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.beta = float(param.swish_param.beta)
        self._sigmoid: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        self._sigmoid = None
        return super().setup(bottom_shapes)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        half = x.dtype.type(0.5)
        s = half * xp.tanh(half * x * x.dtype.type(self.beta)) + half
        self._sigmoid = s
        top[0].data = x * s

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        if self._sigmoid is None:
            self.fail("backward before forward: no sigmoid output yet")
        y, s = top[0].data, self._sigmoid
        beta_y = y * y.dtype.type(self.beta)
        bottom[0].diff = top[0].diff * (beta_y + s * (1 - beta_y))

    def internals(self) -> dict[str, Array]:
        return {} if self._sigmoid is None else {"sigmoid_output": self._sigmoid}
