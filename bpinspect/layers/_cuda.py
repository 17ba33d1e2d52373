"""CUDA kernels for the layers whose array formulation is slow on a GPU.

On NumPy, im2col is a copy of a 6-D strided view of a zero-padded copy of
the input, and pooling and col2im are loops over the kernel offsets with one
strided array operation each: cheap on a CPU, but on a GPU that is k*k
kernel launches over small slabs (121 for conv1's col2im). Here each output
element is one CUDA thread that walks its own window, as Caffe's
pooling_layer.cu and im2col.cu do, so the whole operation is one launch.
The arithmetic is the same as the array path, and the layer tests check
both paths against the same loop references (the ``xp`` fixture).

The kernels are compiled through the array module handed in (``xp`` is
cupy here); this module never imports cupy itself.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from bpinspect.backend import Array

_DECOMPOSE = """
    const int w_ = i % W; const int h_ = (i / W) % H;
    const int c_ = (i / (W * H)) % C; const int n_ = i / (W * H * C);
"""

_COL2IM = _DECOMPOSE + """
    const int hp = h_ + PH, wp = w_ + PW;
    T acc = 0;
    for (int ki = 0; ki < KH; ++ki) {
        const int hs = hp - ki * DH;
        if (hs < 0) break;
        if (hs % SH) continue;
        const int ho = hs / SH;
        if (ho >= HO) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int ws = wp - kj * DW;
            if (ws < 0) break;
            if (ws % SW) continue;
            const int wo = ws / SW;
            if (wo >= WO) continue;
            acc += col[((((long long)(c_ * KH + ki) * KW + kj) * N + n_) * HO + ho) * WO + wo];
        }
    }
    dx = acc;
"""

# One thread per (channel, column) of the (C*KH*KW, N*HO*WO) column matrix, looping
# over the kernel offsets as Caffe's im2col_gpu_kernel does: consecutive threads
# write consecutive columns.
_IM2COL = """
    const int cols = N * HO * WO;
    const int k = i % cols, c_ = i / cols;
    const int wo = k % WO, ho = (k / WO) % HO, n_ = k / (WO * HO);
    const int h0 = ho * SH - PH, w0 = wo * SW - PW;
    const T* plane = &x[(long long)(n_ * C + c_) * H * W];
    long long out = (long long)c_ * KH * KW * cols + k;
    for (int ki = 0; ki < KH; ++ki) {
        const int h = h0 + ki * DH;
        for (int kj = 0; kj < KW; ++kj, out += cols) {
            const int w = w0 + kj * DW;
            col[out] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[h * W + w] : (T)0;
        }
    }
"""

# Top-element decomposition: i -> (n, c, ph, pw) of the (N, C, HO, WO) top.
_TOP = """
    const int pw_ = i % WO; const int ph_ = (i / WO) % HO;
    const int c_ = (i / (WO * HO)) % C; const int n_ = i / (WO * HO * C);
    const long long plane = (long long)(n_ * C + c_) * H * W;
"""

_MAX_FORWARD = _TOP + """
    int hs = ph_ * SH - PH, ws = pw_ * SW - PW;
    const int he = min(hs + KH, H), we = min(ws + KW, W);
    hs = max(hs, 0); ws = max(ws, 0);
    T best = lowest; long long arg = -1;
    for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w)
            if (x[plane + h * W + w] > best) { best = x[plane + h * W + w]; arg = h * W + w; }
    y = best; mask = arg;
"""

_MAX_BACKWARD = _DECOMPOSE + """
    const int phs = (h_ + PH < KH) ? 0 : (h_ + PH - KH) / SH + 1;
    const int phe = min((h_ + PH) / SH + 1, HO);
    const int pws = (w_ + PW < KW) ? 0 : (w_ + PW - KW) / SW + 1;
    const int pwe = min((w_ + PW) / SW + 1, WO);
    const long long top = (long long)(n_ * C + c_) * HO * WO;
    const long long me = h_ * W + w_;
    T acc = 0;
    for (int ph = phs; ph < phe; ++ph)
        for (int pw = pws; pw < pwe; ++pw)
            if (mask[top + ph * WO + pw] == me) acc += dy[top + ph * WO + pw];
    dx = acc;
"""

_AVE_FORWARD = _TOP + """
    int hs = ph_ * SH - PH, ws = pw_ * SW - PW;
    int he = min(hs + KH, H + PH), we = min(ws + KW, W + PW);
    const T size = (T)((he - hs) * (we - ws));
    hs = max(hs, 0); ws = max(ws, 0); he = min(he, H); we = min(we, W);
    T acc = 0;
    for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w)
            acc += x[plane + h * W + w];
    y = acc / size;
"""

_AVE_BACKWARD = _DECOMPOSE + """
    const int h = h_ + PH, w = w_ + PW;
    const int phs = (h < KH) ? 0 : (h - KH) / SH + 1, phe = min(h / SH + 1, HO);
    const int pws = (w < KW) ? 0 : (w - KW) / SW + 1, pwe = min(w / SW + 1, WO);
    const long long top = (long long)(n_ * C + c_) * HO * WO;
    T acc = 0;
    for (int ph = phs; ph < phe; ++ph)
        for (int pw = pws; pw < pwe; ++pw) {
            const int hs = ph * SH - PH, ws = pw * SW - PW;
            const int he = min(hs + KH, H + PH), we = min(ws + KW, W + PW);
            acc += dy[top + ph * WO + pw] / (T)((he - hs) * (we - ws));
        }
    dx = acc;
"""

_GEOMETRY = "int32 N, int32 C, int32 H, int32 W, int32 HO, int32 WO, int32 KH, int32 KW, " \
            "int32 SH, int32 SW, int32 PH, int32 PW"


@cache
def _kernel(xp: Any, name: str) -> Any:
    """Compile (once per process) the named kernel with ``xp.ElementwiseKernel``."""
    specs = {
        "im2col": (f"raw T x, {_GEOMETRY}, int32 DH, int32 DW", "raw T col", _IM2COL),
        "col2im": (f"raw T col, {_GEOMETRY}, int32 DH, int32 DW", "T dx", _COL2IM),
        "max_forward": (f"raw T x, T lowest, {_GEOMETRY}", "T y, int64 mask", _MAX_FORWARD),
        "max_backward": (f"raw T dy, raw int64 mask, {_GEOMETRY}", "T dx", _MAX_BACKWARD),
        "ave_forward": (f"raw T x, {_GEOMETRY}", "T y", _AVE_FORWARD),
        "ave_backward": (f"raw T dy, {_GEOMETRY}", "T dx", _AVE_BACKWARD),
    }
    in_params, out_params, body = specs[name]
    return xp.ElementwiseKernel(in_params, out_params, body, f"bpinspect_{name}")


def _geometry(n: int, c: int, h: int, w: int, ho: int, wo: int, g: tuple[int, ...]) -> list:
    kh, kw, sh, sw, ph, pw = g
    return [np.int32(v) for v in (n, c, h, w, ho, wo, kh, kw, sh, sw, ph, pw)]


def im2col(xp: Any, x: Array, out: Array, out_hw: tuple[int, int],
           geometry: tuple[int, ...]) -> Array:
    """Write the column matrix of ``x`` into ``out`` (C-contiguous), reading zeros
    outside the image (no padded copy; geometry: kh kw sh sw ph pw dh dw)."""
    if not out.flags.c_contiguous:
        raise ValueError("im2col writes a C-contiguous column matrix")
    n, c, h, w = x.shape
    args = _geometry(n, c, h, w, *out_hw, geometry[:6])
    threads = c * n * out_hw[0] * out_hw[1]
    _kernel(xp, "im2col")(xp.ascontiguousarray(x), *args, np.int32(geometry[6]),
                          np.int32(geometry[7]), out, size=threads)
    return out


def col2im(xp: Any, col: Array, shape: tuple[int, ...], out_hw: tuple[int, int],
           geometry: tuple[int, ...]) -> Array:
    """The adjoint of im2col, one thread per input element (geometry: kh kw sh sw ph pw dh dw)."""
    n, c, h, w = shape
    dx = xp.empty(shape, dtype=col.dtype)
    args = _geometry(n, c, h, w, *out_hw, geometry[:6])
    _kernel(xp, "col2im")(col, *args, np.int32(geometry[6]), np.int32(geometry[7]), dx)
    return dx


def max_pool_forward(xp: Any, x: Array, out_hw: tuple[int, int],
                     geometry: tuple[int, ...]) -> tuple[Array, Array]:
    n, c, h, w = x.shape
    y = xp.empty((n, c, *out_hw), dtype=x.dtype)
    mask = xp.empty((n, c, *out_hw), dtype=np.int64)
    lowest = x.dtype.type(-np.finfo(np.float32).max)  # Caffe starts at -FLT_MAX in any Dtype
    _kernel(xp, "max_forward")(xp.ascontiguousarray(x), lowest,
                               *_geometry(n, c, h, w, *out_hw, geometry), y, mask)
    return y, mask


def max_pool_backward(xp: Any, dy: Array, mask: Array, shape: tuple[int, ...],
                      geometry: tuple[int, ...]) -> Array:
    n, c, h, w = shape
    dx = xp.empty(shape, dtype=dy.dtype)
    _kernel(xp, "max_backward")(xp.ascontiguousarray(dy), mask,
                                *_geometry(n, c, h, w, *dy.shape[2:], geometry), dx)
    return dx


def ave_pool_forward(xp: Any, x: Array, out_hw: tuple[int, int],
                     geometry: tuple[int, ...]) -> Array:
    n, c, h, w = x.shape
    y = xp.empty((n, c, *out_hw), dtype=x.dtype)
    _kernel(xp, "ave_forward")(xp.ascontiguousarray(x), *_geometry(n, c, h, w, *out_hw, geometry),
                               y)
    return y


def ave_pool_backward(xp: Any, dy: Array, shape: tuple[int, ...],
                      geometry: tuple[int, ...]) -> Array:
    n, c, h, w = shape
    dx = xp.empty(shape, dtype=dy.dtype)
    _kernel(xp, "ave_backward")(xp.ascontiguousarray(dy),
                                *_geometry(n, c, h, w, *dy.shape[2:], geometry), dx)
    return dx
