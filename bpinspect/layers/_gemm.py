"""``out += a @ b`` for big ``out``: what Caffe's GEMM with beta = 1 does in one pass.

NumPy has no accumulating GEMM: ``out += a @ b`` writes the whole product to
a fresh temporary (page faults included) and reads it back. For a weight diff
such as fc6's (4096 x 9216, 151 MB) that traffic is most of the layer's
backward. Here the product goes through a small reused buffer, a block of
rows at a time, so it stays in cache and ``out`` is read and written once.

With one row in the inner dimension (batch 1: the weight diff is an outer
product), OpenBLAS's GEMM is several times slower than a broadcast multiply,
so that case is a multiply.

On CuPy it is ``out += a @ b``: the device has the bandwidth, and cuBLAS has
no such slow case.
"""

from __future__ import annotations

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.layers._im2col import scratch

BLOCK_ROWS = 128  # rows of the product per block: 128 x 9216 floats, 4.7 MB (in L3; fewer,
# larger GEMM calls: fc6's weight diff at batch 16 about 15 % faster than with 32)
SMALL = 1 << 20  # elements of ``out`` below which the temporary does not matter


def add_product(out: Array, a: Array, b: Array) -> None:
    """``out += a @ b`` for 2-D ``a`` (m, k), ``b`` (k, n), ``out`` (m, n)."""
    xp = get_array_module(out)
    if xp is not np or out.size < SMALL:
        out += a @ b
        return
    m, k = a.shape
    n = b.shape[1]
    block = scratch("gemm.block", (BLOCK_ROWS, n), np.result_type(a, b), np)
    for r0 in range(0, m, BLOCK_ROWS):  # blocks of rows of a matrix, not pixels or items
        r1 = min(r0 + BLOCK_ROWS, m)
        part = block[: r1 - r0]
        if k == 1:
            np.multiply(a[r0:r1], b, out=part)  # (rows, 1) * (1, n): the outer product
        else:
            np.matmul(a[r0:r1], b, out=part)
        np.add(out[r0:r1], part, out=out[r0:r1])
