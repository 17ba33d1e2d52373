"""Layer family: local response normalization, after src/caffe/layers/lrn_layer.cpp.

ACROSS_CHANNELS, with n = local_size and the window of channel c being the
n channels c - (n-1)/2 .. c + (n-1)/2 (zero outside)::

    scale_c = k + alpha / n * sum_{c' in window(c)} x_c'^2
    top_c   = x_c * scale_c^-beta
    dx_c    = dtop_c * scale_c^-beta
              - (2 alpha beta / n) * x_c * sum_{c' in window(c)} dtop_c' * top_c' / scale_c'

Backward reuses the ``scale`` that forward stored, as Caffe's
CrossChannelBackward does (seed 002 annotates it): the second term sums
``dtop * top / scale = dtop * x * scale^(-beta-1)`` over the same window.

WITHIN_CHANNEL: Caffe composes it from layers (square, AVE pooling over an
n x n window with pad (n-1)/2, power with shift 1 and scale alpha, product),
so ``k`` plays no part and the average always divides by n^2 (every window
clipped to the padded input is full)::

    scale = 1 + alpha * (sum_{n x n window} x^2) / n^2,   top = x * scale^-beta
    dx    = dtop * scale^-beta - (2 alpha beta / n^2) * x * sum_{window} dtop * top / scale

The window sums loop over the n window offsets (or n + n, separably), never
over channels or pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers._parallel import parallel_parts
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1  # caffe.LRNParameter.NormRegion
# Elements per block of images: norm1 of CaffeNet at batch 64, whole halves of the
# batch per thread: forward 20 ms, backward 25; in blocks of this size: 10 and 12.5.
BLOCK_ELEMENTS = 1 << 18


def _window_sum(a: Array, axis: int, size: int, out: Array | None = None) -> Array:
    """sum of ``a`` over the ``size`` positions centred on each index of ``axis``
    (zero outside); a new array, or ``out``."""
    xp = get_array_module(a)
    pre = (size - 1) // 2
    if out is None:
        total = a.copy()
    else:
        total = out
        xp.copyto(total, a)
    length = a.shape[axis]

    def part(start: int, stop: int) -> tuple[slice, ...]:
        return (slice(None),) * axis + (slice(start, stop),)

    for d in range(1, pre + 1):
        if d >= length:
            break
        total[part(d, length)] += a[part(0, length - d)]  # the neighbour d before
        total[part(0, length - d)] += a[part(d, length)]  # the neighbour d after
    return total


def _pow_negative(scale: Array, beta: float, out: Array | None = None) -> Array:
    """scale^-beta (into ``out`` when given); beta = 0.75 (every published LRN net)
    through square roots, three times faster than pow and within an ulp of it."""
    xp = get_array_module(scale)
    if beta == 0.75:
        root = xp.sqrt(scale, out=out)
        root *= xp.sqrt(root)  # scale^0.5 * scale^0.25
        return xp.reciprocal(root, out=root)
    return xp.power(scale, -beta, out=out)


@register("LRN")
class LRN(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.lrn_param
        self.local_size = int(p.local_size)
        self.alpha = float(p.alpha)
        self.beta = float(p.beta)
        self.k = float(p.k)
        self.region = int(p.norm_region)
        if self.local_size % 2 != 1:
            self.fail(f"local_size must be odd (Caffe's rule), got {self.local_size}")
        if self.region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            self.fail(f"unknown norm_region {self.region}")
        self._scale: Array | None = None

    @property
    def region_name(self) -> str:
        return "ACROSS_CHANNELS" if self.region == ACROSS_CHANNELS else "WITHIN_CHANNEL"

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape}")
        if set(self.param.bottom) & set(self.param.top):
            self.fail("cannot run in place: its backward reads the bottom data")
        self.param_shapes = []
        return [shape]

    def internals(self) -> dict[str, Array]:
        return {} if self._scale is None else {"scale": self._scale}

    def _window_sum(self, a: Array, out: Array | None = None) -> Array:
        if self.region == ACROSS_CHANNELS:
            return _window_sum(a, 1, self.local_size, out)
        return _window_sum(_window_sum(a, 2, self.local_size), 3, self.local_size, out)

    def _alpha_over_size(self) -> float:
        """alpha / n across channels; alpha / n^2 within (the AVE pooling's divisor)."""
        size = self.local_size if self.region == ACROSS_CHANNELS else self.local_size**2
        return self.alpha / size

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        scale = xp.empty_like(x)
        out = top[0].array_to_overwrite("data", x.shape, x.dtype)
        # Every window lies in one image: images n0..n1 are computed alone, at once on
        # the CPU's cores, each element by the same operations in the same order.
        self._in_images(lambda n0, n1: self._forward_images(x[n0:n1], scale[n0:n1],
                                                            out[n0:n1]), x)
        self._scale = scale
        top[0].data = out

    def _forward_images(self, x: Array, scale: Array, out: Array) -> None:
        self._window_sum(x * x, out=scale)
        if self.region == ACROSS_CHANNELS:
            scale *= self._alpha_over_size()
            scale += self.k
        else:  # power layer on the average: 1 + alpha * (sum / n^2)
            scale /= self.local_size**2
            scale *= self.alpha
            scale += 1.0
        _pow_negative(scale, self.beta, out=out)
        out *= x

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        if self._scale is None:
            raise AssertionError("LRN backward before forward: no scale cache yet")
        scale, x, y, dy = self._scale, bottom[0].data, top[0].data, top[0].diff
        dx = bottom[0].array_to_overwrite("diff", x.shape, x.dtype)
        self._in_images(lambda n0, n1: self._backward_images(
            scale[n0:n1], x[n0:n1], y[n0:n1], dy[n0:n1], dx[n0:n1]), x)
        bottom[0].diff = dx

    def _backward_images(self, scale: Array, x: Array, y: Array, dy: Array,
                         dx: Array) -> None:
        ratio = dy * y
        ratio /= scale
        accum = self._window_sum(ratio)
        accum *= x
        accum *= 2.0 * self.beta * self._alpha_over_size()
        _pow_negative(scale, self.beta, out=dx)
        dx *= dy
        dx -= accum

    @staticmethod
    def _in_images(run: Callable[[int, int], None], x: Array) -> None:
        """``run(n0, n1)`` over blocks of images: on the CPU's cores, a few images at a
        time, so that a block's temporaries stay in cache."""
        if get_array_module(x) is not np:
            run(0, x.shape[0])
            return
        per_block = max(1, BLOCK_ELEMENTS // max(1, x[0].size))

        def blocks(n0: int, n1: int) -> None:
            for start in range(n0, n1, per_block):
                run(start, min(start + per_block, n1))

        parallel_parts(blocks, x.shape[0], x.size)
