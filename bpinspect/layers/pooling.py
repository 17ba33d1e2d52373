"""Layer family: pooling, after src/caffe/layers/pooling_layer.cpp.

Output size (round_mode CEIL, Caffe's default; FLOOR rounds down instead)::

    Ho = ceil((H + 2 pad - k) / stride) + 1,  minus 1 if (Ho - 1) stride >= H + pad

where the "minus 1" applies only when the layer has padding (pad_h or pad_w,
on either axis). Window y covers rows ``y stride - pad`` to ``+ k`` (and the
same for columns). So a last window may hang over the bottom/right edge but
never starts in the padding; without padding it may start past the image
(k < stride) and then is empty: MAX gives -FLT_MAX, AVE divides 0 by a
non-positive size, as Caffe does.

MAX: ``top = max`` over the window clipped to the image. ``argmax`` keeps,
for each top cell, the flat index ``h * W + w`` of the winner in its bottom
plane: the first strict maximum in row-major window order, starting from
-FLT_MAX, so NaN never wins and a window with nothing above -FLT_MAX keeps
-1 (and top -FLT_MAX). Backward routes each top diff to its argmax, summing
where overlapping windows share a winner (seed 001: only the maximum of a
window receives gradient)::

    dbottom[n, c].flat[argmax[n, c, y, x]] += dtop[n, c, y, x]

AVE: ``top = sum over the window clipped to the image / pool_size``, where
pool_size is the window clipped to the *padded* input (padding counts as
zeros, the overhang of a rounded-up last window does not); backward spreads
``dtop / pool_size`` evenly over the same clipped window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob, overwritable
from bpinspect.layers import _cuda
from bpinspect.layers._im2col import Geometry, kernel_offsets
from bpinspect.layers._max_pool_cpu import max_pool
from bpinspect.layers._parallel import parallel_parts
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

MAX, AVE, STOCHASTIC = 0, 1, 2  # caffe.PoolingParameter.PoolMethod
CEIL, FLOOR = 0, 1  # caffe.PoolingParameter.RoundMode
BINCOUNT_BINS = 1 << 18  # bins per bincount in MAX backward: a cache-sized block of planes


def pooled_size(size: int, kernel: int, pad: int, stride: int, ceil: bool = True,
                clip: bool | None = None) -> int:
    """Caffe's pooled output size along one axis (see the module docstring).

    ``clip``: drop a last window that starts at or beyond ``size + pad``. Caffe
    does so on both axes as soon as either has padding; default: ``pad > 0``.
    """
    rounding = math.ceil if ceil else math.floor
    out = int(rounding((size + 2 * pad - kernel) / stride)) + 1
    if (pad > 0 if clip is None else clip) and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register("Pooling")
class Pooling(Layer):
    exact_num_bottoms = 1
    min_num_tops = 1
    max_num_tops = 2  # MAX may have a second top: the argmax mask, as Caffe's top_mask

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.pooling_param
        has = p.HasField
        self.method = int(p.pool)
        self.global_pooling = bool(p.global_pooling)
        self.ceil = int(p.round_mode) == CEIL
        if self.method == STOCHASTIC:
            self.fail("STOCHASTIC pooling is not supported (MAX and AVE are)")
        if self.method not in (MAX, AVE):
            self.fail(f"unknown pooling method {self.method}")
        self.mask_top = len(param.top) == 2
        if self.mask_top and self.method != MAX:
            self.fail("only MAX pooling has a second top (its argmax mask)")
        self.kh = self.kw = 0  # global pooling: set from the bottom in setup
        if self.global_pooling:
            if has("kernel_size") or has("kernel_h") or has("kernel_w"):
                self.fail("global_pooling takes no kernel size")
        elif has("kernel_size") and not (has("kernel_h") or has("kernel_w")):
            self.kh = self.kw = int(p.kernel_size)
        elif has("kernel_h") and has("kernel_w") and not has("kernel_size"):
            self.kh, self.kw = int(p.kernel_h), int(p.kernel_w)
        else:
            self.fail("give kernel_size, or both kernel_h and kernel_w (not both forms)")
        self.ph, self.pw = self._pair(p, "pad")
        self.sh, self.sw = self._pair(p, "stride")
        if self.global_pooling and (self.ph, self.pw, self.sh, self.sw) != (0, 0, 1, 1):
            self.fail("global_pooling takes only pad 0 and stride 1")
        self._argmax: Array | None = None
        self._pool_size: Array | None = None

    def _pair(self, p: Any, name: str) -> tuple[int, int]:
        """``name``, or both ``name_h`` and ``name_w`` (Caffe rejects a mix)."""
        has_h, has_w = p.HasField(f"{name}_h"), p.HasField(f"{name}_w")
        if not (has_h or has_w):
            value = int(getattr(p, name))
            return value, value
        if p.HasField(name) or not (has_h and has_w):
            self.fail(f"give {name}, or both {name}_h and {name}_w")
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape}")
        n, c, h, w = shape
        if self.global_pooling:
            self.kh, self.kw = h, w
        if min(self.kh, self.kw) <= 0 or min(self.sh, self.sw) <= 0:
            self.fail(f"kernel and stride must be > 0, got kernel {self.kh}x{self.kw}, "
                      f"stride {self.sh}x{self.sw}")
        if self.ph >= self.kh or self.pw >= self.kw:
            self.fail(f"pad {self.ph}x{self.pw} must be smaller than the kernel "
                      f"{self.kh}x{self.kw}")
        clip = bool(self.ph or self.pw)
        ho = pooled_size(h, self.kh, self.ph, self.sh, self.ceil, clip)
        wo = pooled_size(w, self.kw, self.pw, self.sw, self.ceil, clip)
        if ho <= 0 or wo <= 0:
            self.fail(f"the {self.kh}x{self.kw} window does not fit the input {h}x{w}")
        self.param_shapes = []
        return [(n, c, ho, wo)] * (2 if self.mask_top else 1)

    def internals(self) -> dict[str, Array]:
        if self.method == MAX:
            return {} if self._argmax is None else {"argmax": self._argmax}
        return {} if self._pool_size is None else {"pool_size": self._pool_size}

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    def _offsets(self, bottom_shape: Shape, top_shape: Shape) -> Iterator[
            tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
        """For each window offset (i, j), row-major: the top cells whose (i, j)
        element lies in the image, and the bottom cells they read."""
        h, w = bottom_shape[2:]
        ho, wo = top_shape[2:]
        return kernel_offsets(self.geometry, h, w, ho, wo)

    def _window_starts(self, xp: Any, top_shape: Shape) -> tuple[Array, Array]:
        """Top-left bottom coordinate of each window, before clipping."""
        ho, wo = top_shape[2:]
        return xp.arange(ho) * self.sh - self.ph, xp.arange(wo) * self.sw - self.pw

    def _cuda_geometry(self) -> tuple[int, int, int, int, int, int]:
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    # -- forward --------------------------------------------------------------------
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        if self.method == MAX:
            top[0].data = self._forward_max(x, top[0])
            if self.mask_top:  # Caffe writes the flat index h * W + w as a float, -1 for none
                top[1].data = self._argmax.astype(x.dtype)
        else:
            top[0].data = self._forward_ave(x, top[0].shape)

    def _forward_max(self, x: Array, top: Blob) -> Array:
        top_shape = top.shape
        xp = get_array_module(x)
        if xp is not np:  # one CUDA thread per top cell instead of kh * kw launches
            best, self._argmax = _cuda.max_pool_forward(xp, x, (top_shape[2], top_shape[3]),
                                                        self._cuda_geometry())
            return best
        best = top.array_to_overwrite("data", top_shape, x.dtype)
        # int64, as the CUDA path's mask; the last pass's array unless something holds it
        argmax = overwritable(self, "_argmax", top_shape, np.int64)
        max_pool(x, self.geometry, best, argmax)
        self._argmax = argmax
        return best

    def _forward_ave(self, x: Array, top_shape: Shape) -> Array:
        xp = get_array_module(x)
        n, c, h, w = x.shape
        h0, w0 = self._window_starts(xp, top_shape)
        size_h = xp.minimum(h0 + self.kh, h + self.ph) - h0
        size_w = xp.minimum(w0 + self.kw, w + self.pw) - w0
        self._pool_size = (size_h[:, None] * size_w[None, :]).astype(x.dtype)
        if xp is not np:  # one CUDA thread per top cell; same divisor
            return _cuda.ave_pool_forward(xp, x, (top_shape[2], top_shape[3]),
                                          self._cuda_geometry())
        total = xp.zeros(top_shape, dtype=x.dtype)
        for _, _, (ys, xs), (rows, cols) in self._offsets(x.shape, top_shape):
            total[:, :, ys, xs] += x[:, :, rows, cols]
        total /= self._pool_size
        return total

    # -- backward -------------------------------------------------------------------
    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dtop = top[0].diff
        if self.method == MAX:
            bottom[0].diff = self._backward_max(dtop, bottom[0])
        else:
            bottom[0].diff = self._backward_ave(dtop, bottom[0].shape)

    def _backward_max(self, dtop: Array, bottom: Blob) -> Array:
        bottom_shape = bottom.shape
        argmax = self._argmax
        if argmax is None:
            raise AssertionError("Pooling backward before forward: no argmax yet")
        xp = get_array_module(dtop)
        n, c, h, w = bottom_shape
        if xp is not np:  # one CUDA thread per bottom cell, reading the same argmax
            return _cuda.max_pool_backward(xp, dtop, argmax, bottom_shape, self._cuda_geometry())
        # dbottom[p].flat[argmax[p]] += dtop[p] for each plane p, as bincounts over
        # blocks of planes (plane q of a block is bins q * H * W ..): scatter-free,
        # and each block's bins stay in cache.
        planes, area = n * c, h * w
        index = argmax.reshape(planes, -1)
        weights = dtop.reshape(planes, -1)
        lost = index < 0  # windows nothing won route no gradient
        if bool(lost.any()):
            index = xp.where(lost, 0, index)
            weights = xp.where(lost, 0, weights)
        full = bottom.array_to_overwrite("diff", bottom_shape, dtop.dtype)
        dx = full.reshape(planes, area)
        block = max(1, BINCOUNT_BINS // area)
        shift = (xp.arange(block, dtype=np.int64) * area)[:, None]

        def blocks(b0: int, b1: int) -> None:  # blocks b0..b1 of planes: disjoint rows of dx
            for p0 in range(b0 * block, min(b1 * block, planes), block):
                p1 = min(p0 + block, planes)
                bins = (index[p0:p1] + shift[: p1 - p0]).ravel()
                dx[p0:p1] = xp.bincount(bins, weights=weights[p0:p1].ravel(),
                                        minlength=(p1 - p0) * area).reshape(p1 - p0, area)

        parallel_parts(blocks, -(-planes // block), dx.size)
        return full

    def _backward_ave(self, dtop: Array, bottom_shape: Shape) -> Array:
        if self._pool_size is None:
            raise AssertionError("Pooling backward before forward: no pool sizes yet")
        xp = get_array_module(dtop)
        if xp is not np:  # one CUDA thread per bottom cell; same divisor
            return _cuda.ave_pool_backward(xp, dtop, bottom_shape, self._cuda_geometry())
        share = dtop / self._pool_size
        dx = xp.zeros(bottom_shape, dtype=dtop.dtype)
        for _, _, (ys, xs), (rows, cols) in self._offsets(bottom_shape, dtop.shape):
            dx[:, :, rows, cols] += share[:, :, ys, xs]
        return dx
