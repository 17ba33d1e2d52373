"""The work split over threads (layers/_parallel.py) gives bit for bit what one
thread gives, for im2col and col2im at sizes that are split, and every part runs."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.layers import _parallel
from bpinspect.layers._im2col import Geometry, col2im, im2col

CASES = [((4, 3, 45, 45), Geometry(11, 11, 4, 4, 0, 0)),  # conv1-like, no pad
         ((3, 7, 17, 17), Geometry(5, 5, 1, 1, 2, 2)),  # pad: per-thread padded scratch
         ((2, 5, 16, 16), Geometry(3, 3, 2, 2, 1, 1, 2, 2)),  # dilation and stride
         ((1, 6, 15, 15), Geometry(3, 3, 1, 1, 1, 1)),  # one image: split by channel
         ((1, 3, 23, 23), Geometry(11, 11, 4, 4, 0, 0))]  # and with stride phases


@pytest.mark.parametrize("shape, g", CASES)
def test_im2col_and_col2im_in_parts_equal_one_thread(monkeypatch, shape, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 1)  # split even these sizes
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
        col = im2col(x, g)
        results[threads] = (col.copy(), col2im(col, shape, g).copy())
    for threads in ("2", "3"):
        np.testing.assert_array_equal(results[threads][0], results["1"][0])
        np.testing.assert_array_equal(results[threads][1], results["1"][1])
    # And one thread against the definition: col[(c, i, j), (n, y, x)] = padded x.
    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    padded = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    col = results["1"][0].reshape(c, g.kh, g.kw, n, ho, wo)
    for ci, i, j in ((0, 0, 0), (c - 1, g.kh - 1, g.kw - 1), (c // 2, g.kh // 2, 0)):
        rows = padded[:, ci, i * g.dh: i * g.dh + g.sh * (ho - 1) + 1: g.sh,
                      j * g.dw: j * g.dw + g.sw * (wo - 1) + 1: g.sw]
        np.testing.assert_array_equal(col[ci, i, j], rows)


def test_every_part_runs_once_and_an_error_in_a_part_is_raised(monkeypatch):
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", "3")
    seen = []
    _parallel.parallel_parts(lambda a, b: seen.extend(range(a, b)), 10, 1 << 20)
    assert sorted(seen) == list(range(10))

    def fail(a, b):
        if a > 0:
            raise ValueError("part failed")

    with pytest.raises(ValueError, match="part failed"):
        _parallel.parallel_parts(fail, 10, 1 << 20)


@pytest.mark.parametrize("total, unit, threads, parts", [
    (363, 192, "2", [(0, 192), (192, 363)]),  # conv1's weight diff at 2 threads
    (1728, 192, "2", [(0, 960), (960, 1728)]),  # 9 units: as even as whole units go
    (400, 192, "3", [(0, 192), (192, 400)]),  # fewer parts than threads
    (190, 192, "2", [(0, 190)]),  # one unit: one call
    (10, 1, "3", [(0, 3), (3, 7), (7, 10)])])
def test_part_edges_are_multiples_of_the_unit_nearest_an_even_split(
        monkeypatch, total, unit, threads, parts):
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
    seen = []
    _parallel.parallel_parts(lambda a, b: seen.append((a, b)), total, 1 << 20, unit=unit)
    assert sorted(seen) == parts


def _in_threads(monkeypatch, run):
    """``run()`` with 1, 2 and 3 parts (every size split): the three results."""
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 1)
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
        results[threads] = [np.array(a, copy=True) for a in run()]
    return results


def _assert_bitwise_equal(results):
    for threads in ("2", "3"):
        for got, want in zip(results[threads], results["1"], strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("spec", ["kernel_size: 3 stride: 2",  # pool1-like, no clipping
                                  "kernel_size: 3 stride: 2 pad: 1",  # clipped windows
                                  "kernel_h: 2 kernel_w: 3 stride: 1"])
def test_max_pooling_in_parts_equals_one_thread(monkeypatch, spec):
    from ._util import make_layer, run_forward

    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (3, 5, 11, 10)).astype(np.float32)  # ties: the first must win
    x[0, 0, :3, :3] = np.nan  # NaN never wins
    x[1, 2, :4, :4] = -np.finfo(np.float32).max  # nothing above -FLT_MAX: argmax -1
    x[2, 1, 2, 2] = -0.0
    dtop = {}

    def run():
        layer = make_layer(f'name: "p" type: "Pooling" pooling_param {{ pool: MAX {spec} }}')
        (top,), bottoms, tops = run_forward(layer, [x])
        if not dtop:
            dtop["diff"] = rng.standard_normal(top.shape).astype(np.float32)
        tops[0].diff = dtop["diff"]
        layer.backward(tops, [True], bottoms)
        return top, layer.internals()["argmax"], bottoms[0].diff

    results = _in_threads(monkeypatch, run)
    _assert_bitwise_equal(results)
    assert (results["1"][1] == -1).any() and np.isnan(x).any()


def test_relu_in_parts_equals_one_thread(monkeypatch):
    from ._util import make_layer, run_forward

    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 7, 5)).astype(np.float32)
    x.flat[:4] = [np.nan, -0.0, 0.0, -np.inf]
    dtop = rng.standard_normal(x.shape).astype(np.float32)
    dtop.flat[4:6] = [np.nan, np.inf]

    def run():
        layer = make_layer('name: "r" type: "ReLU" bottom: "x" top: "x"')
        (top,), bottoms, tops = run_forward(layer, [x])
        tops[0].diff = dtop
        layer.backward(tops, [True], bottoms)
        return top, bottoms[0].diff

    results = _in_threads(monkeypatch, run)
    _assert_bitwise_equal(results)
    np.testing.assert_array_equal(results["1"][0], np.maximum(x, 0))
    np.testing.assert_array_equal(results["1"][1], dtop * (x > 0))


def test_flat_parts_declines_what_it_cannot_split():
    a = np.zeros((4, 6), dtype=np.float32)
    assert not _parallel.flat_parts(lambda *p: None, a[:, ::2], np.zeros((4, 3)))
    assert not _parallel.flat_parts(lambda *p: None, a, np.zeros(5))
    assert _parallel.flat_parts(lambda p, q: np.add(p, 1, out=q), a.copy(), a)
    assert (a == 1).all()


@pytest.mark.parametrize("shape, g", CASES + [
    ((3, 4, 7, 6), Geometry(3, 3, 1, 1, 1, 1)),
    ((2, 3, 9, 8), Geometry(3, 2, 1, 1, 2, 0, 2, 1)),
    ((2, 5, 15, 14), Geometry(3, 3, 2, 2, 1, 1)),  # stride phases of uneven sizes, padded
    ((2, 3, 11, 10), Geometry(2, 2, 3, 3, 0, 0)),  # a stride over the kernel: phases unread
    ((3, 2, 9, 12), Geometry(3, 3, 1, 2, 1, 0, 1, 2))])  # one axis strided, one dilated
def test_batch_last_im2col_permutes_the_columns_and_col2im_sums_alike(monkeypatch, shape, g):
    from bpinspect.layers._im2col import col2im_batch_last, im2col_batch_last

    n, c, h, w = shape
    ho, wo = g.out_size(h, w)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    col = im2col(x, g)
    permuted = col.reshape(-1, n, ho * wo).transpose(0, 2, 1).reshape(col.shape)
    results = _in_threads(monkeypatch, lambda: (
        im2col_batch_last(x, g, np.empty_like(col)),
        col2im_batch_last(permuted, shape, g, np.full(shape, np.nan, dtype=np.float32))))
    _assert_bitwise_equal(results)
    np.testing.assert_array_equal(results["1"][0], permuted)
    np.testing.assert_array_equal(results["1"][1], col2im(col, shape, g))  # bit for bit


@pytest.mark.parametrize("batch, spec", [(1, "stride: 2"), (3, "stride: 2"), (3, "stride: 1")])
def test_convolution_in_parts_equals_one_thread_and_adds_the_bias_once(monkeypatch, batch,
                                                                         spec):
    from ._util import make_layer, run_forward

    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, 4, 9, 8)).astype(np.float32)
    weight = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    stride = int(spec.split()[1])
    geometry = Geometry(3, 3, stride, stride, 1, 1)
    ho, wo = geometry.out_size(9, 8)
    dtop = rng.standard_normal((batch, 6, ho, wo)).astype(np.float32)

    def run():
        layer = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 6 '
                           f'kernel_size: 3 {spec} pad: 1 }}')
        (top,), bottoms, tops = run_forward(layer, [x], [weight, bias])
        tops[0].diff = dtop
        layer.backward(tops, [True], bottoms)
        return top, bottoms[0].diff, layer.blobs[0].diff, layer.blobs[1].diff

    results = _in_threads(monkeypatch, run)
    _assert_bitwise_equal(results)
    # top = (W @ col) + bias, one float32 addition per element, whichever pass adds it.
    product = (weight.reshape(6, -1) @ im2col(x, geometry)).reshape(6, batch, ho, wo)
    np.testing.assert_array_equal(results["1"][0],
                                  product.transpose(1, 0, 2, 3) + bias.reshape(1, -1, 1, 1))
    sums = dtop.reshape(batch, 6, -1).sum(axis=2).sum(axis=0)  # the bias diff, as Caffe
    np.testing.assert_array_equal(results["1"][3], sums)


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_lrn_in_parts_equals_one_thread(monkeypatch, region):
    from ._util import make_layer, run_forward

    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 7, 6, 5)).astype(np.float32)
    dtop = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        layer = make_layer('name: "n" type: "LRN" lrn_param { local_size: 5 alpha: 0.1 '
                           f'beta: 0.75 norm_region: {region} }}')
        (top,), bottoms, tops = run_forward(layer, [x])
        tops[0].diff = dtop
        layer.backward(tops, [True], bottoms)
        return top, layer.internals()["scale"], bottoms[0].diff

    results = _in_threads(monkeypatch, run)
    _assert_bitwise_equal(results)
    from bpinspect.layers import lrn

    monkeypatch.setattr(lrn, "BLOCK_ELEMENTS", 1)  # and in blocks of one image
    monkeypatch.setenv("BPINSPECT_NUM_THREADS", "2")
    for got, want in zip(run(), results["1"], strict=True):
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_the_parts_keep_the_callers_numpy_error_handling(monkeypatch):
    import warnings

    monkeypatch.setenv("BPINSPECT_NUM_THREADS", "2")
    x = np.zeros(1 << 17, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):  # as the debugger runs a step
            _parallel.parallel_parts(lambda a, b: np.divide(x[a:b], x[a:b]), 2, 1 << 20)
        with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
            _parallel.parallel_parts(lambda a, b: np.divide(x[a:b], x[a:b]), 2, 1 << 20)
