"""Layer family: pooling, after src/caffe/layers/pooling_layer.cpp.

Output size (Caffe rounds up, then drops a window that would start in the
padding)::

    Ho = ceil((H + 2 pad - k) / stride) + 1,  minus 1 if pad > 0 and (Ho - 1) * stride >= H + pad

MAX: ``top = max over the window clipped to the image``; ``argmax`` keeps,
for each top cell, the flat index ``h * W + w`` of the winner in its bottom
plane (the first maximum in row-major window order, -1 when nothing in the
window beats -FLT_MAX), and backward routes each top diff there, summing
where windows overlap (seed 001: only the argmax receives gradient).

AVE: ``top = sum over the clipped window / pool_size``, where pool_size is
the window clipped to the *padded* input (so padding counts as zeros near
the top-left edge, but the overhang of a rounded-up last window does not);
backward spreads ``dtop / pool_size`` over the window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers import _cuda
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

MAX, AVE, STOCHASTIC = 0, 1, 2  # caffe.PoolingParameter.PoolMethod


def pooled_size(size: int, kernel: int, pad: int, stride: int) -> int:
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register("Pooling")
class Pooling(Layer):
    exact_num_bottoms = 1
    min_num_tops = 1
    max_num_tops = 1  # Caffe allows a second top (the mask); bpinspect shows it as an internal

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.pooling_param
        self.method = int(p.pool)
        self.global_pooling = bool(p.global_pooling)
        has = p.HasField
        if self.global_pooling:
            if has("kernel_size") or has("kernel_h") or has("kernel_w"):
                self.fail("global_pooling takes no kernel size")
            self.kh = self.kw = 0
        elif has("kernel_size"):
            if has("kernel_h") or has("kernel_w"):
                self.fail("give either kernel_size or kernel_h/kernel_w, not both")
            self.kh = self.kw = int(p.kernel_size)
        elif has("kernel_h") and has("kernel_w"):
            self.kh, self.kw = int(p.kernel_h), int(p.kernel_w)
        else:
            self.fail("pooling needs kernel_size, or both kernel_h and kernel_w")
        self.ph, self.pw = (int(p.pad_h), int(p.pad_w)) if has("pad_h") else (int(p.pad),) * 2
        self.sh, self.sw = (
            (int(p.stride_h), int(p.stride_w)) if has("stride_h") else (int(p.stride),) * 2
        )
        if self.method == STOCHASTIC:
            self.fail("STOCHASTIC pooling is not supported (MAX and AVE are)")
        if self.method not in (MAX, AVE):
            self.fail(f"unknown pooling method {self.method}")
        self._argmax: Array | None = None
        self._pool_size: Array | None = None
        self._bottom_shape: Shape = ()
        self._top_hw = (0, 0)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape}")
        n, c, h, w = shape
        if self.global_pooling:
            self.kh, self.kw = h, w
            self.ph = self.pw = 0
            self.sh = self.sw = 1
        if min(self.kh, self.kw, self.sh, self.sw) <= 0:
            self.fail("kernel and stride must be > 0")
        if self.ph >= self.kh or self.pw >= self.kw:
            self.fail(f"pad ({self.ph}, {self.pw}) must be smaller than the kernel")
        ho = pooled_size(h, self.kh, self.ph, self.sh)
        wo = pooled_size(w, self.kw, self.pw, self.sw)
        if ho <= 0 or wo <= 0:
            self.fail(f"the {self.kh}x{self.kw} window does not fit the input {h}x{w}")
        self._bottom_shape = shape
        self._top_hw = (ho, wo)
        self.param_shapes = []
        return [(n, c, ho, wo)]

    def internals(self) -> dict[str, Array]:
        return {"argmax": self._argmax} if self.method == MAX and self._argmax is not None else {}

    # -- geometry ------------------------------------------------------------
    def _padded(self, x: Array, fill: float) -> Array:
        """x with `pad` before and enough after that every window lies inside."""
        xp = get_array_module(x)
        n, c, h, w = x.shape
        ho, wo = self._top_hw
        after_h = max((ho - 1) * self.sh + self.kh - h - self.ph, 0)
        after_w = max((wo - 1) * self.sw + self.kw - w - self.pw, 0)
        out = xp.full((n, c, self.ph + h + after_h, self.pw + w + after_w), fill, dtype=x.dtype)
        out[:, :, self.ph : self.ph + h, self.pw : self.pw + w] = x
        return out

    def _window(self, padded: Array, i: int, j: int) -> Array:
        """The (N, C, Ho, Wo) slab of every window's element at offset (i, j)."""
        ho, wo = self._top_hw
        return padded[:, :, i : i + self.sh * (ho - 1) + 1 : self.sh,
                      j : j + self.sw * (wo - 1) + 1 : self.sw]

    def _starts(self, xp: Any) -> tuple[Array, Array]:
        """Top-left bottom coordinate of each window (before clipping)."""
        ho, wo = self._top_hw
        return (xp.arange(ho) * self.sh - self.ph, xp.arange(wo) * self.sw - self.pw)

    # -- forward / backward ------------------------------------------------------
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        if self.method == MAX:
            top[0].data = self._forward_max(x)
        else:
            top[0].data = self._forward_ave(x)

    @property
    def _geometry(self) -> tuple[int, int, int, int, int, int]:
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    def _forward_max(self, x: Array) -> Array:
        xp = get_array_module(x)
        if xp is not np:
            top, self._argmax = _cuda.max_pool_forward(xp, x, self._top_hw, self._geometry)
            return top
        n, c, h, w = x.shape
        ho, wo = self._top_hw
        padded = self._padded(x, -np.inf)
        best = xp.full((n, c, ho, wo), np.finfo(x.dtype).min, dtype=x.dtype)
        offset = xp.full((n, c, ho, wo), -1, dtype=np.int64)  # window offset i * kw + j
        for i in range(self.kh):
            for j in range(self.kw):
                candidate = self._window(padded, i, j)
                wins = candidate > best  # strict: the first maximum in scan order stays
                best = xp.where(wins, candidate, best)
                offset = xp.where(wins, i * self.kw + j, offset)
        y0, x0 = self._starts(xp)
        rows = y0[:, None] + offset // self.kw
        cols = x0[None, :] + offset % self.kw
        self._argmax = xp.where(offset >= 0, rows * w + cols, -1)
        return best

    def _forward_ave(self, x: Array) -> Array:
        xp = get_array_module(x)
        if xp is not np:
            return _cuda.ave_pool_forward(xp, x, self._top_hw, self._geometry)
        n, c, h, w = x.shape
        ho, wo = self._top_hw
        padded = self._padded(x, 0.0)
        total = xp.zeros((n, c, ho, wo), dtype=x.dtype)
        for i in range(self.kh):
            for j in range(self.kw):
                total += self._window(padded, i, j)
        y0, x0 = self._starts(xp)
        size_h = xp.minimum(y0 + self.kh, h + self.ph) - y0
        size_w = xp.minimum(x0 + self.kw, w + self.pw) - x0
        self._pool_size = (size_h[:, None] * size_w[None, :]).astype(x.dtype)
        return total / self._pool_size

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dtop = top[0].diff
        n, c, h, w = bottom[0].shape
        xp = get_array_module(dtop)
        if xp is not np:
            if self.method == MAX:
                assert self._argmax is not None, "backward before forward"
                bottom[0].diff = _cuda.max_pool_backward(xp, dtop, self._argmax, (n, c, h, w),
                                                         self._geometry)
            else:
                bottom[0].diff = _cuda.ave_pool_backward(xp, dtop, (n, c, h, w), self._geometry)
            return
        if self.method == MAX:
            assert self._argmax is not None, "backward before forward"
            # One bincount over all planes: plane p's cell k lands at p * H * W + k.
            planes = xp.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
            valid = self._argmax >= 0
            index = xp.where(valid, planes + self._argmax, 0).ravel()
            weights = xp.where(valid, dtop, 0).ravel()
            summed = xp.bincount(index, weights=weights, minlength=n * c * h * w)
            bottom[0].diff = summed.astype(dtop.dtype).reshape(n, c, h, w)
        else:
            assert self._pool_size is not None, "backward before forward"
            share = dtop / self._pool_size
            padded = xp.zeros(self._padded_shape(n, c, h, w), dtype=dtop.dtype)
            for i in range(self.kh):
                for j in range(self.kw):
                    self._window(padded, i, j)[...] += share
            bottom[0].diff = xp.ascontiguousarray(
                padded[:, :, self.ph : self.ph + h, self.pw : self.pw + w]
            )

    def _padded_shape(self, n: int, c: int, h: int, w: int) -> tuple[int, int, int, int]:
        ho, wo = self._top_hw
        return (
            n, c,
            self.ph + h + max((ho - 1) * self.sh + self.kh - h - self.ph, 0),
            self.pw + w + max((wo - 1) * self.sw + self.kw - w - self.pw, 0),
        )
