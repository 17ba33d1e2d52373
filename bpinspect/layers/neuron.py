"""Layer family: neuron. Element-wise maps, one bottom and one top of its shape.

Each may run in place (``bottom: "x" top: "x"``): forward reads what backward
needs before the top is written (the top gets a new array), and backward
computes the bottom diff from the top diff before assigning it.

=======  ======================================  ==========================================
type     forward                                 gradient (bottom_diff =)
=======  ======================================  ==========================================
ReLU     max(x, 0) + negative_slope * min(x, 0)  dy * (x > 0 ? 1 : negative_slope)
Sigmoid  1 / (1 + exp(-x)) = tanh(x/2)/2 + 1/2   dy * y * (1 - y)
TanH     tanh(x)                                 dy * (1 - y^2)
Dropout  TRAIN: x * mask / (1 - p),              TRAIN: dy * mask / (1 - p)
         mask ~ Bernoulli(1 - p); TEST: x        TEST: dy
Power    (shift + scale * x)^power               dy * power * scale * (shift + scale x)^(power-1)
AbsVal   |x|                                     dy * sign(x)
BNLL     log(1 + exp(x))                         dy * sigmoid(x)
ELU      x > 0 ? x : alpha * (exp(x) - 1)        dy * (x > 0 ? 1 : y + alpha)
=======  ======================================  ==========================================

Sources: src/caffe/layers/{relu,sigmoid,tanh,dropout,power,absval,bnll,elu}_layer.cpp.
As in Caffe, ReLU and ELU backward test the sign of the bottom data, which
in place is the top data: the same sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers._parallel import flat_parts
from bpinspect.layers.base import DrawsRandom, Layer, Shape
from bpinspect.layers.registry import register


def _in_place(bottom: list[Blob], top: list[Blob]) -> bool:
    return bottom[0] is top[0]


class _Neuron(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]


@register("ReLU")
class ReLU(_Neuron):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.negative_slope = float(param.relu_param.negative_slope)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        if self.negative_slope == 0 and get_array_module(bottom[0].data) is np:
            # Asked before x is taken: in place, the bottom's own array when only the blob
            # holds it (an element-wise loop may write where it reads). Split over the
            # cores: each part is max(x, 0) of its elements.
            out = top[0].array_to_overwrite("data", bottom[0].shape, bottom[0].dtype)
            if flat_parts(lambda a, b: np.maximum(a, 0, out=b), bottom[0].data, out):
                top[0].data = out
                return
        x = bottom[0].data
        xp = get_array_module(x)
        if self.negative_slope == 0:
            top[0].data = xp.maximum(x, 0)
        else:
            top[0].data = xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        # Caffe's dy * ((x > 0) + slope * (x <= 0)): a factor of exactly 1 or slope, so a
        # NaN diff stays NaN where x <= 0. One multiply by the mask is also the fastest
        # form in NumPy (six times xp.where(x > 0, dy, dy * slope) on conv1's top).
        if self.negative_slope == 0 and get_array_module(top[0].diff) is np:
            # Asked first, as in forward; each part is dy * (x > 0) of its elements.
            dx = bottom[0].array_to_overwrite("diff", top[0].diff.shape, top[0].diff.dtype)
            if flat_parts(lambda d, s, o: np.multiply(d, s > 0, out=o), top[0].diff,
                          bottom[0].data, dx):
                bottom[0].diff = dx
                return
        x, dy = bottom[0].data, top[0].diff
        xp = get_array_module(dy)
        if self.negative_slope == 0:
            bottom[0].diff = dy * (x > 0)
        else:
            one, slope = dy.dtype.type(1), dy.dtype.type(self.negative_slope)
            bottom[0].diff = dy * xp.where(x > 0, one, slope)


@register("Sigmoid")
class Sigmoid(_Neuron):
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        half = x.dtype.type(0.5)
        top[0].data = half * xp.tanh(half * x) + half

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff = top[0].diff * y * (1 - y)


@register("TanH")
class TanH(_Neuron):
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        top[0].data = xp.tanh(bottom[0].data)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff = top[0].diff * (1 - y * y)


@register("Dropout")
class Dropout(DrawsRandom, _Neuron):
    """In TRAIN each value is kept with probability 1 - p and scaled by
    ``scale = 1 / (1 - p)``; ``internals()["mask"]`` is the 0/1 mask that
    backward reuses. In TEST the layer is the identity and keeps no mask.

    The mask is drawn on the host from ``backend.rng(seed)`` (NumPy, float64)
    and then copied to the data's device, so one seed gives one mask on the
    CPU and the GPU, in float32 and float64; ``reset_rng(seed)`` re-seeds it,
    so a replay draws the same mask.
    """

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.ratio = float(param.dropout_param.dropout_ratio)
        self.scale = 1.0 / (1.0 - self.ratio) if self.ratio < 1 else float("inf")
        self._mask: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if not 0.0 <= self.ratio < 1.0:
            self.fail(f"dropout_ratio must be in [0, 1), got {self.ratio:g}")
        self._mask = None
        return [tuple(bottom_shapes[0])]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        if self.phase != "train":
            self._mask = None
            top[0].data = x.copy()
            return
        xp = get_array_module(x)
        keep = self._generator().random(x.shape) >= self.ratio  # P(keep) = 1 - ratio
        self._mask = xp.asarray(keep, dtype=x.dtype)
        top[0].data = x * self._mask * x.dtype.type(self.scale)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase != "train":
            bottom[0].diff = dy.copy()
            return
        if self._mask is None:
            self.fail("backward before forward: no dropout mask yet")
        bottom[0].diff = dy * self._mask * dy.dtype.type(self.scale)

    def internals(self) -> dict[str, Array]:
        return {} if self._mask is None else {"mask": self._mask}


@register("Power")
class Power(_Neuron):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.power_param
        self.power = float(p.power)
        self.scale = float(p.scale)
        self.shift = float(p.shift)
        self.diff_scale = self.power * self.scale
        self._x: Array | None = None

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        self._x = x  # the top gets a new array, so this stays the input even in place
        t = x.dtype.type
        if self.diff_scale == 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                value = 1.0 if self.power == 0 else float(np.power(self.shift, self.power))
            top[0].data = xp.full(x.shape, value, dtype=x.dtype)
            return
        top[0].data = (t(self.shift) + t(self.scale) * x) ** t(self.power)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        t = dy.dtype.type
        if self.diff_scale == 0:
            bottom[0].diff = xp.zeros_like(dy)
            return
        if self.power == 1:
            bottom[0].diff = dy * t(self.diff_scale)
            return
        x = self._x if self._x is not None else bottom[0].data
        base = t(self.shift) + t(self.scale) * x
        bottom[0].diff = dy * t(self.diff_scale) * base ** t(self.power - 1)


@register("AbsVal")
class AbsVal(_Neuron):
    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        p = self.param
        if len(p.bottom) and len(p.top) and p.bottom[0] == p.top[0]:
            self.fail("does not allow in-place computation (as Caffe's AbsVal)")
        return [tuple(bottom_shapes[0])]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        top[0].data = xp.abs(bottom[0].data)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            xp = get_array_module(top[0].diff)
            bottom[0].diff = xp.sign(bottom[0].data) * top[0].diff


BNLL_THRESHOLD = 50.0


@register("BNLL")
class BNLL(_Neuron):
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        # x + log(1 + exp(-x)) for x > 0, log(1 + exp(x)) otherwise: never overflows.
        top[0].data = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        if _in_place(bottom, top):
            # The bottom data was overwritten by y = log(1 + exp(x)); sigmoid(x) = 1 - exp(-y).
            bottom[0].diff = dy * -xp.expm1(-top[0].data)
            return
        e = xp.exp(xp.minimum(bottom[0].data, dy.dtype.type(BNLL_THRESHOLD)))
        bottom[0].diff = dy * e / (e + 1)


@register("ELU")
class ELU(_Neuron):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.alpha = float(param.elu_param.alpha)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        t = x.dtype.type
        top[0].data = xp.maximum(x, 0) + t(self.alpha) * xp.expm1(xp.minimum(x, 0))

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        bottom[0].diff = xp.where(x > 0, dy, dy * (y + dy.dtype.type(self.alpha)))
