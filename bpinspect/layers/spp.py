"""Layer family: SPP, spatial pyramid pooling, after src/caffe/layers/spp_layer.cpp.

For levels ``l = 0 .. pyramid_height - 1`` the (N, C, H, W) bottom is pooled
(MAX or AVE, ``spp_param.pool``) into about ``2^l x 2^l`` bins, with Caffe's
window per level (along H; W alike)::

    bins = 2^l,  kernel = ceil(H / bins),  stride = kernel,
    pad = (kernel * bins - H + 1) // 2

and the Pooling layer's own output size and clipping (pooling.py). Each
level's (N, C, h_l, w_l) output is flattened to (N, C * h_l * w_l) and the
levels are concatenated along axis 1; backward cuts the top diff back into the
levels and sums their pooling backwards into the bottom diff. With
``pyramid_height: 1`` the top is the single level's 4-axis output, unflattened,
as Caffe's. A level whose pad reaches its kernel (H too small for 2^l bins) is
an error, as in Caffe. ``internals()``: each level's pooling internals, named
``level<l>.argmax`` (MAX) or ``level<l>.pool_size`` (AVE).
"""

from __future__ import annotations

import math
from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.errors import BpinspectError
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.pooling import Pooling
from bpinspect.layers.registry import register
from bpinspect.proto import caffe_pb2

MAX, AVE, STOCHASTIC = 0, 1, 2  # caffe.SPPParameter.PoolMethod


def level_window(level: int, size: int) -> tuple[int, int]:
    """(kernel = stride, pad) along one axis of size ``size`` for pyramid ``level``."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    pad = (kernel * bins - size + 1) // 2
    return kernel, pad


@register("SPP")
class SPP(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.spp_param
        self.pyramid_height = int(p.pyramid_height)
        self.pool = int(p.pool)
        if self.pool == STOCHASTIC:
            self.fail("STOCHASTIC pooling is not supported (MAX and AVE are)")
        if self.pool not in (MAX, AVE):
            self.fail(f"unknown pooling method {self.pool}")
        self._levels: list[Pooling] = []
        self._level_tops: list[Blob] = []

    def _level_layer(self, level: int, h: int, w: int) -> Pooling:
        kh, ph = level_window(level, h)
        kw, pw = level_window(level, w)
        lp = caffe_pb2.LayerParameter(name=f"{self.name}/level{level}", type="Pooling")
        pp = lp.pooling_param
        pp.pool = self.pool
        pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w = kh, kw, kh, kw
        pp.pad_h, pp.pad_w = ph, pw
        return Pooling(lp, self.phase)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape}")
        if self.pyramid_height < 1:
            self.fail(f"pyramid_height must be at least 1, got {self.pyramid_height}")
        n, c, h, w = shape
        if h <= 0 or w <= 0:
            self.fail(f"input dimensions cannot be zero, got {h}x{w}")
        self._levels, self._level_tops = [], []
        widths = []
        for level in range(self.pyramid_height):
            layer = self._level_layer(level, h, w)
            try:
                (out,) = layer.setup([shape])
            except BpinspectError as e:
                self.fail(f"pyramid level {level} ({2 ** level} bins) does not fit the "
                          f"{h}x{w} input: {e}")
            self._levels.append(layer)
            self._level_tops.append(Blob(f"{self.name}/level{level}", out))
            widths.append(out[1] * out[2] * out[3])
        if self.pyramid_height == 1:
            return [self._level_tops[0].shape]
        return [(n, sum(widths))]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        n = bottom[0].shape[0]
        flat = []
        for layer, out in zip(self._levels, self._level_tops, strict=True):
            layer.forward(bottom, [out])
            flat.append(out.data.reshape(n, -1))
        top[0].data = flat[0].reshape(self._level_tops[0].shape) if len(flat) == 1 else \
            xp.concatenate(flat, axis=1)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(top[0].diff.shape[0], -1)
        total = None
        start = 0
        for layer, out in zip(self._levels, self._level_tops, strict=True):
            width = out.count // out.shape[0]
            out.diff = dy[:, start : start + width].reshape(out.shape)
            start += width
            layer.backward([out], [True], bottom)
            total = bottom[0].diff if total is None else total + bottom[0].diff
        bottom[0].diff = total

    def internals(self) -> dict[str, Array]:
        found = {}
        for level, layer in enumerate(self._levels):
            for name, value in layer.internals().items():
                found[f"level{level}.{name}"] = value
        return found
