"""Layer family: local response normalization, after src/caffe/layers/lrn_layer.cpp.

ACROSS_CHANNELS, with n = local_size and the window of channel c being the n
channels c - (n-1)/2 .. c + (n-1)/2 (zero outside)::

    scale_c  = k + alpha / n * sum_{c' in window(c)} x_c'^2
    top_c    = x_c * scale_c^-beta
    dx_c     = dtop_c * scale_c^-beta
               - (2 alpha beta / n) * x_c * sum_{c' in window(c)} dtop_c' * top_c' / scale_c'

Backward reuses the ``scale`` stored by forward (seed 002 walks through
Caffe's CrossChannelBackward doing exactly this).

WITHIN_CHANNEL: Caffe builds it from layers (square, AVE pooling over an
n x n window with pad (n-1)/2, power, product), so ``k`` plays no part and
the average always divides by n^2::

    scale = 1 + alpha / n^2 * sum_{n x n window} x^2,   top = x * scale^-beta
    dx    = dtop * scale^-beta - (2 alpha beta / n^2) * x * sum_{window} dtop * top / scale
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1  # caffe.LRNParameter.NormRegion


def _window_sum_channels(a: Array, size: int) -> Array:
    """sum over channels c - (size-1)/2 .. c + (size-1)/2 of ``a`` (N, C, ...), zero padded."""
    xp = get_array_module(a)
    pre = (size - 1) // 2
    c = a.shape[1]
    padded = xp.zeros((a.shape[0], c + size - 1) + a.shape[2:], dtype=a.dtype)
    padded[:, pre : pre + c] = a
    total = padded[:, 0:c].copy()
    for i in range(1, size):
        total += padded[:, i : i + c]
    return total


def _window_sum_plane(a: Array, size: int) -> Array:
    """sum over the size x size window centred on each (y, x) of ``a`` (N, C, H, W), zero padded."""
    xp = get_array_module(a)
    pre = (size - 1) // 2
    n, c, h, w = a.shape
    padded = xp.zeros((n, c, h + size - 1, w + size - 1), dtype=a.dtype)
    padded[:, :, pre : pre + h, pre : pre + w] = a
    rows = padded[:, :, 0:h].copy()
    for i in range(1, size):
        rows += padded[:, :, i : i + h]
    total = rows[..., 0:w].copy()
    for j in range(1, size):
        total += rows[..., j : j + w]
    return total


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
        if self.param.bottom[:1] == self.param.top[:1] and len(self.param.bottom):
            self.fail("cannot run in place: its backward reads the bottom data")
        self.param_shapes = []
        return [shape]

    def internals(self) -> dict[str, Array]:
        return {"scale": self._scale} if self._scale is not None else {}

    def _norm(self) -> float:
        """The divisor of alpha: n across channels, n^2 within a channel."""
        return float(self.local_size if self.region == ACROSS_CHANNELS else self.local_size**2)

    def _window_sum(self, a: Array) -> Array:
        if self.region == ACROSS_CHANNELS:
            return _window_sum_channels(a, self.local_size)
        return _window_sum_plane(a, self.local_size)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        offset = self.k if self.region == ACROSS_CHANNELS else 1.0
        scale = self._window_sum(x * x)
        scale *= self.alpha / self._norm()
        scale += offset
        self._scale = scale
        top[0].data = x * scale ** (-self.beta)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        assert self._scale is not None, "backward before forward"
        scale, x, y, dy = self._scale, bottom[0].data, top[0].data, top[0].diff
        ratio_sum = self._window_sum(dy * y / scale)
        factor = 2.0 * self.alpha * self.beta / self._norm()
        bottom[0].diff = dy * scale ** (-self.beta) - factor * x * ratio_sum
