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
