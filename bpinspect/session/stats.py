"""Statistics and histograms of a blob's data or diff.

Both run with the array module of the array (CuPy on the GPU), and only a few
scalars or a bins-long vector cross to the host. Non-finite values are
counted apart and left out of min/max/mean/std and the histogram, so one NaN
does not hide what the rest of the blob looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpinspect.backend import Array, get_array_module, to_host
from bpinspect.layers._parallel import parallel_parts

DEFAULT_BINS = 32
BLOCK = 1 << 16  # elements per block of the one-pass NumPy statistics: stays in cache
BIG = 1 << 20  # elements from which NumPy arrays take the blocked, threaded paths


@dataclass(frozen=True)
class BlobStats:
    shape: tuple[int, ...]
    dtype: str
    count: int
    min: float  # over finite values; nan when there are none
    max: float
    mean: float
    std: float
    l2: float  # over finite values
    max_abs: float
    frac_zero: float
    nan: int
    inf: int

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0


@dataclass(frozen=True)
class Histogram:
    counts: np.ndarray  # int64, one per bin, finite values only
    edges: np.ndarray  # float64, bins + 1
    log: bool  # heights on a log scale: log10(1 + count)
    nonfinite: int

    @property
    def heights(self) -> np.ndarray:
        if self.log:
            return np.log10(1.0 + self.counts)
        return self.counts.astype(np.float64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def compute_stats(a: Array) -> BlobStats:
    """Shape, min, max, mean, std, L2 norm, zeros, NaN and Inf counts of ``a``.

    Sums accumulate in float64 (float32 sums of millions of values drift);
    a few passes over ``a`` and no float64 copy of it, unless it has
    non-finite values or values too large to square in its own dtype.
    """
    xp = get_array_module(a)
    shape = tuple(int(d) for d in a.shape)
    count = int(a.size)
    dtype = str(a.dtype)
    nan = float("nan")
    if xp is np and count >= BIG and a.dtype.kind == "f":
        fast = _blocked_stats(a)
        if fast is not None:
            return fast
    if count == 0:
        return BlobStats(shape, dtype, 0, nan, nan, nan, nan, 0.0, nan, 0.0, 0, 0)
    x = a.ravel()
    zeros = count - int(xp.count_nonzero(x))
    total = float(x.sum(dtype=xp.float64))
    nan_count = inf_count = 0
    if not np.isfinite(total):  # a finite sum of float32 values in float64 means all finite
        nan_count = int(xp.isnan(x).sum())
        inf_count = int(xp.isinf(x).sum())
        x = x[xp.isfinite(x)]
        if x.size == 0:
            return BlobStats(
                shape, dtype, count, nan, nan, nan, nan, 0.0, nan, zeros / count,
                nan_count, inf_count,
            )
        total = float(x.sum(dtype=xp.float64))
    n = int(x.size)
    lo, hi = (float(v) for v in to_host(xp.stack([x.min(), x.max()])))
    max_abs = max(abs(lo), abs(hi))
    if x.dtype.itemsize < 8 and max_abs > 1e18:  # would overflow when squared in float32
        x = x.astype(xp.float64)
    sumsq = float(xp.square(x).sum(dtype=xp.float64))
    mean = total / n
    var = max(sumsq / n - mean * mean, 0.0)
    if mean != 0.0 and var < 1e-6 * mean * mean:  # cancellation: recompute directly
        var = float(xp.square(x.astype(xp.float64) - mean).mean())
    return BlobStats(
        shape=shape,
        dtype=dtype,
        count=count,
        min=lo,
        max=hi,
        mean=mean,
        std=var**0.5,
        l2=sumsq**0.5,
        max_abs=max_abs,
        frac_zero=zeros / count,
        nan=nan_count,
        inf=inf_count,
    )


def _blocked_stats(a: np.ndarray) -> BlobStats | None:
    """compute_stats of a big, finite float array in one pass over memory: each block
    of ``BLOCK`` values gives its zeros, sum, min, max and sum of squares while in
    cache, blocks split over the cores; the block sums are then summed in block order
    (the same figures whatever the threads; the float64 sums differ from one sum over
    the whole array only by rounding). None where the array needs the general path
    (non-finite values, squares that overflow, a variance lost to cancellation)."""
    x = a.ravel()
    count = int(x.size)
    blocks = -(-count // BLOCK)
    nonzero = np.empty(blocks, dtype=np.int64)
    sums = np.empty(blocks, dtype=np.float64)
    sumsqs = np.empty(blocks, dtype=np.float64)
    lows = np.empty(blocks, dtype=x.dtype)
    highs = np.empty(blocks, dtype=x.dtype)

    def run(b0: int, b1: int) -> None:
        square = np.empty(BLOCK, dtype=x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # such arrays are redone below
            for b in range(b0, b1):
                block = x[b * BLOCK:(b + 1) * BLOCK]
                nonzero[b] = np.count_nonzero(block)
                sums[b] = block.sum(dtype=np.float64)
                lows[b], highs[b] = block.min(), block.max()
                sq = np.square(block, out=square[:block.size])
                sumsqs[b] = sq.sum(dtype=np.float64)

    parallel_parts(run, blocks, count)
    total = float(sums.sum())
    if not np.isfinite(total):  # a non-finite value: counted apart by the general path
        return None
    lo, hi = float(lows.min()), float(highs.max())
    max_abs = max(abs(lo), abs(hi))
    if x.dtype.itemsize < 8 and max_abs > 1e18:  # squares overflow float32
        return None
    sumsq = float(sumsqs.sum())
    mean = total / count
    var = max(sumsq / count - mean * mean, 0.0)
    if mean != 0.0 and var < 1e-6 * mean * mean:  # cancellation: the direct formula
        return None
    return BlobStats(shape=tuple(int(d) for d in a.shape), dtype=str(a.dtype), count=count,
                     min=lo, max=hi, mean=mean, std=var**0.5, l2=sumsq**0.5,
                     max_abs=max_abs, frac_zero=(count - int(nonzero.sum())) / count,
                     nan=0, inf=0)


def _blocked_histogram(x: np.ndarray, bins: int,
                       value_range: tuple[float, float] | None) -> tuple[np.ndarray,
                                                                        np.ndarray, int]:
    """np.histogram of the finite values of a big flat array, in parts over the cores:
    (counts, edges, non-finite count). Each value falls in the bin it falls in for the
    whole array (np.histogram bins each value alone), so the summed counts are exactly
    its counts; non-finite values lie outside any finite range and are not counted."""
    count = int(x.size)
    blocks = -(-count // BLOCK)
    finite = np.empty(blocks, dtype=np.int64)
    lows = np.full(blocks, np.inf)
    highs = np.full(blocks, -np.inf)

    def extremes(b0: int, b1: int) -> None:
        for b in range(b0, b1):
            block = x[b * BLOCK:(b + 1) * BLOCK]
            lo, hi = block.min(), block.max()
            if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN or Inf in this block
                block = block[np.isfinite(block)]
                lo, hi = (block.min(), block.max()) if block.size else (np.inf, -np.inf)
            finite[b] = block.size
            lows[b], highs[b] = lo, hi

    parallel_parts(extremes, blocks, count)
    nonfinite = count - int(finite.sum())
    if value_range is None:
        lo, hi = (float(lows.min()), float(highs.max())) if nonfinite < count else (0.0, 0.0)
    else:
        lo, hi = value_range
    if lo == hi:  # a constant blob: one visible bar in the middle
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.histogram_bin_edges(x[:0], bins=bins, range=(lo, hi))
    parts: dict[int, np.ndarray] = {}

    def histogram(b0: int, b1: int) -> None:
        binning = _Binning(x.dtype, lo, hi, edges)
        counts = np.zeros(bins, dtype=np.int64)
        for b in range(b0, b1):
            counts += binning.counts(x[b * BLOCK:(b + 1) * BLOCK])
        parts[b0] = counts

    parallel_parts(histogram, blocks, count)
    return sum(parts.values()), edges, nonfinite


class _Binning:
    """np.histogram's own steps for equal bins over (lo, hi), one block of at most
    ``BLOCK`` values at a time, in buffers made once, so every value gets NumPy's
    bin: the values in range; index = (x - lo) / (hi - lo) * bins truncated, in
    NumPy's dtypes; x at hi into the last bin; one bin down where x is below the
    bin's left edge, else one up where it is at or past its right edge (never past
    the last bin). NumPy allocates a dozen temporaries per block and moves indices
    through boolean masks, which takes most of its time.

    Both corrections are read off the first index: where NumPy steps down, x is
    below that bin's left edge, so below its right edge too, and NumPy's step-up
    test (on the lowered index, against the same edge) fails. So the step-up test
    can use the unlowered index, with +inf as the last bin's right edge."""

    def __init__(self, dtype: np.dtype, lo: float, hi: float, edges: np.ndarray) -> None:
        self.lo, self.hi, self.bins = lo, hi, edges.size - 1
        self.left = edges[:-1].copy()
        self.right = np.append(edges[1:-1], np.inf).astype(edges.dtype)
        # As NumPy: the differences in the array's dtype, over a float64 width.
        self.diff_type = np.result_type(dtype, lo)
        self.width = np.subtract(hi, lo, dtype=np.result_type(hi, lo))
        position_type = np.result_type(self.diff_type, self.width)
        self.keep = np.empty(BLOCK, dtype=np.bool_)
        self.down = np.empty(BLOCK, dtype=np.bool_)
        self.up = np.empty(BLOCK, dtype=np.bool_)
        self.step = np.empty(BLOCK, dtype=np.int8)
        self.diff = np.empty(BLOCK, dtype=self.diff_type)
        self.position = np.empty(BLOCK, dtype=position_type)
        self.index = np.empty(BLOCK, dtype=np.intp)
        self.edge = np.empty(BLOCK, dtype=edges.dtype)

    def counts(self, block: np.ndarray) -> np.ndarray:
        m = block.size
        keep, up = self.keep[:m], self.up[:m]
        np.greater_equal(block, self.lo, out=keep)
        np.less_equal(block, self.hi, out=up)
        keep &= up
        if not keep.all():
            block = block[keep]
            m = block.size
        diff, position, index, edge, down, up, step = (
            a[:m] for a in (self.diff, self.position, self.index, self.edge, self.down,
                            self.up, self.step))
        np.subtract(block, self.lo, out=diff, dtype=self.diff_type)
        np.copyto(position, diff)  # exact; then the division as NumPy's, in its dtype
        np.divide(position, self.width, out=position)
        np.multiply(position, self.bins, out=position)
        np.copyto(index, position, casting="unsafe")  # astype(intp): truncation
        np.minimum(index, self.bins - 1, out=index)  # x at hi (index = bins)
        # index is in [0, bins - 1] (x >= lo = the first edge), so "clip" never
        # clips; it takes no buffered path, as "raise" does.
        np.take(self.left, index, out=edge, mode="clip")
        np.less(block, edge, out=down)
        np.take(self.right, index, out=edge, mode="clip")
        np.greater_equal(block, edge, out=up)
        np.subtract(up.view(np.int8), down.view(np.int8), out=step)
        index += step
        return np.bincount(index, minlength=self.bins)


def compute_histogram(
    a: Array,
    bins: int = DEFAULT_BINS,
    log: bool = False,
    value_range: tuple[float, float] | None = None,
) -> Histogram:
    """``bins`` equal-width bins over the finite values (or ``value_range``)."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    xp = get_array_module(a)
    x = a.ravel()
    if xp is np and x.size >= BIG and x.dtype.kind == "f":
        counts, edges, nonfinite = _blocked_histogram(x, bins, value_range)
        return Histogram(counts=np.asarray(counts, dtype=np.int64),
                         edges=np.asarray(edges, dtype=np.float64), log=log,
                         nonfinite=nonfinite)
    finite = xp.isfinite(x)
    nonfinite = int(x.size - int(finite.sum()))
    if nonfinite:
        x = x[finite]
    if value_range is None:
        if x.size:
            lo, hi = (float(v) for v in to_host(xp.stack([x.min(), x.max()])))
        else:
            lo, hi = 0.0, 0.0
    else:
        lo, hi = value_range
    if lo == hi:  # a constant blob: one visible bar in the middle
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = xp.histogram(x, bins=bins, range=(lo, hi))
    return Histogram(
        counts=to_host(counts).astype(np.int64),
        edges=to_host(edges).astype(np.float64),
        log=log,
        nonfinite=nonfinite,
    )


def l2_norm(a: Array) -> float:
    """The L2 norm, accumulated in float64 (NaN when ``a`` holds a NaN)."""
    xp = get_array_module(a)
    x = a.ravel()
    # Squares in the array's dtype, summed in float64: no float64 copy of a big blob.
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled below
        sumsq = float(xp.square(x).sum(dtype=xp.float64))
    if x.dtype.itemsize < 8 and sumsq == float("inf") and bool(xp.isfinite(x).all()):
        sumsq = float(xp.square(x.astype(xp.float64)).sum())  # a square overflowed float32
    return sumsq**0.5
