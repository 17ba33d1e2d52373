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

DEFAULT_BINS = 32


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
