"""Layer family: Im2col, a convolution's patch matrix as a layer, after
src/caffe/layers/im2col_layer.cpp.

The (N, C, H, W) bottom becomes (N, C * kh * kw, Ho, Wo): for each image, Caffe's
im2col matrix (rows channel-major, then kernel row, then kernel column; see
``_im2col``) with its columns laid out as the (Ho, Wo) output grid::

    top[n, (c * kh + i) * kw + j, y, x] = bottom[n, c, y sh - ph + i dh, x sw - pw + j dw]
                                          (0 in the padding)
    bottom_diff = col2im(top_diff): each bottom cell gets the sum of its copies' diffs

``convolution_param`` gives kernel, stride, pad and dilation (square, or
``_h``/``_w``), with Caffe's output size ``(H + 2 pad - (dilation (k - 1) + 1)) /
stride + 1``. Only 2 spatial axes (a 4-axis bottom, channel axis 1) are
supported (Convolution also takes N-D bottoms, see ``conv_nd``);
``force_nd_im2col`` changes how Caffe computes, not what, and is accepted.
"""

from __future__ import annotations

from typing import Any

from bpinspect.engine.blob import Blob
from bpinspect.layers._im2col import Geometry, col2im, im2col
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.conv import _spatial
from bpinspect.layers.registry import register


@register("Im2col")
class Im2col(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.convolution_param
        self.axis = int(p.axis)
        kh, kw = _spatial(self, p, "kernel_size", "kernel", None)
        sh, sw = _spatial(self, p, "stride", "stride", 1)
        ph, pw = _spatial(self, p, "pad", "pad", 0)
        dh, dw = _spatial(self, p, "dilation", None, 1)
        self.geometry = Geometry(kh, kw, sh, sw, ph, pw, dh, dw)
        self._bottom_shape: Shape = ()
        self._top_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        g = self.geometry
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            self.fail(f"takes a 4-D bottom (N, C, H, W), got shape {shape} (N-D im2col is "
                      "not supported)")
        if self.axis not in (1, -3):
            self.fail(f"axis {self.axis} is not supported (only 1, the channel axis)")
        if min(g.kh, g.kw) <= 0:
            self.fail(f"kernel size must be > 0, got {g.kh}x{g.kw}")
        if min(g.sh, g.sw) <= 0 or min(g.dh, g.dw) <= 0:
            self.fail(f"stride and dilation must be > 0, got stride {g.sh}x{g.sw}, "
                      f"dilation {g.dh}x{g.dw}")
        n, c, h, w = shape
        ho, wo = g.out_size(h, w)
        if ho <= 0 or wo <= 0:
            self.fail(f"the {g.kh}x{g.kw} kernel leaves no output for the input {h}x{w}")
        self._bottom_shape = shape
        self._top_shape = (n, c * g.kh * g.kw, ho, wo)
        return [self._top_shape]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        n, rows, ho, wo = self._top_shape
        col = im2col(bottom[0].data, self.geometry)  # (rows, n * ho * wo)
        top[0].data = col.reshape(rows, n, ho, wo).transpose(1, 0, 2, 3).copy()

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        n, rows, ho, wo = self._top_shape
        dcol = top[0].diff.transpose(1, 0, 2, 3).reshape(rows, n * ho * wo)
        bottom[0].diff = col2im(dcol, self._bottom_shape, self.geometry)
