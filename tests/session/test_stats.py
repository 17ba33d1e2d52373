"""Statistics and histograms against NumPy computed here, on NumPy and CuPy."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.session.stats import compute_histogram, compute_stats, l2_norm


def _sample(xp, shape=(4, 5, 6), seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    a[a < -1] = 0
    return xp.asarray(a)


def test_stats_match_numpy(xp):
    a = _sample(xp)
    s = compute_stats(a)
    h = to_host(a).astype(np.float64)
    assert s.shape == (4, 5, 6) and s.count == 120 and s.dtype == "float32"
    assert s.min == pytest.approx(h.min()) and s.max == pytest.approx(h.max())
    assert s.mean == pytest.approx(h.mean(), rel=1e-12)
    assert s.std == pytest.approx(h.std(), rel=1e-6)  # squares are taken in float32
    assert s.l2 == pytest.approx(np.linalg.norm(h), rel=1e-6)
    assert s.max_abs == pytest.approx(np.abs(h).max())
    assert s.frac_zero == pytest.approx((h == 0).mean())
    assert s.nan == 0 and s.inf == 0 and s.finite


def test_stats_with_nonfinite(xp):
    a = np.arange(10, dtype=np.float32)
    a[2] = np.nan
    a[3] = np.inf
    a[4] = -np.inf
    s = compute_stats(xp.asarray(a))
    finite = np.array([0, 1, 5, 6, 7, 8, 9], np.float64)
    assert (s.nan, s.inf) == (1, 2) and not s.finite
    assert s.min == 0 and s.max == 9
    assert s.mean == pytest.approx(finite.mean()) and s.std == pytest.approx(finite.std())
    assert s.frac_zero == pytest.approx(0.1)


def test_stats_edge_cases(xp):
    s = compute_stats(xp.full((3,), np.nan, dtype=xp.float32))
    assert s.nan == 3 and np.isnan(s.min) and np.isnan(s.mean)
    s = compute_stats(xp.zeros((0, 4), dtype=xp.float32))
    assert s.count == 0 and s.shape == (0, 4)
    s = compute_stats(xp.full((1000,), 1e4, dtype=xp.float32))  # constant: std exactly 0
    assert s.std == 0 and s.mean == 1e4 and s.frac_zero == 0
    s = compute_stats(xp.asarray(np.array([3e30, -3e30], np.float32)))  # squares overflow f32
    assert s.l2 == pytest.approx(np.sqrt(2) * 3e30, rel=1e-6) and s.inf == 0
    s = compute_stats(xp.asarray(np.array([1, 0, 2], np.int64)))
    assert s.max == 2 and s.frac_zero == pytest.approx(1 / 3)


def test_histogram_counts(xp):
    a = _sample(xp, (1000,), seed=1)
    h = compute_histogram(a, bins=16)
    host = to_host(a)
    counts, edges = np.histogram(host, bins=16, range=(host.min(), host.max()))
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges, rtol=1e-6)
    assert h.total == 1000 and len(h.edges) == 17 and h.nonfinite == 0
    assert h.counts.dtype == np.int64 and isinstance(h.counts, np.ndarray)
    np.testing.assert_array_equal(h.heights, counts)


def test_histogram_log_and_nonfinite(xp):
    a = np.array([0, 0, 0, 1, np.nan, np.inf], np.float32)
    h = compute_histogram(xp.asarray(a), bins=2, log=True)
    assert h.nonfinite == 2 and h.total == 4
    np.testing.assert_array_equal(h.counts, [3, 1])
    np.testing.assert_allclose(h.heights, np.log10([4, 2]))


def test_histogram_constant_and_range(xp):
    h = compute_histogram(xp.full((10,), 2.0, dtype=xp.float32), bins=4)
    assert h.total == 10 and h.edges[0] < 2 < h.edges[-1]
    h = compute_histogram(xp.asarray(np.array([-5, 0.5, 5], np.float32)), bins=2,
                          value_range=(0.0, 1.0))
    assert h.total == 1  # values outside the range are not counted


def test_l2_norm(xp):
    a = _sample(xp)
    assert l2_norm(a) == pytest.approx(np.linalg.norm(to_host(a).astype(np.float64)))
    big = xp.asarray(np.array([3e20, -4e20], np.float32))  # squares overflow float32
    assert l2_norm(big) == pytest.approx(5e20, rel=1e-6)
    assert np.isnan(l2_norm(xp.asarray(np.array([1.0, np.nan], np.float32))))
    assert l2_norm(xp.asarray(np.array([1.0, np.inf], np.float32))) == np.inf
