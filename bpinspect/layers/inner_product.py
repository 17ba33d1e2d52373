"""Layer family: inner product (fully connected), after src/caffe/layers/inner_product_layer.cpp.

The bottom is flattened from ``axis`` (default 1) into ``X`` of shape (M, K);
the weight ``W`` is (N, K), or (K, N) with ``transpose: true``; the bias
``b`` is (N,). With ``W`` stored (N, K)::

    top = X W^T + b                       (shape: bottom.shape[:axis] + (N,))
    dW += dY^T X        db += sum_rows(dY)        dX = dY W

and with ``transpose`` (``W`` stored (K, N)): ``top = X W + b``,
``dW += X^T dY``, ``dX = dY W^T``. Param diffs accumulate, as in Caffe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers._gemm import add_product, matmul
from bpinspect.layers._im2col import scratch
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count


@register("InnerProduct")
class InnerProduct(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.inner_product_param
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.axis = int(p.axis)
        self.transpose = bool(p.transpose)
        self._weight_filler = p.weight_filler if p.HasField("weight_filler") else None
        self._bias_filler = p.bias_filler if p.HasField("bias_filler") else None
        self._m = self._k = 0
        self._top_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if self.num_output <= 0:
            self.fail("inner_product_param.num_output must be given (> 0)")
        axis = canonical_axis(self, self.axis, len(shape))
        self._m, self._k = count(shape, 0, axis), count(shape, axis)
        n, k = self.num_output, self._k
        self.param_shapes = [(k, n) if self.transpose else (n, k)]
        if self.bias_term:
            self.param_shapes.append((n,))
        self._top_shape = shape[:axis] + (n,)
        return [self._top_shape]

    def param_fillers(self) -> list[Any]:
        fillers = [self._weight_filler]
        if self.bias_term:
            fillers.append(self._bias_filler)
        return fillers

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data.reshape(self._m, self._k)
        w = self.blobs[0].data
        xp = get_array_module(x)
        y = xp.empty((self._m, self.num_output), dtype=xp.result_type(x, w))
        if xp is np and self._m <= self.num_output:
            # Fewer rows than outputs (a batch through fc6): the BLAS runs the product
            # as y^T = W x^T about twice as fast as x W^T (M = 16: fc6 at batch 16 in
            # 14 ms, not 26), the same dot products; y is then its transpose.
            y_t = scratch("ip.y_t", (self.num_output, self._m), y.dtype, np)
            matmul(w.T if self.transpose else w, x.T, y_t)
            np.copyto(y, y_t.T)
        else:
            matmul(x, w if self.transpose else w.T, y)
        if self.bias_term:
            y += self.blobs[1].data
        top[0].data = y.reshape(self._top_shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        xp = get_array_module(top[0].diff)
        dy = top[0].diff.reshape(self._m, self.num_output)
        if self.param_propagate_down[0]:
            x = bottom[0].data.reshape(self._m, self._k)
            diff, zero = self.blobs[0].diff_to_accumulate()
            if self.transpose:
                add_product(diff, x.T, dy, onto_zero=zero)
            else:
                add_product(diff, dy.T, x, onto_zero=zero)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += xp.sum(dy, axis=0)
        if propagate_down[0]:
            w = self.blobs[0].data
            dx = xp.empty((self._m, self._k), dtype=xp.result_type(dy, w))
            matmul(dy, w.T if self.transpose else w, dx)
            bottom[0].diff = dx.reshape(bottom[0].shape)
