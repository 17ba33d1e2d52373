"""im2col / col2im: convolution as one matrix product, xp-generic.

``im2col`` lays the receptive fields of a padded input out as the columns
of a matrix of shape (C * kh * kw, N * Ho * Wo), channel-major, so that the
rows of one convolution group are contiguous and ``W_g @ col_g`` is a single
GEMM with the whole batch folded in (Caffe does one GEMM per image). It is
built from a strided view of the padded input (no loops over pixels) and
copied once to make the GEMM operand contiguous. ``col2im`` is its adjoint:
it adds each kernel offset's slab back into the padded input with one
strided slice add per offset (kh * kw adds, no scatter).
"""

from __future__ import annotations

from typing import NamedTuple

from bpinspect.backend import Array, get_array_module


class Geometry(NamedTuple):
    """Kernel, stride, pad and dilation along (height, width)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int = 1
    dw: int = 1

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """Caffe's convolution output size (floor), base_conv_layer.cpp."""
        ho = (h + 2 * self.ph - (self.dh * (self.kh - 1) + 1)) // self.sh + 1
        wo = (w + 2 * self.pw - (self.dw * (self.kw - 1) + 1)) // self.sw + 1
        return ho, wo


def im2col(x: Array, g: Geometry) -> Array:
    """(N, C, H, W) -> contiguous (C * kh * kw, N * Ho * Wo)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = g.out_size(h, w)
    if g.ph or g.pw:
        x = xp.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    else:
        x = xp.ascontiguousarray(x)
    s_n, s_c, s_h, s_w = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x,
        shape=(c, g.kh, g.kw, n, ho, wo),
        strides=(s_c, s_h * g.dh, s_w * g.dw, s_n, s_h * g.sh, s_w * g.sw),
    )
    return xp.ascontiguousarray(view).reshape(c * g.kh * g.kw, n * ho * wo)


def col2im(col: Array, shape: tuple[int, int, int, int], g: Geometry) -> Array:
    """The adjoint of im2col: (C * kh * kw, N * Ho * Wo) -> (N, C, H, W), summed."""
    xp = get_array_module(col)
    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    col = col.reshape(c, g.kh, g.kw, n, ho, wo)
    padded = xp.zeros((n, c, h + 2 * g.ph, w + 2 * g.pw), dtype=col.dtype)
    for i in range(g.kh):
        y0 = i * g.dh
        for j in range(g.kw):
            x0 = j * g.dw
            padded[:, :, y0 : y0 + g.sh * (ho - 1) + 1 : g.sh, x0 : x0 + g.sw * (wo - 1) + 1 : g.sw] += (
                col[:, i, j].transpose(1, 0, 2, 3)
            )
    return padded[:, :, g.ph : g.ph + h, g.pw : g.pw + w]
