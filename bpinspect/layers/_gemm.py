"""The layers' GEMMs, ``out = a @ b`` and ``out += a @ b``: on the CPU, each split
over bpinspect's own threads (``_parallel``) with the BLAS on one thread.

Why not the BLAS's own threads. After a GEMM, OpenBLAS's worker threads spin
for a while, waiting for the next one. On a machine with few cores they hold
the cores that the NumPy work after the GEMM splits itself over (col2im, the
bias pass, pooling), and that work runs at about half speed: col2im of
CaffeNet's conv2 at batch 16 takes 27 ms right after a GEMM, 13 ms with the
BLAS threads asleep. So the layers hand each GEMM to the same pool as the rest
of their work, a one-thread BLAS call per part, and no thread spins. The BLAS
is told so through threadpoolctl, for the length of the call; where it finds
no BLAS it can set, the GEMM runs whole, as NumPy runs it.

Bits. The parts are blocks of ``out``'s columns (edges at multiples of
``ALIGN``) or rows (of ``ROW_ALIGN``), so each part's rows and columns are
whole tiles of the BLAS kernel. With OpenBLAS's AVX-512 kernel (SkylakeX, what
NumPy picks on such a CPU) each part then computes its elements as a one-thread
GEMM over the whole matrices computes them, and the result does not depend on
the number of parts. Its AVX2 kernel (Haswell, what ``OPENBLAS_CORETYPE=Haswell``
forces) keeps that for row blocks, which is why rows are aligned to 24 as well,
but computes the last columns before a block's edge in another order: there a
column split can move the last bit of some elements with the number of parts
(measured: a (128, 1200) x (1200, 3000) product split at any multiple of 64).
For a given number of parts the result is always the same. A test checks each
of these, where it holds.

``out += a @ b``. NumPy has no accumulating GEMM: ``out += a @ b`` writes the
whole product to a fresh temporary (page faults included) and reads it back.
For a weight diff such as fc6's (4096 x 9216, 151 MB) that traffic is most of
the layer's backward. Here a big ``out`` takes the product a block of rows at a
time through a small reused buffer, so it stays in cache and ``out`` is read
and written once. With one row in the inner dimension (batch 1: the weight
diff is an outer product), OpenBLAS's GEMM is several times slower than a
broadcast multiply, so that case is a multiply.

On CuPy both are the plain expressions: the device has the bandwidth, and
cuBLAS has no such slow case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.layers._im2col import scratch
from bpinspect.layers._parallel import parallel_parts, workers

__all__ = ["add_product", "matmul"]

ALIGN = 64  # edges of column parts: a multiple of the BLAS kernels' column tiles
ROW_ALIGN = 192  # edges of row parts: a multiple of 64 and of 24, the AVX2 kernel's row tile
BLOCK_ROWS = 128  # rows of the product per block: 128 x 9216 floats, 4.7 MB (in L3; fewer,
# larger GEMM calls: fc6's weight diff at batch 16 about 15 % faster than with 32)
SMALL = 1 << 20  # elements of ``out`` below which the temporary does not matter
_UNSET: Any = object()
_blas: Any = _UNSET  # threadpoolctl's handle on the BLAS NumPy uses, None where it has none
ROWS_FIRST_K = 1024  # inner size from which a conv weight diff runs as its transpose


def _one_thread_blas() -> Any:
    """The context that runs the BLAS on one thread, or None where it cannot be set."""
    global _blas
    if _blas is _UNSET:
        from threadpoolctl import ThreadpoolController  # numpy (and its BLAS) is loaded

        found = ThreadpoolController().select(user_api="blas")
        _blas = found if found.lib_controllers else None
    return None if _blas is None else _blas.limit(limits=1)


def _split(run: Callable[[slice, slice], None], m: int, n: int, k: int,
           row_align: int = ROW_ALIGN, columns: bool = True) -> None:
    """``run(rows, cols)`` over blocks of an (m, n) product with inner size k, with the
    BLAS on one thread: blocks of columns with edges at multiples of ``ALIGN``, where
    there are enough of them for every part (and ``columns``), else of rows, edges at
    multiples of ``row_align`` (two parts from 193 rows on: conv1's weight diff, 363
    rows at batch 16, ran on one core when a part had to be two units); in one call
    where the BLAS cannot be set to one thread."""
    everything = slice(0, None)
    limit = _one_thread_blas()
    if limit is None:
        run(everything, everything)
        return
    with limit:
        if columns and n >= 2 * ALIGN * workers():
            parallel_parts(lambda c0, c1: run(everything, slice(c0, c1)), n, m * n * k,
                           unit=ALIGN)
        else:
            parallel_parts(lambda r0, r1: run(slice(r0, r1), everything), m, m * n * k,
                           unit=row_align)


def matmul(a: Array, b: Array, out: Array) -> None:
    """``out = a @ b`` for 2-D ``a`` (m, k), ``b`` (k, n) and ``out`` (m, n), written in
    place (``out`` may be a view with unit stride along its rows)."""
    xp = get_array_module(out)
    if xp is not np:
        xp.matmul(a, b, out=out)
        return
    _split(lambda rows, cols: np.matmul(a[rows], b[:, cols], out=out[rows, cols]),
           *out.shape, a.shape[1])


def add_product(out: Array, a: Array, b: Array, onto_zero: bool = False) -> None:
    """``out += a @ b`` for 2-D ``a`` (m, k), ``b`` (k, n), ``out`` (m, n); with
    ``onto_zero``, ``out``'s values stand for zeros and it gets ``0 + a @ b`` (the same
    bits as adding onto zeros) without being read (``Blob.diff_to_accumulate``)."""
    xp = get_array_module(out)
    if xp is not np:
        if onto_zero:
            xp.add(a @ b, 0, out=out)
        else:
            out += a @ b
        return
    (m, k), n = a.shape, out.shape[1]
    if out.size >= SMALL:  # parts of whole rows, each through its cache-sized blocks
        _split(lambda rows, _: _add_in_row_blocks(out, a, b, rows, onto_zero), m, n, k,
               row_align=BLOCK_ROWS, columns=False)
        return

    if m < n and k >= ROWS_FIRST_K and a.flags.c_contiguous and b.T.flags.c_contiguous:
        _add_transposed_product(out, a, b, onto_zero)  # a conv weight diff
        return
    if onto_zero and k > 1:  # as in _add_in_row_blocks: the GEMM's sum is 0 + a @ b
        matmul(a, b, out)
        return

    def part(rows: slice, cols: slice) -> None:
        product = a[rows] @ b[:, cols]
        if onto_zero:
            np.add(product, 0, out=out[rows, cols])
        else:
            out[rows, cols] += product

    _split(part, m, n, k)


def _add_transposed_product(out: np.ndarray, a: np.ndarray, b: np.ndarray,
                            onto_zero: bool) -> None:
    """``out += a @ b`` (or ``0 + a @ b``) through ``(a @ b)^T = b^T @ a^T``, for ``a`` and
    ``b^T`` row-major: a convolution's weight diff ``dY @ col^T``, whose rows (the
    output channels) are fewer than its columns. With a long inner dimension (a batch
    of images) OpenBLAS's AVX-512 kernel runs that product 10-15 % faster with the many
    rows first (conv1, conv2 and conv5 of CaffeNet at batch 16: 12.0 -> 11.1, 11.1 ->
    9.7, 3.8 -> 3.3 ms, transpose-add included). With a short one (one image: conv2 to
    conv5 at batch 1, k = 729 and 169) the transpose-add costs more than it saves: the
    plain product, written in place, is 1-2 ms faster per layer there (AVX2 kernel, Zen
    3 EPYC), so add_product takes this way from ``ROWS_FIRST_K`` on. The parts are
    blocks of the transposed product's rows; each element is the same dot product."""
    (m, k), n = a.shape, out.shape[1]
    product = scratch("gemm.transposed", (n, m), np.result_type(a, b), np)
    _split(lambda rows, _: np.matmul(b.T[rows], a.T, out=product[rows]), n, m, k,
           columns=False)
    laid = product.T

    def rows(r0: int, r1: int) -> None:
        np.add(laid[r0:r1], 0 if onto_zero else out[r0:r1], out=out[r0:r1])

    parallel_parts(rows, m, out.size)


def _add_in_row_blocks(out: np.ndarray, a: np.ndarray, b: np.ndarray, rows: slice,
                       onto_zero: bool) -> None:
    """``out[rows] += a[rows] @ b`` (``onto_zero``: ``0 + a @ b``), BLOCK_ROWS rows at
    a time through a reused buffer (this thread's).

    Onto zeros with an inner dimension over 1 the GEMM writes ``out`` itself: a BLAS
    sum starts from +0, so it is ``0 + a @ b`` to the bit, signed zeros included (a
    test checks it), and the buffer's two passes are saved."""
    start, stop, _ = rows.indices(out.shape[0])
    block = scratch("gemm.block", (BLOCK_ROWS, b.shape[1]), np.result_type(a, b), np)
    for r0 in range(start, stop, BLOCK_ROWS):  # blocks of rows of a matrix, not pixels
        r1 = min(r0 + BLOCK_ROWS, stop)
        if onto_zero and a.shape[1] > 1:
            np.matmul(a[r0:r1], b, out=out[r0:r1])
            continue
        part = block[: r1 - r0]
        if a.shape[1] == 1:
            np.multiply(a[r0:r1], b, out=part)  # (rows, 1) * (1, n): the outer product
        else:
            np.matmul(a[r0:r1], b, out=part)
        if onto_zero:
            np.add(part, 0, out=out[r0:r1])  # -0.0 products become +0.0, as onto zeros
        else:
            np.add(out[r0:r1], part, out=out[r0:r1])
