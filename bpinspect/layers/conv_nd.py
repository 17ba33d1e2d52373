"""Layer family: N-D convolution and its transpose, after Caffe's
src/caffe/layers/base_conv_layer.cpp with im2col_nd (util/im2col.cpp).

Caffe's convolution runs over every axis after the channel axis
(``convolution_param.axis``, default 1): a bottom (L..., C, S_1, ..., S_d)
has d = num_axes - (axis + 1) spatial axes, and its leading axes L... are
folded into one "num" axis of N = prod(L) images. ``kernel_size``,
``stride``, ``pad`` and ``dilation`` each give 1 value (for every axis) or d
values (defaults: stride 1, pad 0, dilation 1); ``kernel_h``/``kernel_w``
and the like are for d = 2 only. So a 3-D convolution takes N x C x D x H x
W, a 1-D one N x C x L, and ``axis: 2`` on (N, T, C, L) convolves the L axis
of N * T sequences.

The math is ``conv.py``'s, with ``_im2col_nd``'s matrix (rows channel, then
kernel offset; columns image, then output cell). For each group g::

    Y_g = W_g @ col_g (+ bias),  dW_g += dY_g @ col_g^T,  dX = col2im(W_g^T @ dY_g)

with O_i = (S_i + 2 pad_i - (dilation_i (k_i - 1) + 1)) / stride_i + 1,
rounded down (as ``conv.py``: where Caffe's truncating division would give a
size from a kernel that does not fit, the layer refuses instead).
Deconvolution is the same operator backwards: bottom = Y, top = X, weight
(C_bottom, num_output / group, k_1, ..., k_d), top size stride_i (S_i - 1) +
dilation_i (k_i - 1) + 1 - 2 pad_i. Param diffs accumulate (+=); bottom
diffs are assigned. ``force_nd_im2col`` only picks Caffe's code path, not
the result, and is accepted.

``conv.py`` keeps its fast 2-D path for 4-axis bottoms with channel axis 1;
for any other bottom it hands its layer over to this module
(:func:`hand_over`): the same object, with this module's class.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers._conv_common import ConvolutionCommon
from bpinspect.layers._im2col_nd import NdGeometry, col2im_nd, im2col_nd
from bpinspect.layers.base import Layer, Shape

SPATIAL_FIELDS = ("kernel_size", "stride", "pad", "dilation")


def fits_2d(p: Any) -> bool:
    """Whether ``convolution_param`` can be read as a 2-D one (no field has more
    than 2 values); if not, only this module can read it, once the bottom is known."""
    return all(len(getattr(p, field)) <= 2 for field in SPATIAL_FIELDS)


def _per_axis(layer: Layer, p: Any, field: str, hw: str | None, default: int | None,
              axes: int) -> tuple[int, ...]:
    """Caffe's rule for a spatial field over ``axes`` spatial axes: ``<hw>_h``/``<hw>_w``
    (2-D only), or 1 value for all axes, or one per axis, or the default."""
    values = tuple(int(v) for v in getattr(p, field))
    if hw is not None and (p.HasField(f"{hw}_h") or p.HasField(f"{hw}_w")):
        if axes != 2:
            layer.fail(f"{hw}_h/{hw}_w are for a 2-D convolution; this one has {axes} "
                       f"spatial axes (give {field})")
        if values:
            layer.fail(f"give either {field} or {hw}_h/{hw}_w, not both")
        return int(getattr(p, f"{hw}_h")), int(getattr(p, f"{hw}_w"))
    if not values and default is not None:
        return (default,) * axes
    if len(values) == 1:
        return values * axes
    if len(values) == axes and values:
        return values
    if not values:
        layer.fail(f"{field} must be given")
    layer.fail(f"{field} has {len(values)} values; give 1, or one per spatial axis "
               f"({axes} for this bottom)")
    raise AssertionError("unreachable: fail raises")


class _ConvolutionNdBase(ConvolutionCommon):
    """Parsing, shapes and the three products shared by the N-D Convolution and
    Deconvolution."""

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._read_param()

    def _read_param(self) -> None:
        """The fields that need no bottom shape (the spatial ones are read in setup)."""
        self._read_common()
        self.geometry: NdGeometry | None = None  # setup: needs the number of spatial axes
        self.channel_axis = 1

    # -- contract ------------------------------------------------------------
    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = self._check_bottoms(bottom_shapes)
        if not -len(shape) <= self.axis < len(shape):
            self.fail(f"axis {self.axis} is out of range for the {len(shape)}-axis bottom "
                      f"{shape}")
        self.channel_axis = self.axis % len(shape)
        axes = len(shape) - self.channel_axis - 1
        if axes < 1:
            self.fail(f"the channel axis {self.channel_axis} leaves no spatial axis in the "
                      f"bottom {shape}")
        g = self.geometry = self._read_geometry(axes)
        lead, c, spatial = shape[:self.channel_axis], shape[self.channel_axis], shape[-axes:]
        self._set_channels(c)
        top_spatial = g.transposed_size(spatial) if self.transposed else g.out_size(spatial)
        if min(top_spatial) <= 0:
            self.fail(f"the kernel {_x(g.kernel)} leaves no output for the input "
                      f"{_x(spatial)} (pad {_x(g.pad)}, stride {_x(g.stride)}, dilation "
                      f"{_x(g.dilation)})")
        self._set_param_shapes(g.kernel)
        return [(*lead, self.num_output, *top_spatial) for _ in bottom_shapes]

    def _read_geometry(self, axes: int) -> NdGeometry:
        p = self.param.convolution_param
        g = NdGeometry(_per_axis(self, p, "kernel_size", "kernel", None, axes),
                       _per_axis(self, p, "stride", "stride", 1, axes),
                       _per_axis(self, p, "pad", "pad", 0, axes),
                       _per_axis(self, p, "dilation", None, 1, axes))
        if min(g.kernel) <= 0:
            self.fail(f"kernel size must be > 0, got {_x(g.kernel)}")
        if min(g.stride) <= 0 or min(g.dilation) <= 0:
            self.fail(f"stride and dilation must be > 0, got stride {_x(g.stride)}, "
                      f"dilation {_x(g.dilation)}")
        return g

    # -- layout ------------------------------------------------------------------
    def _fold(self, a: Array) -> Array:
        """(L..., C, S...) -> (prod L, C, S...): the leading axes are the images."""
        return a.reshape(-1, *a.shape[self.channel_axis:])

    def _chunks(self, conv_input: Array) -> Iterator[slice]:
        """Slices of the folded images whose col matrix fits conv.py's COL_BUDGET."""
        from bpinspect.layers.conv import COL_BUDGET  # one budget for both paths

        assert self.geometry is not None
        num = conv_input.shape[0]
        out = self.geometry.out_size(tuple(conv_input.shape[2:]))
        per_image = (conv_input.shape[1] * self.geometry.kernel_count * math.prod(out)
                     * conv_input.dtype.itemsize)
        count = max(1, -(-num * per_image // COL_BUDGET))
        size = max(1, -(-num // count))
        for start in range(0, num, size):
            yield slice(start, min(start + size, num))

    def _col(self, conv_input: Array) -> Array:
        assert self.geometry is not None
        return im2col_nd(conv_input, self.geometry)

    def _groups(self) -> list[tuple[slice, slice]]:
        """(rows of W and of the conv output matrix, rows of col) for each group."""
        assert self.geometry is not None
        m = self.conv_out // self.group
        k = self.conv_in // self.group * self.geometry.kernel_count
        return [(slice(i * m, (i + 1) * m), slice(i * k, (i + 1) * k)) for i in range(self.group)]

    @staticmethod
    def _rows(y: Array) -> Array:
        """A conv-output chunk (n, Co, O...) as the GEMM's (Co, n * prod O) matrix."""
        n, co = y.shape[:2]
        return y.reshape(n, co, -1).swapaxes(0, 1).reshape(co, -1)

    # -- the three products --------------------------------------------------------
    def _multiply(self, col: Array, n: int, out_spatial: tuple[int, ...]) -> Array:
        """W @ col, group by group, as the conv output (n, Co, O...)."""
        xp = get_array_module(col)
        weight = self.blobs[0].data.reshape(self.conv_out, -1)
        rows = xp.empty((self.conv_out, col.shape[1]), dtype=col.dtype)
        for out_rows, col_rows in self._groups():
            rows[out_rows] = weight[out_rows] @ col[col_rows]
        return rows.reshape(self.conv_out, n, *out_spatial).swapaxes(0, 1)

    def _multiply_transposed(self, rows_matrix: Array, shape: tuple[int, ...]) -> Array:
        """col2im(W^T @ rows_matrix), group by group, as a conv input of ``shape``."""
        assert self.geometry is not None
        xp = get_array_module(rows_matrix)
        weight = self.blobs[0].data.reshape(self.conv_out, -1)
        dcol = xp.empty((self.conv_in * self.geometry.kernel_count, rows_matrix.shape[1]),
                        dtype=rows_matrix.dtype)
        for out_rows, col_rows in self._groups():
            dcol[col_rows] = weight[out_rows].T @ rows_matrix[out_rows]
        return col2im_nd(dcol, shape, self.geometry)

    def _accumulate_weight_diff(self, rows_matrix: Array, col: Array) -> None:
        """dW_g += dY_g @ col_g^T."""
        diff = self.blobs[0].diff
        for out_rows, col_rows in self._groups():
            diff[out_rows] += (rows_matrix[out_rows] @ col[col_rows].T).reshape(
                diff[out_rows].shape)

    def _add_bias(self, folded_top: Array) -> None:
        if self.bias_term:
            spatial_ones = (1,) * (folded_top.ndim - 2)
            folded_top += self.blobs[1].data.reshape(1, -1, *spatial_ones)

    def _accumulate_bias_diff(self, folded_top_diff: Array) -> None:
        if self.bias_term and self._wants_param_diff(1):
            n, c = folded_top_diff.shape[:2]
            self.blobs[1].diff += folded_top_diff.reshape(n, c, -1).sum(axis=2).sum(axis=0)


def _x(values: tuple[int, ...]) -> str:
    """(3, 3, 2) -> '3x3x2', as the 2-D messages write sizes."""
    return "x".join(str(v) for v in values)


class ConvolutionNd(_ConvolutionNdBase):
    """Caffe's Convolution over d >= 1 spatial axes: top = W * bottom (+ bias)."""

    type: ClassVar[str] = "Convolution"

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        assert self.geometry is not None
        for b, t in zip(bottom, top, strict=True):
            x = self._fold(b.data)
            xp = get_array_module(x)
            out_spatial = self.geometry.out_size(tuple(x.shape[2:]))
            out = xp.empty((x.shape[0], self.conv_out, *out_spatial), dtype=x.dtype)
            for part in self._chunks(x):
                chunk = x[part]
                out[part] = self._multiply(self._col(chunk), chunk.shape[0], out_spatial)
            self._add_bias(out)
            t.data = out.reshape(t.shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        want_weight = self._wants_param_diff(0)
        for t, down, b in zip(top, propagate_down, bottom, strict=True):
            dtop, x = self._fold(t.diff), self._fold(b.data)
            self._accumulate_bias_diff(dtop)
            if not (want_weight or down):
                continue
            xp = get_array_module(x)
            dx = xp.empty(x.shape, dtype=x.dtype) if down else None
            for part in self._chunks(x):
                rows = self._rows(dtop[part])
                if want_weight:
                    self._accumulate_weight_diff(rows, self._col(x[part]))
                if dx is not None:
                    dx[part] = self._multiply_transposed(rows, x[part].shape)
            if dx is not None:
                b.diff = dx.reshape(b.shape)


class DeconvolutionNd(_ConvolutionNdBase):
    """Caffe's Deconvolution over d >= 1 spatial axes: the transpose of
    ConvolutionNd (its forward is the input-gradient product, its backward the
    convolution's forward)."""

    type: ClassVar[str] = "Deconvolution"
    transposed = True

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for b, t in zip(bottom, top, strict=True):
            y = self._fold(b.data)
            xp = get_array_module(y)
            shape = (y.shape[0], self.conv_in, *t.shape[self.channel_axis + 1:])
            out = xp.empty(shape, dtype=y.dtype)
            for part in self._chunks(out):
                rows = self._rows(y[part])
                out[part] = self._multiply_transposed(rows, out[part].shape)
            self._add_bias(out)
            t.data = out.reshape(t.shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        want_weight = self._wants_param_diff(0)
        for t, down, b in zip(top, propagate_down, bottom, strict=True):
            dtop, y = self._fold(t.diff), self._fold(b.data)
            self._accumulate_bias_diff(dtop)
            if not (want_weight or down):
                continue
            xp = get_array_module(y)
            dy = xp.empty(y.shape, dtype=y.dtype) if down else None
            for part in self._chunks(dtop):
                col = self._col(dtop[part])
                if want_weight:
                    self._accumulate_weight_diff(self._rows(y[part]), col)
                if dy is not None:
                    dy[part] = self._multiply(col, y[part].shape[0], tuple(y.shape[2:]))
            if dy is not None:
                b.diff = dy.reshape(b.shape)


def hand_over(layer: Layer) -> _ConvolutionNdBase:
    """Turn ``conv.py``'s 2-D Convolution or Deconvolution into this module's N-D
    one, in place (the Net holds the object; its name, blobs and flags stay), and
    re-read its param: called by its setup for a bottom the 2-D path does not take."""
    layer.__class__ = DeconvolutionNd if getattr(layer, "transposed", False) else ConvolutionNd
    assert isinstance(layer, _ConvolutionNdBase)
    layer._read_param()
    return layer
