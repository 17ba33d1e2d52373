"""Max pooling's forward in NumPy: each window's first strict maximum and the flat
index of its winner, as Caffe's loop finds them (see ``pooling``'s docstring).

One pass per window offset (i, j), in row-major order: ``best = fmax(candidate,
best)`` (NaN never wins) and, where the candidate is strictly greater, the
offset ``i * kw + j`` is kept. Offsets only grow from pass to pass, so the
winner's offset is the largest offset that won: ``held = max(held, wins * o)``.

Where the candidates come from. Gathering each offset's candidates from the
image is a strided copy, half the forward (pool1 of CaffeNet). Instead the
image is laid out once as its stride phases, on a grid of (Ho + (kh - 1) // sh)
x (Wo + (kw - 1) // sw) cells per plane, NaN where the window reaches past the
image (so padding and clipped cells never win, as in Caffe): then the
candidates of offset (i, j) are the flat phase ``(i % sh, j % sw)`` shifted by
``(i // sh) * grid width + j // sw``, a contiguous run, and every pass works
on whole contiguous arrays. The grid's extra row and column (and the planes'
tails) hold cells of no window; they are dropped at the end. Where the grid
is much larger than the output (a global pooling: one cell out of H x W), the
candidates are gathered instead.

The planes are taken a cache-sized block at a time, the blocks split over the
threads (``_parallel``); each plane is computed alone, so the result does not
depend on the split.
"""

from __future__ import annotations

import numpy as np

from bpinspect.layers._im2col import Geometry, kernel_offsets, scratch
from bpinspect.layers._parallel import parallel_parts

__all__ = ["max_pool"]

FLT_MAX = 3.4028234663852886e38  # Caffe starts every max at -FLT_MAX, in any Dtype
BLOCK_CELLS = 1 << 17  # top cells per block of planes: its passes stay in cache
GRID_WASTE = 2  # the phase grid is used while it has at most this many cells per top cell
CELLS_PER_ELEMENT = 2  # top cells per unit of parallel_parts' work (its MIN_ELEMENTS)


def max_pool(x: np.ndarray, g: Geometry, best: np.ndarray, argmax: np.ndarray) -> None:
    """``best`` (N, C, Ho, Wo) = the windows' maxima of ``x`` (N, C, H, W), -FLT_MAX
    where nothing in a window is above it, and ``argmax`` (int64, the same shape) =
    the flat index ``h * W + w`` of each window's winner in its plane, -1 for none."""
    n, c, h, w = x.shape
    ho, wo = best.shape[2:]
    planes = n * c
    grid = (ho + (g.kh - 1) // g.sh, wo + (g.kw - 1) // g.sw)
    on_grid = grid[0] * grid[1] <= GRID_WASTE * ho * wo
    small = np.uint8 if g.kh * g.kw <= 255 else np.int32  # window offsets
    table = np.asarray([(o // g.kw) * w + o % g.kw for o in range(g.kh * g.kw)], np.int64)
    start = ((np.arange(ho) * g.sh - g.ph)[:, None] * w
             + (np.arange(wo) * g.sw - g.pw)[None, :]).reshape(-1)  # window corners
    planes_x = x.reshape(planes, h, w)
    planes_best = best.reshape(planes, ho, wo)
    planes_argmax = argmax.reshape(planes, ho * wo)
    offsets = None if on_grid else list(kernel_offsets(g, h, w, ho, wo))
    per_block = max(1, BLOCK_CELLS // (ho * wo))

    def block(p0: int, p1: int) -> None:  # planes p0..p1: disjoint, each alone
        if on_grid:
            held = _maxima_on_grid(planes_x[p0:p1], g, grid, planes_best[p0:p1], small)
        else:
            held = _maxima_gathered(planes_x[p0:p1], offsets, g.kw, planes_best[p0:p1], small)
        # The flat index of each winner, -1 where nothing won. An intp index: take
        # converts a uint8 one itself, four times slower; "clip", as "raise" buffers.
        flat = planes_argmax[p0:p1]
        index = scratch("maxpool.index", flat.shape, np.intp, np)
        np.copyto(index, held.reshape(flat.shape))
        np.take(table, index, out=flat, mode="clip")
        flat += start
        np.copyto(flat, -1, where=planes_best[p0:p1].reshape(flat.shape) == -FLT_MAX)

    def blocks(start: int, stop: int) -> None:  # a thread's planes, a block at a time
        for p0 in range(start, stop, per_block):
            block(p0, min(p0 + per_block, stop))

    # Split by plane: even parts. The work is kh x kw passes of a few NumPy calls over
    # the cells, small calls where the planes are few: a split pays from about 128K
    # cells (bench/threads.py at batch 1, two parts: pool5's 12.5K cells 2.8x slower
    # split, pool1's 75K 1.6x), so a cell counts as half an element.
    cells = planes * (grid[0] * grid[1] if on_grid else ho * wo)
    parallel_parts(blocks, planes, -(-cells // CELLS_PER_ELEMENT))


def _take(candidate: np.ndarray, best: np.ndarray, held: np.ndarray, offset: int,
          small: type, work: tuple[np.ndarray, np.ndarray]) -> None:
    """One offset's pass: ``best`` the running maximum, ``held`` the offset of its
    first strict winner (0 to begin with; ``work``: a bool and a ``small`` buffer)."""
    if offset == 0:  # held is already 0 wherever this pass wins
        np.fmax(candidate, best, out=best)
        return
    wins, step = work
    np.greater(candidate, best, out=wins)  # strict: the first maximum stays
    np.fmax(candidate, best, out=best)  # = where(wins, candidate, best); NaN never wins
    np.multiply(wins, small(offset), out=step)
    np.maximum(held, step, out=held)


def _maxima_on_grid(x: np.ndarray, g: Geometry, grid: tuple[int, int], best: np.ndarray,
                    small: type) -> np.ndarray:
    """``best`` (P, Ho, Wo) of planes ``x`` (P, H, W) through the phase grid; returns
    the winners' offsets (P, Ho, Wo)."""
    count, h, w = x.shape
    ho, wo = best.shape[1:]
    hq, wq = grid
    length = count * hq * wq
    tail = (g.kh - 1) // g.sh * wq + (g.kw - 1) // g.sw  # the last plane's shifted reach
    phases = {}
    for a in range(min(g.kh, g.sh)):
        for b in range(min(g.kw, g.sw)):
            flat = scratch(f"maxpool.phase.{a}.{b}", (length + tail,), x.dtype, np)
            _lay_phase(x, a, b, g, flat[:length].reshape(count, hq, wq))
            phases[a, b] = flat
    running = scratch("maxpool.best", (length,), x.dtype, np)
    running.fill(-FLT_MAX)
    held = scratch("maxpool.held", (length,), small, np)
    held.fill(0)
    work = (scratch("maxpool.wins", (length,), np.bool_, np),
            scratch("maxpool.step", (length,), small, np))
    for i in range(g.kh):
        for j in range(g.kw):
            shift = i // g.sh * wq + j // g.sw
            candidate = phases[i % g.sh, j % g.sw][shift: shift + length]
            _take(candidate, running, held, i * g.kw + j, small, work)
    np.copyto(best, running.reshape(count, hq, wq)[:, :ho, :wo])
    return held.reshape(count, hq, wq)[:, :ho, :wo]


def _lay_phase(x: np.ndarray, a: int, b: int, g: Geometry, out: np.ndarray) -> None:
    """``out[p, q, r]`` = the padded image's cell (q sh + a, r sw + b) of plane p: x's
    cell (q sh + a - ph, r sw + b - pw) where that is in the image, NaN elsewhere."""
    h, w = x.shape[1:]
    q0, q1 = _inside(a, g.sh, g.ph, h, out.shape[1])
    r0, r1 = _inside(b, g.sw, g.pw, w, out.shape[2])
    out[:, :q0] = np.nan
    out[:, q1:] = np.nan
    out[:, q0:q1, :r0] = np.nan
    out[:, q0:q1, r1:] = np.nan
    top, left = q0 * g.sh + a - g.ph, r0 * g.sw + b - g.pw
    out[:, q0:q1, r0:r1] = x[:, top::g.sh, left::g.sw][:, : q1 - q0, : r1 - r0]


def _inside(phase: int, stride: int, pad: int, size: int, cells: int) -> tuple[int, int]:
    """The cells q (of ``cells``) whose padded coordinate q stride + phase lies in the
    image: pad <= q stride + phase < size + pad, as a range [q0, q1)."""
    q0 = min(cells, max(0, -((phase - pad) // stride)))
    q1 = min(cells, max(q0, -(-(size + pad - phase) // stride)))
    return q0, q1


def _maxima_gathered(x: np.ndarray, offsets: list, kw: int, best: np.ndarray,
                     small: type) -> np.ndarray:
    """``best`` (P, Ho, Wo) of planes ``x`` (P, H, W), each offset's candidates gathered
    (``kernel_offsets``: clipped to the image); returns the winners' offsets."""
    best.fill(-FLT_MAX)
    held = scratch("maxpool.held", best.shape, small, np)
    held.fill(0)
    for i, j, (ys, xs), (rows, cols) in offsets:
        sub = best[:, ys, xs]
        candidate = scratch("maxpool.candidate", sub.shape, x.dtype, np)
        np.copyto(candidate, x[:, rows, cols])  # contiguous: the passes are fast
        work = (scratch("maxpool.wins", sub.shape, np.bool_, np),
                scratch("maxpool.step", sub.shape, small, np))
        _take(candidate, sub, held[:, ys, xs], i * kw + j, small, work)
    return held
