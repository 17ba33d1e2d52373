"""Statistics and histograms against NumPy computed here, on NumPy and CuPy."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.session import stats
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


def _big(seed=0):
    """A float32 array past stats.BIG, with zeros: the blocked NumPy paths."""
    a = np.random.default_rng(seed).standard_normal(stats.BIG + 12345).astype(np.float32)
    a[a < -1.5] = 0
    return a.reshape(-1, 5) if a.size % 5 == 0 else a


def _general(monkeypatch, fn, *args, **kwargs):
    """``fn`` with the blocked paths off: the general code."""
    with monkeypatch.context() as m:
        m.setattr(stats, "BIG", 1 << 62)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_blocked_stats_match_the_general_path(monkeypatch, threads):
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
    a = _big()
    fast, general = compute_stats(a), _general(monkeypatch, compute_stats, a)
    # Counts and extremes exactly; the float64 sums in block order, to rounding.
    for field in ("shape", "dtype", "count", "min", "max", "max_abs", "frac_zero", "nan",
                  "inf"):
        assert getattr(fast, field) == getattr(general, field), field
    for field in ("mean", "std", "l2"):
        assert getattr(fast, field) == pytest.approx(getattr(general, field), rel=1e-12)
    assert fast == compute_stats(a)  # the same figures on every call
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", "1")
    assert compute_stats(a) == fast  # and whatever the threads


def test_blocked_stats_hand_nonfinite_and_overflow_to_the_general_path(monkeypatch):
    a = _big(1).ravel()
    a[[7, stats.BLOCK + 3]] = [np.nan, -np.inf]
    assert compute_stats(a) == _general(monkeypatch, compute_stats, a)
    assert compute_stats(a).nan == 1 and compute_stats(a).inf == 1
    b = _big(2).ravel()
    b[5] = 3e30  # its square overflows float32
    assert compute_stats(b) == _general(monkeypatch, compute_stats, b)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_blocked_histogram_is_numpys_exactly(monkeypatch, threads):
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
    a = _big(3).ravel()
    a[[0, stats.BLOCK, a.size - 1]] = [np.nan, np.inf, -np.inf]
    finite = a[np.isfinite(a)]
    for value_range in (None, (-0.5, 2.0)):
        h = compute_histogram(a, bins=32, value_range=value_range)
        lo, hi = value_range or (float(finite.min()), float(finite.max()))
        counts, edges = np.histogram(finite, bins=32, range=(lo, hi))
        np.testing.assert_array_equal(h.counts, counts)
        np.testing.assert_array_equal(h.edges, edges.astype(np.float64))
        assert h.nonfinite == 3
        general = _general(monkeypatch, compute_histogram, a, 32, False, value_range)
        np.testing.assert_array_equal(h.counts, general.counts)
        np.testing.assert_array_equal(h.edges, general.edges)
        assert h.nonfinite == general.nonfinite and h.counts.dtype == general.counts.dtype
    constant = np.full(stats.BIG, 2.0, dtype=np.float32)
    h = compute_histogram(constant, bins=4)
    assert h.total == stats.BIG and h.edges[0] < 2 < h.edges[-1]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_blocked_histogram_bins_edge_values_as_numpy(dtype):
    # Values on and one step either side of every edge, where the index computed
    # from (x - lo) / (hi - lo) * bins lands in the wrong bin and NumPy's corrections
    # decide; ranges not representable in the dtype; the range's own ends.
    rng = np.random.default_rng(4)
    for lo, hi, bins in ((-0.1, 0.3, 32), (-1.0, 1.0, 7), (0.0, 1e-3, 10)):
        edges = np.histogram_bin_edges(np.zeros(0, dtype), bins=bins, range=(lo, hi))
        near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        values = np.concatenate([
            rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), stats.BIG),
            np.repeat(near, 97)]).astype(dtype)
        rng.shuffle(values)
        h = compute_histogram(values, bins=bins, value_range=(lo, hi))
        counts, numpy_edges = np.histogram(values, bins=bins, range=(lo, hi))
        np.testing.assert_array_equal(h.counts, counts)
        np.testing.assert_array_equal(h.edges, numpy_edges.astype(np.float64))
        free = compute_histogram(values, bins=bins)  # the range from the data
        counts, _ = np.histogram(values, bins=bins,
                                 range=(float(values.min()), float(values.max())))
        np.testing.assert_array_equal(free.counts, counts)
