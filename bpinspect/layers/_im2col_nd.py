"""N-D im2col / col2im: a convolution over any number of spatial axes as one
matrix product, xp-generic (NumPy or CuPy), after Caffe's im2col_nd.

Layout. For a chunk ``x`` of shape (N, C, S_1, ..., S_d) and an
:class:`NdGeometry` with output size (O_1, ..., O_d), ``im2col_nd(x, g)`` is
the matrix ``col`` of shape (C * K_1 ... K_d, N * O_1 ... O_d) with::

    col[(c, k_1, ..., k_d), (n, o_1, ..., o_d)]
        = x[n, c, o_1 s_1 - p_1 + k_1 e_1, ..., o_d s_d - p_d + k_d e_d]   (0 outside)

(s stride, p pad, e dilation; row and column indices are row-major over the
tuples). Rows are Caffe's im2col_nd rows, the order of
``weight.reshape(conv_out, -1)``, so a group's rows are contiguous; columns
are image-major, then the output grid: the batch is folded into the GEMM.
For d = 2 this is exactly ``_im2col``'s matrix.

Both directions loop over the K_1 ... K_d kernel offsets only: each offset is
one strided slice of the zero-padded image, copied into (im2col) or added
back from (col2im) one slab of ``col``. Basic slicing works alike on NumPy
and CuPy, so there is no device-specific code here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import NamedTuple

from bpinspect.backend import Array, get_array_module


class NdGeometry(NamedTuple):
    """Kernel, stride, pad and dilation, one value per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    def extent(self, axis: int) -> int:
        """How many input cells one kernel spans along ``axis``."""
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def out_size(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Caffe's convolution output size (conv_layer.cpp), rounded down."""
        return tuple((size + 2 * self.pad[i] - self.extent(i)) // self.stride[i] + 1
                     for i, size in enumerate(spatial))

    def transposed_size(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Caffe's deconvolution output size (deconv_layer.cpp): the conv input
        whose convolution has ``spatial`` outputs, with no cells left over."""
        return tuple(self.stride[i] * (size - 1) + self.extent(i) - 2 * self.pad[i]
                     for i, size in enumerate(spatial))

    @property
    def kernel_count(self) -> int:
        """K_1 ... K_d: the rows of ``col`` per channel."""
        return math.prod(self.kernel)


def _offsets(g: NdGeometry, out: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...],
                                                                    tuple[slice, ...]]]:
    """Each kernel offset (k_1..k_d) and the slices of the padded image it reads."""
    for offset in itertools.product(*(range(k) for k in g.kernel)):
        yield offset, tuple(
            slice(k * e, k * e + (o - 1) * s + 1, s)
            for k, e, o, s in zip(offset, g.dilation, out, g.stride, strict=True))


def im2col_nd(x: Array, g: NdGeometry) -> Array:
    """(N, C, S_1..S_d) -> a new (C * K_1..K_d, N * O_1..O_d) matrix."""
    xp = get_array_module(x)
    n, c, *spatial = x.shape
    out = g.out_size(tuple(spatial))
    padded = x
    if any(g.pad):
        padded = xp.zeros((n, c, *(s + 2 * p for s, p in zip(spatial, g.pad, strict=True))),
                          dtype=x.dtype)
        padded[(slice(None), slice(None),
                *(slice(p, p + s) for s, p in zip(spatial, g.pad, strict=True)))] = x
    col = xp.empty((c, *g.kernel, n, *out), dtype=x.dtype)
    for offset, cells in _offsets(g, out):
        # (N, C, O...) slab of the image -> the (C, N, O...) rows of this offset
        col[(slice(None), *offset)] = padded[(slice(None), slice(None), *cells)].swapaxes(0, 1)
    return col.reshape(c * g.kernel_count, n * math.prod(out))


def col2im_nd(col: Array, shape: tuple[int, ...], g: NdGeometry) -> Array:
    """The adjoint of ``im2col_nd``: col -> a new (N, C, S_1..S_d) array ``shape``,
    each cell the sum of the entries of ``col`` that copied it."""
    xp = get_array_module(col)
    n, c, *spatial = shape
    out = g.out_size(tuple(spatial))
    slabs = col.reshape(c, *g.kernel, n, *out)
    padded = xp.zeros((n, c, *(s + 2 * p for s, p in zip(spatial, g.pad, strict=True))),
                      dtype=col.dtype)
    for offset, cells in _offsets(g, out):
        # One offset reads each padded cell at most once: the slice add has no repeats.
        padded[(slice(None), slice(None), *cells)] += slabs[(slice(None), *offset)].swapaxes(0, 1)
    if not any(g.pad):
        return padded
    return padded[(slice(None), slice(None),
                   *(slice(p, p + s) for s, p in zip(spatial, g.pad, strict=True)))].copy()
