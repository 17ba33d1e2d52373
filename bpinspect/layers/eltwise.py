"""Layer family: eltwise, after src/caffe/layers/eltwise_layer.cpp.

Two or more bottoms of one shape, combined element by element:

- SUM (the default): ``top = sum_i coeff_i * x_i`` (``coeff`` once per bottom,
  default 1); ``dx_i = coeff_i * dy``.
- PROD: ``top = prod_i x_i``; ``dx_i = dy * prod_{j != i} x_j``
  (``stable_prod_grad: true``, the default), or ``dy * top / x_i``
  (``stable_prod_grad: false``; undefined where ``x_i = 0``).
- MAX: ``top = max_i x_i``; ``dx_i = dy`` where bottom ``i`` won, else 0.
  ``internals()["argmax"]`` is the winner's index per element. Ties follow
  Caffe's loop exactly: between bottoms 0 and 1 the later (1) wins
  (``a > b ? 0 : 1``); from bottom 2 on, a bottom must be strictly greater to
  win, so a tie keeps the earlier winner.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.proto import caffe_pb2

PROD = caffe_pb2.EltwiseParameter.PROD
SUM = caffe_pb2.EltwiseParameter.SUM
MAX = caffe_pb2.EltwiseParameter.MAX


@register("Eltwise")
class Eltwise(Layer):
    min_num_bottoms = 2
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.eltwise_param
        self.operation = int(p.operation)
        self.operation_name = caffe_pb2.EltwiseParameter.EltwiseOp.Name(self.operation)
        self.coeff = [float(c) for c in p.coeff]
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self._coeffs: list[float] = []
        self._argmax: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shapes = [tuple(s) for s in bottom_shapes]
        if self.coeff and len(self.coeff) != len(shapes):
            self.fail(f"takes one coeff per bottom: {len(self.coeff)} coeff(s) for "
                      f"{len(shapes)} bottoms")
        if self.coeff and self.operation == PROD:  # Caffe accepts (and ignores) them for MAX
            self.fail(f"coeff is only for operation SUM, not {self.operation_name}")
        for i, s in enumerate(shapes[1:], start=1):
            if s != shapes[0]:
                self.fail(f"all bottoms must have one shape: bottom[0] is {shapes[0]}, "
                          f"bottom[{i}] is {s}")
        self._coeffs = self.coeff or [1.0] * len(shapes)
        self._argmax = None
        return [shapes[0]]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        xs = [b.data for b in bottom]
        if self.operation == PROD:
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y *= x
        elif self.operation == SUM:
            t = xs[0].dtype.type
            y = xs[0] * t(self._coeffs[0])
            for x, c in zip(xs[1:], self._coeffs[1:], strict=True):
                y += x * t(c)
        else:  # MAX, Caffe's loop order
            first = xs[0] > xs[1]
            y = xp.where(first, xs[0], xs[1])
            argmax = xp.where(first, 0, 1).astype(xp.int32)
            for k, x in enumerate(xs[2:], start=2):
                better = x > y
                y = xp.where(better, x, y)
                argmax[better] = k
            self._argmax = argmax
        top[0].data = y

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        grads: list[Array | None] = []
        for i, down in enumerate(propagate_down):
            if not down:
                grads.append(None)
            elif self.operation == PROD:
                if self.stable_prod_grad:
                    others = [b.data for j, b in enumerate(bottom) if j != i]
                    g = others[0].copy()
                    for x in others[1:]:
                        g *= x
                    grads.append(g * dy)
                else:
                    grads.append(top[0].data / bottom[i].data * dy)
            elif self.operation == SUM:
                c = self._coeffs[i]
                grads.append(dy.copy() if c == 1 else dy * dy.dtype.type(c))
            else:
                if self._argmax is None:
                    self.fail("backward before forward: no argmax yet")
                grads.append(xp.where(self._argmax == i, dy, 0).astype(dy.dtype))
        for b, g in zip(bottom, grads, strict=True):
            if g is not None:
                b.diff = g

    def internals(self) -> dict[str, Array]:
        return {} if self._argmax is None else {"argmax": self._argmax}
