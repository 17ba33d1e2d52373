"""Layer family: convolution, after src/caffe/layers/{base_conv,conv}_layer.cpp.

For each group g, with ``col = im2col(bottom)`` (C/group * kh * kw rows)::

    top_g   = W_g @ col_g + b                    W: (num_output, C/group, kh, kw)
    dW_g   += dtop_g @ col_g^T        db += sum over n, y, x of dtop
    dcol_g  = W_g^T @ dtop_g          dbottom = col2im(dcol)

which is the derivation in seed 001 (a strided convolution's gradient is the
full correlation of the upsampled top diff with the flipped kernel; col2im
performs exactly that scatter). Param diffs accumulate, as in Caffe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers import _cuda
from bpinspect.layers._im2col import Geometry, col2im, im2col
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register


def _pair(layer: Layer, values: Any, h: int, w: int, has_hw: bool, name: str,
          default: int) -> tuple[int, int]:
    """Caffe's spatial field rule: ``name_h``/``name_w``, or 0, 1 or 2 repeated values."""
    if has_hw:
        if len(values):
            layer.fail(f"give either {name} or {name}_h/{name}_w, not both")
        return h, w
    values = list(values)
    if not values:
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    layer.fail(f"{name} has {len(values)} values; 2-D convolution takes 1 or 2")
    raise AssertionError  # unreachable: fail raises


@register("Convolution")
class Convolution(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.convolution_param
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.group = int(p.group)
        self.axis = int(p.axis)
        has = p.HasField
        kh, kw = _pair(self, p.kernel_size, p.kernel_h, p.kernel_w,
                       has("kernel_h") or has("kernel_w"), "kernel_size", 0)
        sh, sw = _pair(self, p.stride, p.stride_h, p.stride_w,
                       has("stride_h") or has("stride_w"), "stride", 1)
        ph, pw = _pair(self, p.pad, p.pad_h, p.pad_w, has("pad_h") or has("pad_w"), "pad", 0)
        dh, dw = _pair(self, p.dilation, 1, 1, False, "dilation", 1)
        self.geometry = Geometry(kh, kw, sh, sw, ph, pw, dh, dw)
        self._weight_filler = p.weight_filler if has("weight_filler") else None
        self._bias_filler = p.bias_filler if has("bias_filler") else None
        self._bottom_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        g = self.geometry
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape}")
        if self.axis not in (1, -3):
            self.fail(f"axis {self.axis} is not supported (only 1, the channel axis)")
        if min(g.kh, g.kw) <= 0:
            self.fail("kernel_size (or kernel_h and kernel_w) must be given and > 0")
        if min(g.sh, g.sw, g.dh, g.dw) <= 0 or min(g.ph, g.pw) < 0:
            self.fail("stride and dilation must be > 0 and pad >= 0")
        if self.num_output <= 0:
            self.fail("convolution_param.num_output must be given (> 0)")
        n, c, h, w = shape
        if self.group <= 0 or c % self.group or self.num_output % self.group:
            self.fail(
                f"group {self.group} must divide both the input channels ({c}) "
                f"and num_output ({self.num_output})"
            )
        ho, wo = g.out_size(h, w)
        if ho <= 0 or wo <= 0:
            self.fail(f"the kernel does not fit the padded input {h}x{w}")
        self._bottom_shape = shape
        self.param_shapes = [(self.num_output, c // self.group, g.kh, g.kw)]
        if self.bias_term:
            self.param_shapes.append((self.num_output,))
        return [(n, self.num_output, ho, wo)]

    def param_fillers(self) -> list[Any]:
        return [self._weight_filler, self._bias_filler][: len(self.param_shapes)]

    def _groups(self, rows: int, cols: int) -> list[tuple[slice, slice]]:
        """Row slices of (weight, col) for each group."""
        m, k = rows // self.group, cols // self.group
        return [(slice(i * m, (i + 1) * m), slice(i * k, (i + 1) * k)) for i in range(self.group)]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        n, _, ho, wo = top[0].shape
        col = im2col(x, self.geometry)
        weight = self.blobs[0].data.reshape(self.num_output, -1)
        out = xp.empty((self.num_output, col.shape[1]), dtype=x.dtype)
        for rows, cols in self._groups(self.num_output, col.shape[0]):
            xp.matmul(weight[rows], col[cols], out=out[rows])
        if self.bias_term:
            out += self.blobs[1].data[:, None]
        top[0].data = xp.ascontiguousarray(
            out.reshape(self.num_output, n, ho, wo).transpose(1, 0, 2, 3)
        )

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        dtop = xp.ascontiguousarray(top[0].diff.transpose(1, 0, 2, 3)).reshape(
            self.num_output, -1
        )
        weight_blob = self.blobs[0]
        weight = weight_blob.data.reshape(self.num_output, -1)
        want_weight = self.param_propagate_down[0] if self.param_propagate_down else True
        if self.bias_term and (self.param_propagate_down[1] if self.param_propagate_down
                               else True):
            self.blobs[1].diff += dtop.sum(axis=1)
        if not (want_weight or propagate_down[0]):
            return
        col = im2col(x, self.geometry)
        groups = self._groups(self.num_output, col.shape[0])
        if want_weight:
            dweight = weight_blob.diff.reshape(self.num_output, -1)
            for rows, cols in groups:
                dweight[rows] += dtop[rows] @ col[cols].T
        if propagate_down[0]:
            dcol = xp.empty_like(col)
            for rows, cols in groups:
                xp.matmul(weight[rows].T, dtop[rows], out=dcol[cols])
            if xp is np:
                bottom[0].diff = xp.ascontiguousarray(col2im(dcol, x.shape, self.geometry))
            else:  # one thread per input pixel instead of kh * kw strided adds
                out_hw = self.geometry.out_size(*x.shape[2:])
                bottom[0].diff = _cuda.col2im(xp, dcol, x.shape, out_hw, tuple(self.geometry))
