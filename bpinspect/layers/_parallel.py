"""The NumPy work outside BLAS, split over the CPU's cores.

NumPy's element-wise loops and copies run on one core, while the GEMMs around
them use them all. Where a loop writes disjoint parts of its output (im2col's
channels, col2im's images), the parts can run at once on a small thread pool:
NumPy releases the GIL inside such loops. Each part computes exactly what the
single-threaded loop computes for those elements, so results are bit for bit
the same; scratch buffers are per thread (``_im2col.scratch``).

``BPINSPECT_NUM_THREADS`` sets the number of parts (1: no threads); by default
it is the number of CPUs this process may run on, at most 8.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["flat_parts", "parallel_parts", "workers"]

MIN_ELEMENTS = 1 << 16  # below this a part's work is less than handing it to a thread
CHEAP_PER_VALUE = 8  # an element-wise loop's values per unit of ``elements``
_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """How many parts the work is split into."""
    given = os.environ.get("BPINSPECT_NUM_THREADS", "")
    if given.strip().isdigit() and int(given) >= 1:
        return int(given)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def parallel_parts(run: Callable[[int, int], None], total: int, elements: int,
                   unit: int = 1) -> None:
    """``run(start, stop)`` over a split of ``range(total)`` into at most ``workers()``
    parts, at once on the pool; in one call when the work (``elements``: about one per
    value a loop reads or writes, per multiply-add of a GEMM) is under ``MIN_ELEMENTS``
    or one part is all there is.
    Handing a part to a thread and taking its result back costs some 40-100 us on a
    2-core VM, so work made of cheap loops or of many small NumPy calls counts less.
    The edges between parts are multiples of ``unit``, each the one nearest an even
    split (a GEMM's blocks of rows: 363 rows in units of 192 split 192 + 171, where
    whole units alone would give one part of 363). An exception in a part is raised
    here."""
    parts = min(workers(), -(-total // unit))
    if parts <= 1 or elements < MIN_ELEMENTS:
        run(0, total)
        return
    global _pool
    if _pool is None or _pool._max_workers < parts:  # noqa: SLF001 (its size, read only)
        _pool = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="bpinspect-part")
    inner = {unit * ((2 * total * k + parts * unit) // (2 * parts * unit))
             for k in range(1, parts)}  # unit * round(total * k / parts / unit)
    bounds = [0, *sorted(e for e in inner if 0 < e < total), total]
    errors = np.geterr()  # NumPy's error handling is per thread: the parts get the caller's

    def part(start: int, stop: int) -> None:
        with np.errstate(**errors):
            run(start, stop)

    futures = [_pool.submit(part, bounds[k], bounds[k + 1]) for k in range(1, len(bounds) - 1)]
    run(bounds[0], bounds[1])  # this thread does the first part
    for future in futures:
        future.result()


def flat_parts(run: Callable[..., None], *arrays: Any) -> bool:
    """``run(*parts)`` over matching ranges of the flattened ``arrays`` (NumPy,
    C-contiguous, one size: an element-wise loop and its output), split as
    ``parallel_parts`` does. False, running nothing, where the arrays are not all such
    (the caller then runs its loop whole)."""
    if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays):
        return False
    size = arrays[0].size
    if any(a.size != size for a in arrays):
        return False
    flat = [a.reshape(-1) for a in arrays]
    # One cheap loop per part: a split pays from about 512K values an array (ReLU at
    # batch 1, bench/threads.py: relu1's 290K values 1.4x slower split, relu3's 65K 2x).
    parallel_parts(lambda start, stop: run(*(f[start:stop] for f in flat)), size,
                   -(-size // CHEAP_PER_VALUE))
    return True
