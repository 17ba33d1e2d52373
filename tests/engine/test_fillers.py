"""Caffe's fillers: exact constants, the statistics of large samples against the
formulas in include/caffe/filler.hpp, seeding, and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect import backend
from bpinspect.engine.fillers import fill, msra_default
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

FAN_IN = caffe_pb2.FillerParameter.FAN_IN
FAN_OUT = caffe_pb2.FillerParameter.FAN_OUT
AVERAGE = caffe_pb2.FillerParameter.AVERAGE


def filler(**fields) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(**fields)


def draw(xp, f, shape, seed=0, dtype=np.float32):
    out = fill(f, shape, xp=xp, rng=backend.rng(seed, xp), dtype=dtype)
    assert backend.get_array_module(out) is xp
    assert out.shape == tuple(shape) and out.dtype == dtype
    return backend.to_host(out).astype(np.float64)


def assert_mean(values, mean, std):
    """Within five standard errors of ``mean``."""
    assert values.mean() == pytest.approx(mean, abs=5 * std / math.sqrt(values.size))


def test_constant_is_exact(xp):
    values = draw(xp, filler(type="constant", value=2.5), (3, 4, 5))
    assert (values == 2.5).all()


def test_none_is_caffes_default_constant_zero(xp):
    values = draw(xp, None, (7,))
    assert (values == 0).all()
    assert (draw(xp, filler(), (2, 3)) == 0).all()  # type defaults to "constant", value 0


def test_uniform_statistics(xp):
    values = draw(xp, filler(type="uniform", min=-2, max=3), (400, 500))
    assert values.min() >= -2 and values.max() <= 3
    assert_mean(values, 0.5, 5 / math.sqrt(12))
    assert values.std() == pytest.approx(5 / math.sqrt(12), rel=0.01)


def test_gaussian_statistics(xp):
    values = draw(xp, filler(type="gaussian", mean=1.5, std=0.25), (400, 500))
    assert_mean(values, 1.5, 0.25)
    assert values.std() == pytest.approx(0.25, rel=0.01)


def test_gaussian_sparse_keeps_sparse_over_rows_of_the_values(xp):
    # Each value is kept with probability sparse / shape[0].
    values = draw(xp, filler(type="gaussian", std=1, sparse=5), (20, 20000))
    assert (values != 0).mean() == pytest.approx(5 / 20, abs=0.01)
    kept = values[values != 0]
    assert kept.std() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("norm", [FAN_IN, FAN_OUT, AVERAGE])
def test_xavier_statistics(xp, norm):
    shape = (64, 32, 3, 3)
    fan_in, fan_out = 32 * 9, 64 * 9
    n = {FAN_IN: fan_in, FAN_OUT: fan_out, AVERAGE: (fan_in + fan_out) / 2}[norm]
    values = draw(xp, filler(type="xavier", variance_norm=norm), shape)
    bound = math.sqrt(3 / n)
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert_mean(values, 0, bound / math.sqrt(3))
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # = sqrt(1/n)


@pytest.mark.parametrize("norm", [FAN_IN, FAN_OUT, AVERAGE])
def test_msra_statistics(xp, norm):
    shape = (64, 32, 3, 3)
    fan_in, fan_out = 32 * 9, 64 * 9
    n = {FAN_IN: fan_in, FAN_OUT: fan_out, AVERAGE: (fan_in + fan_out) / 2}[norm]
    values = draw(xp, filler(type="msra", variance_norm=norm), shape)
    assert_mean(values, 0, math.sqrt(2 / n))
    assert values.std() == pytest.approx(math.sqrt(2 / n), rel=0.02)


def test_fans_of_a_one_axis_blob(xp):
    # fan_out is the count for a 1-axis blob (Caffe's "compatibility with ND blobs").
    values = draw(xp, filler(type="msra", variance_norm=FAN_OUT), (100000,))
    assert values.std() == pytest.approx(math.sqrt(2 / 100000), rel=0.02)
    values = draw(xp, filler(type="msra"), (100000,))  # fan_in = count / shape[0] = 1
    assert values.std() == pytest.approx(math.sqrt(2), rel=0.02)


def test_positive_unitball_rows_sum_to_one(xp):
    values = draw(xp, filler(type="positive_unitball"), (6, 3, 4), dtype=np.float64)
    assert (values >= 0).all() and (values <= 1).all()
    np.testing.assert_allclose(values.reshape(6, -1).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_bilinear_matches_caffes_loop(xp, k):
    shape = (2, 1, k, k)
    values = draw(xp, filler(type="bilinear"), shape, dtype=np.float64)
    f = math.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    expected = np.empty(2 * k * k)
    for i in range(expected.size):  # filler.hpp's loop
        x, y = i % k, (i // k) % k
        expected[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    np.testing.assert_allclose(values.ravel(), expected, rtol=1e-12)


def test_bilinear_needs_a_square_4_axis_blob(xp):
    with pytest.raises(BpinspectError, match="4-axis"):
        fill(filler(type="bilinear"), (3, 3), xp=xp, rng=backend.rng(0, xp))
    with pytest.raises(BpinspectError, match="square"):
        fill(filler(type="bilinear"), (1, 1, 3, 4), xp=xp, rng=backend.rng(0, xp))


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "xavier", "msra", "positive_unitball"])
def test_same_seed_same_values_other_seed_others(xp, kind):
    f = filler(type=kind)
    a = draw(xp, f, (8, 5), seed=7)
    b = draw(xp, f, (8, 5), seed=7)
    c = draw(xp, f, (8, 5), seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "xavier", "msra"])
def test_one_seed_same_values_in_float32_and_float64(xp, kind):
    wide = draw(xp, filler(type=kind), (6, 7), seed=2, dtype=np.float64)
    narrow = draw(xp, filler(type=kind), (6, 7), seed=2, dtype=np.float32)
    np.testing.assert_array_equal(narrow, wide.astype(np.float32))


def test_host_generator_onto_either_module(xp):
    # The Net fills on the host (NumPy generator) and copies onto its device.
    out = fill(filler(type="gaussian"), (4, 4), xp=xp, rng=np.random.default_rng(3))
    assert backend.get_array_module(out) is xp
    again = fill(filler(type="gaussian"), (4, 4), xp=np, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(backend.to_host(out), again)


def test_unknown_filler_type_is_named(xp):
    with pytest.raises(BpinspectError, match="'gaussain'"):
        fill(filler(type="gaussain"), (2, 2), xp=xp, rng=backend.rng(0, xp))


def test_sparse_only_for_gaussian(xp):
    with pytest.raises(BpinspectError, match="sparse"):
        fill(filler(type="xavier", sparse=3), (4, 4), xp=xp, rng=backend.rng(0, xp))


def test_fan_fillers_need_an_axis(xp):
    with pytest.raises(BpinspectError, match="at least one axis"):
        fill(filler(type="msra"), (), xp=xp, rng=backend.rng(0, xp))


def test_empty_blob(xp):
    assert draw(xp, filler(type="xavier"), (0, 3)).shape == (0, 3)


def test_msra_default_is_msra_fan_in(xp):
    out = msra_default((96, 3, 11, 11), xp, backend.rng(0, xp), np.float32)
    assert backend.get_array_module(out) is xp and out.dtype == np.float32
    values = backend.to_host(out).astype(np.float64)
    assert values.std() == pytest.approx(math.sqrt(2 / (3 * 11 * 11)), rel=0.02)
    assert_mean(values, 0, math.sqrt(2 / (3 * 11 * 11)))
    again = msra_default((96, 3, 11, 11), xp, backend.rng(0, xp), np.float32)
    np.testing.assert_array_equal(values, backend.to_host(again))
