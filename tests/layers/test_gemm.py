"""add_product: out += a @ b through row blocks, checked against float64 products."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.layers import _gemm
from bpinspect.layers._gemm import add_product


@pytest.mark.parametrize("m, k, n", [(1, 1, 5), (33, 1, 7), (70, 3, 11), (64, 16, 9), (5, 40, 2)])
@pytest.mark.parametrize("transposed", [False, True])
def test_blocked_product_accumulates_onto_out(monkeypatch, m, k, n, transposed, xp) -> None:
    monkeypatch.setattr(_gemm, "SMALL", 0)  # take the blocked path at these sizes
    rng = np.random.default_rng(m * 100 + k)
    a = rng.standard_normal((k, m) if transposed else (m, k)).astype(np.float32)
    a = a.T if transposed else a  # a strided view, as dy.T in InnerProduct's backward
    b = rng.standard_normal((k, n)).astype(np.float32)
    start = rng.standard_normal((m, n)).astype(np.float32)
    expected = start.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    out = xp.array(start)
    add_product(out, xp.asarray(a), xp.asarray(b))
    got = out.get() if hasattr(out, "get") else out
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_an_fc6_sized_outer_product_at_batch_1() -> None:
    rng = np.random.default_rng(0)
    dy = rng.standard_normal((1, 1000)).astype(np.float32)
    x = rng.standard_normal((1, 2049)).astype(np.float32)
    out = np.ones((1000, 2049), np.float32)
    assert out.size >= _gemm.SMALL
    add_product(out, dy.T, x)
    np.testing.assert_allclose(out, 1.0 + np.outer(dy[0].astype(np.float64), x[0]),
                               rtol=1e-6, atol=1e-6)


SPLIT_SHAPES = [(130, 7, 300),  # columns split, a ragged last block
                (128, 1200, 3000),  # columns split, a long inner dimension
                (400, 9, 70),  # too few columns: rows split, a ragged last block
                (300, 9, 70),  # rows split into one ROW_ALIGN block and the rest
                (40, 5, 60),  # neither: one call
                (96, 50, 800)]  # add_product's transposed product: its rows split


def _blas_kernel() -> str | None:
    """The kernel threadpoolctl reports for NumPy's BLAS (OpenBLAS: "SkylakeX", ...)."""
    from threadpoolctl import threadpool_info

    kernels = [i.get("architecture") for i in threadpool_info() if i["user_api"] == "blas"]
    return kernels[0] if kernels else None


@pytest.mark.parametrize("rows_first", [True, False], ids=["rows-first", "direct"])
@pytest.mark.parametrize("m, k, n", SPLIT_SHAPES)
def test_products_in_parts_are_exact_and_do_not_depend_on_the_parts(monkeypatch, m, k, n,
                                                                     rows_first):
    from bpinspect.layers import _parallel

    monkeypatch.setattr(_gemm, "ROWS_FIRST_K", 1 if rows_first else 1 << 30)  # both ways
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 1)  # split even these sizes
    rng = np.random.default_rng(m + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32).T  # strided, as W.T or col.T
    start = rng.standard_normal((m, n)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)

    def products() -> tuple[np.ndarray, np.ndarray]:
        product = np.full((m, n), np.nan, dtype=np.float32)
        _gemm.matmul(a, b, product)
        total = start.copy()
        add_product(total, a, b)
        return product, total

    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
        results[threads] = products()
        product, total = results[threads]
        scale = np.sqrt(k)  # a sum of k unit normal products
        np.testing.assert_allclose(product, exact, rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(total, start + exact, rtol=1e-5, atol=1e-5 * scale)
        for again, first in zip(products(), results[threads], strict=True):  # deterministic
            np.testing.assert_array_equal(again.view(np.uint32), first.view(np.uint32))
    # Across numbers of parts: the same bits where row blocks split the products or
    # the kernel computes each column alone (see _gemm's docstring).
    columns_split = n >= 2 * _gemm.ALIGN * 2
    if columns_split and _blas_kernel() != "SkylakeX":
        return
    for threads in ("2", "3"):
        for got, want in zip(results[threads], results["1"], strict=True):
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_blas_runs_one_thread_in_a_product_and_as_before_after_it() -> None:
    from threadpoolctl import ThreadpoolController

    def blas_threads() -> list[int]:
        return [lib.num_threads for lib in
                ThreadpoolController().select(user_api="blas").lib_controllers]

    before = blas_threads()
    limit = _gemm._one_thread_blas()
    if limit is None:
        pytest.skip("threadpoolctl finds no BLAS it can set in this NumPy")
    with limit:
        assert blas_threads() == [1] * len(before)
    _gemm.matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32),
                 np.empty((3, 5), np.float32))
    assert blas_threads() == before


@pytest.mark.parametrize("m, k, n, b_transposed", [
    (4, 3, 5, False), (300, 1, 4000, False), (300, 2, 4000, False),
    (4, 3, 5, True), (96, 40, 800, True)])  # b = col.T: the transposed product
@pytest.mark.parametrize("rows_first", [True, False], ids=["rows-first", "direct"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * -0.0, meant
def test_onto_zero_writes_what_adding_onto_zeros_gives_without_reading_out(
        monkeypatch, m, k, n, b_transposed, rows_first) -> None:
    monkeypatch.setattr(_gemm, "ROWS_FIRST_K", 1 if rows_first else 1 << 30)
    rng = np.random.default_rng(k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    if b_transposed:
        b = np.ascontiguousarray(b.T).T
    a[0] = -0.0  # out[0, 0] sums only -0.0 products: onto zeros that is +0.0, not -0.0
    b[:, 0] = 1.0
    b[:, 1] = np.inf  # and inf * -0.0 is NaN
    added = np.zeros((m, n), np.float32)
    add_product(added, a, b)
    stale = np.full((m, n), 7.0, np.float32)
    add_product(stale, a, b, onto_zero=True)
    np.testing.assert_array_equal(stale.view(np.uint32), added.view(np.uint32))
    assert not np.signbit(stale[0, 0])
