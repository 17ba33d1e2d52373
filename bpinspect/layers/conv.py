"""Layer family: convolution and its transpose, after Caffe's
src/caffe/layers/{base_conv,conv,deconv}_layer.cpp.

A convolution maps a "conv input" X (N, Ci, H, W) to a "conv output"
Y (N, Co, Ho, Wo) with weights W (Co, Ci/group, kh, kw) and, with
``col = im2col(X)`` (see ``_im2col``), for each group g::

    Y_g     = W_g @ col_g                      (+ bias per output channel)
    dW_g   += dY_g @ col_g^T                   dbias += sum over n, y, x of dY
    dcol_g  = W_g^T @ dY_g,  dX = col2im(dcol)

This is seed 001's derivation: the input gradient "sprays" each output diff
back over its receptive field through the weights (a strided convolution's
gradient is the correlation of the dilated output diff with the flipped
kernel; col2im performs exactly that scatter), and the weight gradient is
the correlation of the input with the output diff. Ho = (H + 2 pad -
(dilation (k - 1) + 1)) / stride + 1, rounded down.

Convolution: bottom = X, top = Y. Deconvolution is the same operator run
backwards: bottom = Y, top = X (so its weight is (C_bottom, num_output/group,
kh, kw) and its top size is stride (H - 1) + dilation (k - 1) + 1 - 2 pad);
its forward is the col2im product above and its backward the im2col one.

Param diffs accumulate (+=), as in Caffe; bottom diffs are assigned. The
batch is folded into each GEMM (Caffe runs one GEMM per image), in chunks
of at most ``COL_BUDGET`` bytes of col matrix.

This is the fast path for (N, C, H, W) bottoms with channel axis 1; setup
hands any other bottom (1-D, 3-D, ``axis`` other than 1) to ``conv_nd``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers import conv_nd
from bpinspect.layers._conv_common import ConvolutionCommon
from bpinspect.layers._gemm import add_product, matmul
from bpinspect.layers._im2col import (
    Geometry,
    col2im,
    col2im_batch_last,
    im2col,
    im2col_batch_last,
    scratch,
)
from bpinspect.layers._parallel import parallel_parts
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

COL_BUDGET = 64 << 20  # bytes of col matrix per GEMM chunk; at least one image


def _spatial(layer: Layer, p: Any, field: str, hw: str | None,
             default: int | None) -> tuple[int, int]:
    """Caffe's rule for a spatial field: ``<hw>_h``/``<hw>_w``, or 1 or 2 repeated values."""
    values = [int(v) for v in getattr(p, field)]
    if hw is not None and (p.HasField(f"{hw}_h") or p.HasField(f"{hw}_w")):
        if values:
            layer.fail(f"give either {field} or {hw}_h/{hw}_w, not both")
        return int(getattr(p, f"{hw}_h")), int(getattr(p, f"{hw}_w"))
    if not values and default is not None:
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    if not values:
        layer.fail(f"{field} (or {hw}_h and {hw}_w) must be given")
    layer.fail(f"{field} has {len(values)} values; a 2-D convolution takes 1 or 2")
    raise AssertionError("unreachable: fail raises")


class _ConvolutionBase(ConvolutionCommon):
    """Parsing, shapes and the three products shared by Convolution and Deconvolution."""

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._read_common()
        p = param.convolution_param
        self.geometry: Geometry | None = None  # None: > 2 values, for conv_nd to read
        if conv_nd.fits_2d(p):
            kh, kw = _spatial(self, p, "kernel_size", "kernel", None)
            sh, sw = _spatial(self, p, "stride", "stride", 1)
            ph, pw = _spatial(self, p, "pad", "pad", 0)
            dh, dw = _spatial(self, p, "dilation", None, 1)
            self.geometry = Geometry(kh, kw, sh, sw, ph, pw, dh, dw)

    # -- contract ------------------------------------------------------------
    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        g = self.geometry
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4 or self.axis not in (1, -3) or g is None:
            return conv_nd.hand_over(self).setup(bottom_shapes)  # not (N, C, H, W): N-D
        n, c, h, w = self._check_bottoms(bottom_shapes)
        if min(g.kh, g.kw) <= 0:
            self.fail(f"kernel size must be > 0, got {g.kh}x{g.kw}")
        if min(g.sh, g.sw) <= 0 or min(g.dh, g.dw) <= 0:
            self.fail(f"stride and dilation must be > 0, got stride {g.sh}x{g.sw}, "
                      f"dilation {g.dh}x{g.dw}")
        self._set_channels(c)
        if self.transposed:
            top_hw = (g.sh * (h - 1) + g.dh * (g.kh - 1) + 1 - 2 * g.ph,
                      g.sw * (w - 1) + g.dw * (g.kw - 1) + 1 - 2 * g.pw)
        else:
            top_hw = g.out_size(h, w)
        if min(top_hw) <= 0:
            self.fail(f"the {g.kh}x{g.kw} kernel leaves no output for the input {h}x{w} "
                      f"(pad {g.ph}x{g.pw}, stride {g.sh}x{g.sw}, dilation {g.dh}x{g.dw})")
        self._set_param_shapes((g.kh, g.kw))
        return [(n, self.num_output, *top_hw) for _ in bottom_shapes]

    # -- the products, on one chunk of images ---------------------------------------
    def _chunks(self, x: Array) -> Iterator[slice]:
        """Slices of the batch whose col matrix fits COL_BUDGET (x: a conv input)."""
        n, c, h, w = x.shape
        ho, wo = self.geometry.out_size(h, w)
        per_image = c * self.geometry.kh * self.geometry.kw * ho * wo * x.dtype.itemsize
        count = max(1, -(-n * per_image // COL_BUDGET))
        size = -(-n // count)
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))

    def _groups(self) -> list[tuple[slice, slice]]:
        """(rows of W and of the conv output matrix, rows of col) for each group."""
        m, k = self.conv_out // self.group, self.conv_in // self.group
        k *= self.geometry.kh * self.geometry.kw
        return [(slice(i * m, (i + 1) * m), slice(i * k, (i + 1) * k)) for i in range(self.group)]

    def _batch_last(self, x: Array) -> bool:
        """Whether a chunk's backward takes its GEMM columns image index last (NumPy,
        several images): the same products, with long runs in im2col and col2im (see
        ``im2col_batch_last``)."""
        return get_array_module(x) is np and x.shape[0] > 1

    def _col(self, x: Array, last: bool = False) -> Array:
        """im2col of a conv-input chunk, in scratch memory (``last``: image index last)."""
        xp = get_array_module(x)
        n, c, h, w = x.shape
        ho, wo = self.geometry.out_size(h, w)
        k = c * self.geometry.kh * self.geometry.kw
        col = scratch("conv.col", (k, n * ho * wo), x.dtype, xp)
        if last:
            return im2col_batch_last(x, self.geometry, col)
        return im2col(x, self.geometry, col)

    def _rows(self, y: Array, last: bool = False) -> Array:
        """A conv-output chunk (n, Co, Ho, Wo) as the GEMM's (Co, n * Ho * Wo) matrix
        (``last``: columns (Ho * Wo, n), image index last)."""
        n, co, ho, wo = y.shape
        if n == 1:
            return y.reshape(co, ho * wo)
        xp = get_array_module(y)
        if last:
            rows = scratch("conv.rows", (co, ho * wo, n), y.dtype, xp)
            planes = y.reshape(n, co, ho * wo).transpose(1, 2, 0)
            parallel_parts(lambda c0, c1: np.copyto(rows[c0:c1], planes[c0:c1]), co, rows.size)
            return rows.reshape(co, n * ho * wo)
        rows = scratch("conv.rows", (co, n, ho * wo), y.dtype, xp)
        images = y.reshape(n, co, ho * wo).transpose(1, 0, 2)
        if xp is np:  # images n0..n1 fill columns n0..n1: disjoint, copied at once
            parallel_parts(lambda n0, n1: np.copyto(rows[:, n0:n1], images[:, n0:n1]), n,
                           rows.size)
        else:
            xp.copyto(rows, images)
        return rows.reshape(co, n * ho * wo)

    def _multiply(self, col: Array, out: Array, bias: Array | None = None) -> None:
        """out (n, Co, Ho, Wo) = W @ col (+ bias per output channel), group by group.

        The bias is added in the pass that lays the product out as images (the same
        one addition per element as adding it afterwards, one pass fewer)."""
        xp = get_array_module(col)
        n, co, ho, wo = out.shape
        weight = self.blobs[0].data.reshape(co, -1)
        target = out.reshape(co, ho * wo) if n == 1 else scratch(
            "conv.rows", (co, n * ho * wo), out.dtype, xp)
        for rows, cols in self._groups():
            matmul(weight[rows], col[cols], target[rows])
        if xp is not np:
            if n > 1:
                xp.copyto(out, target.reshape(co, n, ho, wo).transpose(1, 0, 2, 3))
            if bias is not None:
                out += bias.reshape(1, -1, 1, 1)
            return
        laid = target.reshape(co, n, ho * wo).transpose(1, 0, 2)  # (n, Co, Ho * Wo)
        flat = out.reshape(n, co, ho * wo)
        column = None if bias is None else bias.reshape(-1, 1)

        def images(n0: int, n1: int) -> None:  # images n0..n1 of out: disjoint
            if column is not None:
                np.add(laid[n0:n1], column, out=flat[n0:n1])
            elif n > 1:
                np.copyto(flat[n0:n1], laid[n0:n1])

        def channels(c0: int, c1: int) -> None:  # one image: channels c0..c1, in place
            flat[0, c0:c1] += column[c0:c1]

        if n > 1:
            parallel_parts(images, n, out.size)
        elif column is not None:
            parallel_parts(channels, co, out.size)

    def _multiply_transposed(self, rows_matrix: Array, out: Array, last: bool = False) -> None:
        """out (n, Ci, H, W) = col2im(W^T @ rows_matrix), group by group (``last``: the
        columns image index last)."""
        xp = get_array_module(rows_matrix)
        n, ci, h, w = out.shape
        weight = self.blobs[0].data.reshape(self.conv_out, -1)
        k = ci * self.geometry.kh * self.geometry.kw
        dcol = scratch("conv.col", (k, rows_matrix.shape[1]), out.dtype, xp)
        for rows, cols in self._groups():
            matmul(weight[rows].T, rows_matrix[rows], dcol[cols])
        if last:
            col2im_batch_last(dcol, (n, ci, h, w), self.geometry, out)
        else:
            col2im(dcol, (n, ci, h, w), self.geometry, out=out)

    def _accumulate_weight_diff(self, rows_matrix: Array, col: Array) -> None:
        """dW_g += dY_g @ col_g^T."""
        diff, zero = self.blobs[0].diff_to_accumulate()
        diff = diff.reshape(self.conv_out, -1)
        for rows, cols in self._groups():
            add_product(diff[rows], rows_matrix[rows], col[cols].T, onto_zero=zero)

    def _add_bias(self, top: Array) -> None:
        if self.bias_term:
            top += self.blobs[1].data.reshape(1, -1, 1, 1)

    def _accumulate_bias_diff(self, top_diff: Array) -> None:
        if self.bias_term and self._wants_param_diff(1):
            n, c = top_diff.shape[:2]
            planes = top_diff.reshape(n, c, -1)
            if get_array_module(top_diff) is not np:
                self.blobs[1].diff += planes.sum(axis=2).sum(axis=0)
                return
            # Each plane's sum alone (images n0..n1 at once), then over the images: the
            # sums of planes.sum(axis=2).sum(axis=0).
            sums = np.empty((n, c), dtype=top_diff.dtype)
            parallel_parts(lambda n0, n1: planes[n0:n1].sum(axis=2, out=sums[n0:n1]), n,
                           top_diff.size)
            self.blobs[1].diff += sums.sum(axis=0)


@register("Convolution")
class Convolution(_ConvolutionBase):
    """Caffe's Convolution: top = W * bottom (+ bias); see the module docstring."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for b, t in zip(bottom, top, strict=True):
            x = b.data
            out = t.array_to_overwrite("data", t.shape, x.dtype)
            bias = self.blobs[1].data if self.bias_term else None
            for part in self._chunks(x):
                self._multiply(self._col(x[part]), out[part], bias)
            t.data = out

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        want_weight = self._wants_param_diff(0)
        for t, down, b in zip(top, propagate_down, bottom, strict=True):
            dtop, x = t.diff, b.data
            self._accumulate_bias_diff(dtop)
            if not (want_weight or down):
                continue
            dx = b.array_to_overwrite("diff", x.shape, x.dtype) if down else None
            for part in self._chunks(x):
                last = self._batch_last(x[part])
                rows = self._rows(dtop[part], last)
                if want_weight:
                    self._accumulate_weight_diff(rows, self._col(x[part], last))
                if dx is not None:
                    self._multiply_transposed(rows, dx[part], last)
            if dx is not None:
                b.diff = dx


@register("Deconvolution")
class Deconvolution(_ConvolutionBase):
    """Caffe's Deconvolution: the transpose of Convolution (its forward is
    Convolution's input-gradient product, its backward Convolution's forward)."""

    transposed = True

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for b, t in zip(bottom, top, strict=True):
            y = b.data
            xp = get_array_module(y)
            out = xp.empty(t.shape, dtype=y.dtype)
            for part in self._chunks(out):
                self._multiply_transposed(self._rows(y[part]), out[part])
            self._add_bias(out)
            t.data = out

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        want_weight = self._wants_param_diff(0)
        for t, down, b in zip(top, propagate_down, bottom, strict=True):
            dtop, y = t.diff, b.data
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
                    self._multiply(col, dy[part])
            if dy is not None:
                b.diff = dy
