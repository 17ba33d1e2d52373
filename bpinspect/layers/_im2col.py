"""im2col / col2im: a convolution as one matrix product, xp-generic.

Layout. For a chunk ``x`` of shape (N, C, H, W) and a :class:`Geometry` with
output size (Ho, Wo), ``im2col(x, g)`` is the matrix ``col`` of shape
(C * kh * kw, N * Ho * Wo) with::

    col[(c * kh + i) * kw + j, (n * Ho + y) * Wo + x]
        = x[n, c, y * sh - ph + i * dh, x * sw - pw + j * dw]   (0 outside the image)

Rows are Caffe's im2col rows (channel, then kernel row, then kernel column:
the order of ``weight.reshape(num_output, -1)``), so the rows of a
convolution group are contiguous and ``W_g @ col_g`` is one GEMM. Columns
are image-major, then output row, then output column: the batch is folded
into the GEMM's columns (Caffe's col buffer is this matrix for N = 1).

``im2col`` copies a strided view of the zero-padded input (no loop over
pixels). ``col2im`` is its adjoint: it adds each of the kh * kw kernel
offsets' slabs back into the image with one slice add per offset, clipped to
the image (no scatter, no padded buffer); with a stride, into the image's
stride phases (unit-stride adds), interleaved back at the end.

``scratch`` hands out reusable temporaries so that the large col matrices
are not allocated (and page-faulted) on every call.
"""

from __future__ import annotations

import math
import threading
import types
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.layers import _cuda
from bpinspect.layers._parallel import parallel_parts, workers


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
        """Caffe's convolution output size (floor), conv_layer.cpp."""
        ho = (h + 2 * self.ph - (self.dh * (self.kh - 1) + 1)) // self.sh + 1
        wo = (w + 2 * self.pw - (self.dw * (self.kw - 1) + 1)) // self.sw + 1
        return ho, wo

    @property
    def is_pointwise(self) -> bool:
        """1x1, stride 1, no pad: im2col is the identity (Caffe's is_1x1_)."""
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (1, 1, 1, 1, 0, 0)


def valid_range(size: int, pad: int, stride: int, dilation: int, offset: int,
                out: int) -> tuple[int, int, int]:
    """Output positions ``[lo, hi)`` whose input ``o * stride - pad + offset * dilation``
    lies inside ``[0, size)``, and the input position of ``lo``."""
    shift = offset * dilation - pad
    lo = max(0, -(shift // stride)) if shift < 0 else 0  # ceil(-shift / stride)
    hi = min(out, (size - 1 - shift) // stride + 1) if size - 1 - shift >= 0 else 0
    return lo, max(lo, hi), lo * stride + shift


def offset_slices(g: Geometry, h: int, w: int, ho: int, wo: int, i: int, j: int,
                  ) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """For kernel offset (i, j): the (output, input) slices of the cells that read
    inside the image, or None where no output does."""
    y0, y1, iy = valid_range(h, g.ph, g.sh, g.dh, i, ho)
    x0, x1, ix = valid_range(w, g.pw, g.sw, g.dw, j, wo)
    if y1 <= y0 or x1 <= x0:
        return None
    rows = slice(iy, iy + (y1 - y0 - 1) * g.sh + 1, g.sh)
    cols = slice(ix, ix + (x1 - x0 - 1) * g.sw + 1, g.sw)
    return (slice(y0, y1), slice(x0, x1)), (rows, cols)


def kernel_offsets(g: Geometry, h: int, w: int, ho: int, wo: int) -> Iterator[
        tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
    """Each kernel offset (i, j), row-major, that some output cell reads inside the
    image, with its (output, input) slices (``offset_slices``)."""
    for i in range(g.kh):
        for j in range(g.kw):
            where = offset_slices(g, h, w, ho, wo, i, j)
            if where is not None:
                yield i, j, where[0], where[1]


PhaseBlock = tuple[int, int, tuple[slice, slice], tuple[slice, slice]]


def offsets_by_phase(g: Geometry, h: int, w: int, ho: int, wo: int,
                     ) -> dict[tuple[int, int], list[PhaseBlock]]:
    """``kernel_offsets`` grouped by the stride phase (r, t) of the image they land on,
    in kernel-offset order, each with its (output slices, unit-stride block of the
    phase plane ``image[..., r::sh, t::sw]``): input rows ``rows.start + k sh`` are
    rows ``rows.start // sh + k`` of phase ``rows.start % sh``."""
    groups: dict[tuple[int, int], list[PhaseBlock]] = {}
    for i, j, (ys, xs), (rows, cols) in kernel_offsets(g, h, w, ho, wo):
        a, r = divmod(rows.start, g.sh)
        b, t = divmod(cols.start, g.sw)
        block = (slice(a, a + ys.stop - ys.start), slice(b, b + xs.stop - xs.start))
        groups.setdefault((r, t), []).append((i, j, (ys, xs), block))
    return groups


def im2col(x: Array, g: Geometry, out: Array | None = None) -> Array:
    """(N, C, H, W) -> (C * kh * kw, N * Ho * Wo), written into ``out`` when given.

    Where no layout is needed (pointwise geometry, one contiguous image) it
    returns a view of ``x`` instead: treat the result as read-only.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = g.out_size(h, w)
    if g.is_pointwise and n == 1 and x.flags.c_contiguous:
        return x.reshape(c, h * w)  # a view: nothing to lay out
    if xp is not np:  # one CUDA thread per column element, no padded copy
        if out is None:
            out = xp.empty((c * g.kh * g.kw, n * ho * wo), dtype=x.dtype)
        return _cuda.im2col(xp, x, out, (ho, wo), tuple(g))
    if out is None:
        out = xp.empty((c * g.kh * g.kw, n * ho * wo), dtype=x.dtype)
    rows = out.reshape(c, g.kh, g.kw, n, ho, wo)
    # Channels c0..c1 fill rows c0*k..c1*k, images n0..n1 their columns: disjoint, so
    # they can be filled at once. By channel where there are enough for every part; an
    # image's three colours split two ways would leave one part twice the other's work.
    if c >= 2 * workers() or n == 1:
        parallel_parts(lambda c0, c1: _im2col_cpu(x[:, c0:c1], g, rows[c0:c1]), c, out.size)
    else:
        parallel_parts(lambda n0, n1: _im2col_cpu(x[n0:n1], g, rows[:, :, :, n0:n1]), n,
                       out.size)
    return out


def _im2col_cpu(x: np.ndarray, g: Geometry, rows: np.ndarray) -> None:
    """im2col of a chunk into ``rows``, a (C, kh, kw, N, Ho, Wo) view of its col."""
    n, c, h, w = x.shape
    ho, wo = g.out_size(h, w)
    if g.ph or g.pw:
        padded = scratch("im2col.pad", (n, c, h + 2 * g.ph, w + 2 * g.pw), x.dtype, np)
        padded.fill(0)
        padded[:, :, g.ph : g.ph + h, g.pw : g.pw + w] = x
        x = padded
    if (g.sh > 1 or g.sw > 1) and g.dh == g.dw == 1:
        _im2col_phases(x, g, (ho, wo), rows)
        return
    s_n, s_c, s_h, s_w = x.strides
    view = np.lib.stride_tricks.as_strided(
        x,
        shape=(c, g.kh, g.kw, n, ho, wo),
        strides=(s_c, s_h * g.dh, s_w * g.dw, s_n, s_h * g.sh, s_w * g.sw),
    )
    np.copyto(rows, view)


def _im2col_phases(x: np.ndarray, g: Geometry, out_hw: tuple[int, int],
                   rows: np.ndarray) -> None:
    """im2col of a (padded) chunk with a stride, through its stride phases: kernel row
    i = a * sh + r reads phase r = x[..., r::sh, :] from its row a on, so each kernel
    offset copies unit-stride runs (the strided gather happens once, into the phases)."""
    n, c, h, w = x.shape
    ho, wo = out_hw
    phases = scratch("im2col.phases", (g.sh, g.sw, c, n, -(-h // g.sh), -(-w // g.sw)),
                     x.dtype, np)
    for r in range(min(g.sh, g.kh)):
        for t in range(min(g.sw, g.kw)):
            plane = x[:, :, r::g.sh, t::g.sw]
            q = phases[r, t]
            np.copyto(q[:, :, :plane.shape[2], :plane.shape[3]], plane.transpose(1, 0, 2, 3))
            s_c, s_n, s_h, s_w = q.strides
            view = np.lib.stride_tricks.as_strided(
                q, shape=(c, len(range(r, g.kh, g.sh)), len(range(t, g.kw, g.sw)), n, ho, wo),
                strides=(s_c, s_h, s_w, s_n, s_h, s_w))
            np.copyto(rows[:, r::g.sh, t::g.sw], view)


def col2im(col: Array, shape: tuple[int, int, int, int], g: Geometry,
           out: Array | None = None) -> Array:
    """The adjoint of im2col: (C * kh * kw, N * Ho * Wo) -> (N, C, H, W), overlaps summed.

    ``out`` (if given) is overwritten, not added to.
    """
    xp = get_array_module(col)
    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    if xp is not np:  # one CUDA thread per input pixel instead of kh * kw strided adds
        summed = _cuda.col2im(xp, col, shape, (ho, wo), tuple(g))
        if out is None:
            return summed
        xp.copyto(out, summed)
        return out
    if out is None:
        out = xp.empty(shape, dtype=col.dtype)
    slabs = col.reshape(c, g.kh, g.kw, n, ho, wo)
    strided = g.sh > 1 or g.sw > 1
    hp, wp = -(-h // g.sh), -(-w // g.sw)  # the largest phase plane

    by_phase = offsets_by_phase(g, h, w, ho, wo)

    def images(n0: int, n1: int, c0: int = 0, c1: int = c) -> None:
        part = out[n0:n1, c0:c1]  # images n0..n1, channels c0..c1: disjoint, summed alone
        if strided:
            # The sum in phase planes, phase[r, t] = part[..., r::sh, t::sw]: each offset's
            # slab then lands on a unit-stride block instead of a strided one. Every
            # element gets the same terms in the same order from 0, so the sum is bit for
            # bit the one in place; the planes are written back interleaved at the end.
            phases = scratch("col2im.phases", (g.sh, g.sw, n1 - n0, c1 - c0, hp, wp),
                             col.dtype, np)
            phases.fill(0)
        else:
            part.fill(0)  # its one phase plane is the image
        for (r, t), blocks in by_phase.items():
            plane = phases[r, t] if strided else part
            for i, j, (ys, xs), (block_rows, block_cols) in blocks:
                plane[:, :, block_rows, block_cols] += \
                    slabs[c0:c1, i, j, n0:n1, ys, xs].transpose(1, 0, 2, 3)
        if strided:
            for r in range(g.sh):
                for t in range(g.sw):
                    plane = part[:, :, r::g.sh, t::g.sw]
                    np.copyto(plane, phases[r, t, :, :, :plane.shape[2], :plane.shape[3]])

    if n < workers() and c >= 2 * workers():  # one image (batch 1): by channel, as im2col
        parallel_parts(lambda c0, c1: images(0, n, c0, c1), c, out.size)
    else:
        parallel_parts(images, n, out.size)
    return out


def im2col_batch_last(x: np.ndarray, g: Geometry, out: np.ndarray) -> np.ndarray:
    """im2col with the image index last among the columns (NumPy): (N, C, H, W) ->
    (C * kh * kw, Ho * Wo * N), ``col[(c * kh + i) * kw + j, (y * Wo + x) * N + n]`` the
    element of the documented layout's column (n * Ho + y) * Wo + x.

    Same rows, columns permuted: a GEMM over them is the same product. Each kernel
    offset copies runs of Wo * N contiguous values, not Wo (a 13 x 13 output otherwise
    copies 13 values per NumPy inner loop). With a stride the runs come from the
    input's stride phases: offset (i, j) reads phase ((i dh) % sh, (j dw) % sw) of
    the padded input from its row (i dh) // sh and column (j dw) // sw on, so each
    phase is gathered once and every read after that is unit-stride.
    """
    n, c, h, w = x.shape
    ho, wo = g.out_size(h, w)
    rows = out.reshape(c, g.kh, g.kw, ho, wo, n)
    plane_h, plane_w = -(-(h + 2 * g.ph) // g.sh), -(-(w + 2 * g.pw) // g.sw)
    # Offset (i, j) reads phase ((i dh) % sh, (j dw) % sw) from row (i dh) // sh and
    # column (j dw) // sw on.
    reads: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    for i in range(g.kh):
        for j in range(g.kw):
            (a, r), (b, t) = divmod(i * g.dh, g.sh), divmod(j * g.dw, g.sw)
            reads.setdefault((r, t), []).append((i, j, a, b))

    def gather(r: int, t: int, c0: int, c1: int) -> None:  # rows of channels c0..c1
        phase = scratch("im2col.last", (c1 - c0, plane_h, plane_w, n), x.dtype, np)
        y0, y1, iy = valid_range(h, g.ph, g.sh, 1, r, plane_h)
        x0, x1, ix = valid_range(w, g.pw, g.sw, 1, t, plane_w)
        if (y0, y1, x0, x1) != (0, plane_h, 0, plane_w):
            phase.fill(0)  # the padding
        if y1 > y0 and x1 > x0:
            np.copyto(phase[:, y0:y1, x0:x1],
                      x[:, c0:c1, iy::g.sh, ix::g.sw][:, :, :y1 - y0, :x1 - x0]
                      .transpose(1, 2, 3, 0))
        if g.dh == g.dw == 1:  # offsets (r + a sh, t + b sw) read from row a, column b on
            s_c, s_h, s_w, s_n = phase.strides
            view = np.lib.stride_tricks.as_strided(
                phase, shape=(c1 - c0, len(range(r, g.kh, g.sh)), len(range(t, g.kw, g.sw)),
                              ho, wo, n),
                strides=(s_c, s_h, s_w, s_h, s_w, s_n))
            np.copyto(rows[c0:c1, r::g.sh, t::g.sw], view)
            return
        for i, j, a, b in reads[r, t]:
            np.copyto(rows[c0:c1, i, j], phase[:, a:a + ho, b:b + wo])

    _by_phase_and_channel(gather, sorted(reads), c, out.size)
    return out


def col2im_batch_last(col: np.ndarray, shape: tuple[int, int, int, int], g: Geometry,
                      out: np.ndarray) -> np.ndarray:
    """The adjoint of ``im2col_batch_last`` into ``out`` (N, C, H, W), overwritten: each
    pixel's terms added from 0 in kernel-offset order, as ``col2im`` adds them, so the
    same columns give the same sums bit for bit. The sums are taken in the output's
    stride phases (planes (H / sh, W / sw, N), so each offset's slab is a unit-stride
    add of Wo * N runs) and written back interleaved."""
    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    slabs = col.reshape(c, g.kh, g.kw, ho, wo, n)
    plane_h, plane_w = -(-h // g.sh), -(-w // g.sw)
    by_phase = offsets_by_phase(g, h, w, ho, wo)

    def accumulate(r: int, t: int, c0: int, c1: int) -> None:  # pixels [r::sh, t::sw]
        plane = scratch("col2im.last", (c1 - c0, plane_h, plane_w, n), col.dtype, np)
        plane.fill(0)
        for i, j, (ys, xs), (block_rows, block_cols) in by_phase.get((r, t), []):
            plane[:, block_rows, block_cols] += slabs[c0:c1, i, j, ys, xs]
        target = out[:, c0:c1, r::g.sh, t::g.sw]
        np.copyto(target, plane[:, :target.shape[2], :target.shape[3]].transpose(3, 0, 1, 2))

    every_phase = [(r, t) for r in range(g.sh) for t in range(g.sw)]  # unread ones: 0
    _by_phase_and_channel(accumulate, every_phase, c, out.size)
    return out


def _by_phase_and_channel(run: Callable[[int, int, int, int], None],
                          phases: list[tuple[int, int]], channels: int, elements: int) -> None:
    """``run(r, t, c0, c1)`` for each stride phase (r, t) of ``phases`` and channel, in
    parts at once: the units (phase, channel) are disjoint, and there are enough of them
    to share out evenly where the channels alone are few (conv1's three colours, 16
    phases)."""

    def units(u0: int, u1: int) -> None:
        for p in range(u0 // channels, -(-u1 // channels)):
            c0, c1 = max(u0 - p * channels, 0), min(u1 - p * channels, channels)
            run(*phases[p], c0, c1)

    parallel_parts(units, len(phases) * channels, elements)


_scratch = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: object, xp: types.ModuleType) -> Array:
    """A temporary of ``shape`` from a buffer reused across calls (NumPy, per thread).

    Its content is garbage; it stays valid until the next request for the same
    slot, so never return one from a layer. CuPy gets a fresh array: its
    memory pool already reuses device memory.
    """
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    if xp is not np:
        return xp.empty(shape, dtype=dt)
    nbytes = math.prod(shape) * dt.itemsize
    buffers: dict[str, np.ndarray] = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(nbytes, dtype=np.uint8)
        buffers[slot] = buffer
    return buffer[:nbytes].view(dt).reshape(shape)
