"""Pooling: Caffe's output sizes by hand, forward and argmax against loops, backward
numerically and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.layers import _max_pool_cpu, pooling
from bpinspect.layers.pooling import pooled_size
from bpinspect.session.gradcheck import check_layer

from ._util import distinct_values, make_layer, run_forward

FLT_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize(
    "size, kernel, pad, stride, expected",
    [
        (6, 3, 0, 2, 3),    # ceil((6 - 3) / 2) + 1 = ceil(1.5) + 1 = 3: the last window hangs over
        (7, 3, 0, 2, 3),    # (7 - 3) / 2 + 1 = 3 exactly
        (55, 3, 0, 2, 27),  # CaffeNet pool1: ceil(26) + 1 = 27
        (13, 3, 0, 2, 6),   # CaffeNet pool5: ceil(5) + 1 = 6
        (5, 2, 1, 2, 3),    # ceil((5 + 2 - 2) / 2) + 1 = ceil(2.5) + 1 = 4, but window 3
                            # starts at 3 * 2 = 6 >= 5 + 1 (in the padding): 3
        (4, 3, 1, 2, 3),    # ceil((4 + 2 - 3) / 2) + 1 = 3; window 2 starts at 4 < 4 + 1: kept
        (3, 2, 1, 1, 4),    # ceil((3 + 2 - 2) / 1) + 1 = 4; window 3 starts at 3 < 3 + 1: kept
        (6, 4, 2, 3, 3),    # ceil((6 + 4 - 4) / 3) + 1 = 3; window 2 starts at 6 < 6 + 2: kept
        (1, 2, 1, 2, 1),    # ceil((1 + 2 - 2) / 2) + 1 = 2, window 1 starts at 2 >= 1 + 1: 1
        (5, 1, 0, 3, 3),    # ceil(4 / 3) + 1 = 3; window 2 starts at 6 >= 5, but without
                            # padding Caffe does not clip: it stays, empty
    ],
)
def test_output_size_by_hand(size, kernel, pad, stride, expected):
    assert pooled_size(size, kernel, pad, stride) == expected


def test_padding_on_one_axis_clips_both_axes():
    # Caffe checks the last window of both axes once pad_h or pad_w is set. Width 5,
    # kernel 1, stride 3, pad_w 0: 3 windows, the last starting at 6 >= 5 + 0: clipped to 2
    # because pad_h is 1. Height 4, kernel 2, stride 3, pad_h 1: ceil(4 / 3) + 1 = 3,
    # window 2 starts at 6 >= 4 + 1: 2.
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_h: 2 '
                       'kernel_w: 1 stride: 3 pad_h: 1 pad_w: 0 }')
    assert layer.setup([(1, 1, 4, 5)]) == [(1, 1, 2, 2)]
    assert pooled_size(5, 1, 0, 3, clip=True) == 2 and pooled_size(5, 1, 0, 3) == 3


def test_a_window_past_the_image_is_empty_as_in_caffe(xp):
    # No padding, kernel 1, stride 3 on 5 columns: window 2 starts at column 6.
    layer = _layer("kernel_size: 1 stride: 3", "MAX")
    x = np.array([4.0, 1.0, 2.0, 7.0, 3.0], dtype=np.float32).reshape(1, 1, 1, 5)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_array_equal(top.ravel(), [4.0, 7.0, -FLT_MAX])
    np.testing.assert_array_equal(to_host(layer.internals()["argmax"]).ravel(), [0, 3, -1])


def test_floor_round_mode_by_hand():
    assert pooled_size(6, 3, 0, 2, ceil=False) == 2  # floor(1.5) + 1
    assert pooled_size(5, 2, 1, 2, ceil=False) == 3  # floor(2.5) + 1 = 3; 2 * 2 < 5 + 1: kept
    layer = make_layer('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 '
                       'stride: 2 round_mode: FLOOR }')
    assert layer.setup([(1, 1, 6, 6)]) == [(1, 1, 2, 2)]


def pool_reference(x, method, kh, kw, sh, sw, ph, pw, ceil=True):
    """Caffe's pooling loops, written out (float64); returns (top, argmax)."""
    n, c, h, w = x.shape
    rounding = math.ceil if ceil else math.floor
    ho = rounding((h + 2 * ph - kh) / sh) + 1
    wo = rounding((w + 2 * pw - kw) / sw) + 1
    if (ph or pw) and (ho - 1) * sh >= h + ph:
        ho -= 1
    if (ph or pw) and (wo - 1) * sw >= w + pw:
        wo -= 1
    top = np.zeros((n, c, ho, wo))
    arg = np.full((n, c, ho, wo), -1)
    for a in range(n):
        for ch in range(c):
            for y in range(ho):
                for z in range(wo):
                    hs, ws = y * sh - ph, z * sw - pw
                    if method == "MAX":
                        he, we = min(hs + kh, h), min(ws + kw, w)
                        hs, ws = max(hs, 0), max(ws, 0)
                        best, where = -FLT_MAX, -1
                        for yy in range(hs, he):
                            for xx in range(ws, we):
                                if x[a, ch, yy, xx] > best:
                                    best, where = x[a, ch, yy, xx], yy * w + xx
                        top[a, ch, y, z], arg[a, ch, y, z] = best, where
                    else:
                        he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                        size = (he - hs) * (we - ws)
                        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                        top[a, ch, y, z] = x[a, ch, hs:he, ws:we].sum() / size
    return top, arg


def max_backward_reference(dtop, argmax, shape):
    """Each top diff added to its winner, one by one."""
    dx = np.zeros(shape)
    n, c, ho, wo = dtop.shape
    for a in range(n):
        for ch in range(c):
            for y in range(ho):
                for z in range(wo):
                    if argmax[a, ch, y, z] >= 0:
                        yy, xx = divmod(int(argmax[a, ch, y, z]), shape[3])
                        dx[a, ch, yy, xx] += dtop[a, ch, y, z]
    return dx


CASES = [
    # (pooling_param text, shape, (kh, kw, sh, sw, ph, pw))
    ("kernel_size: 3 stride: 2", (2, 3, 7, 5), (3, 3, 2, 2, 0, 0)),
    ("kernel_size: 3 stride: 2", (1, 2, 6, 6), (3, 3, 2, 2, 0, 0)),  # ceil: overhang
    ("kernel_size: 2 stride: 2 pad: 1", (2, 2, 5, 5), (2, 2, 2, 2, 1, 1)),  # clipped last
    ("kernel_size: 3 stride: 2 pad: 1", (1, 3, 4, 7), (3, 3, 2, 2, 1, 1)),
    ("kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0", (2, 2, 5, 7),
     (3, 2, 1, 2, 1, 0)),
    ("kernel_size: 4 stride: 3 pad: 2", (1, 2, 6, 8), (4, 4, 3, 3, 2, 2)),
    ("kernel_size: 2 stride: 1", (1, 2, 3, 4), (2, 2, 1, 1, 0, 0)),
]


def _layer(text, method):
    return make_layer(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} {text} }}')


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_forward_matches_loops(case, method, xp):
    text, shape, geometry = case
    layer = _layer(text, method)
    x = distinct_values(shape, seed=1)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    expected, argmax = pool_reference(x, method, *geometry)
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    if method == "MAX":
        got = to_host(layer.internals()["argmax"])
        assert got.shape == expected.shape and got.dtype.kind == "i"
        np.testing.assert_array_equal(got, argmax)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_gradients(case, method, xp):
    text, shape, _ = case
    layer = _layer(text, method)
    # Distinct values spaced far apart compared to eps: no max ties, no kinks.
    x = xp.asarray(distinct_values(shape, seed=2))
    (result,) = check_layer(layer, [x])
    assert result.passed, result


FLOOR_CASES = [
    # (pooling_param text, shape, (kh, kw, sh, sw, ph, pw)): odd sizes, where rounding
    # down drops the last window that CEIL keeps (on at least one axis).
    ("kernel_size: 2 stride: 2", (1, 2, 5, 5), (2, 2, 2, 2, 0, 0)),
    ("kernel_size: 3 stride: 2", (2, 2, 6, 8), (3, 3, 2, 2, 0, 0)),
    ("kernel_size: 3 stride: 2 pad: 1", (1, 3, 6, 7), (3, 3, 2, 2, 1, 1)),  # pad in windows
    ("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0", (2, 2, 5, 8),
     (2, 3, 2, 3, 1, 0)),
    ("kernel_size: 4 stride: 3 pad: 2", (1, 2, 8, 10), (4, 4, 3, 3, 2, 2)),
]


def _floor_layer(text, method, tops=""):
    return make_layer(f'name: "p" type: "Pooling" {tops} pooling_param {{ pool: {method} '
                      f"{text} round_mode: FLOOR }}")


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", FLOOR_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_floor_round_mode_forward_matches_loops(case, method, xp):
    text, shape, geometry = case
    expected, argmax = pool_reference(distinct_values(shape, seed=5), method, *geometry,
                                      ceil=False)
    assert expected.shape != pool_reference(np.zeros(shape), method, *geometry)[0].shape
    layer = _floor_layer(text, method)
    assert layer.setup([shape]) == [expected.shape]
    (top,), _, _ = run_forward(_floor_layer(text, method), [distinct_values(shape, seed=5)],
                               xp=xp)
    # AVE: the divisor counts the padding inside a window (Caffe's pool_size), not the
    # overhang past it; FLOOR windows never overhang, so the padding is all there is.
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    if method == "MAX":
        layer = _floor_layer(text, method)
        run_forward(layer, [distinct_values(shape, seed=5)], xp=xp)
        got = to_host(layer.internals()["argmax"])
        assert got.dtype.kind == "i"
        np.testing.assert_array_equal(got, argmax)
        masked = _floor_layer(text, method, 'top: "p" top: "mask"')
        (top, mask), _, _ = run_forward(masked, [distinct_values(shape, seed=5)], xp=xp)
        np.testing.assert_allclose(top, expected, rtol=1e-12)
        np.testing.assert_array_equal(mask, argmax.astype(np.float64))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", FLOOR_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_floor_round_mode_gradients(case, method, xp):
    text, shape, _ = case
    x = xp.asarray(distinct_values(shape, seed=6))
    (result,) = check_layer(_floor_layer(text, method), [x])
    assert result.checked == math.prod(shape) and result.passed, result


def test_max_backward_with_overlapping_windows_matches_loops(xp):
    # kernel 3, stride 2: neighbouring windows share a row/column, so one input can
    # win two or four windows and must receive the sum of their diffs.
    layer = _layer("kernel_size: 3 stride: 2", "MAX")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    x[0, 0, 2, 2] = 10.0  # the shared corner of four windows: wins all of them
    _, bottoms, tops = run_forward(layer, [x], xp=xp)
    dtop = rng.standard_normal(tops[0].shape)
    tops[0].diff = xp.asarray(dtop)
    layer.backward(tops, [True], bottoms)
    _, argmax = pool_reference(x, "MAX", 3, 3, 2, 2, 0, 0)
    assert (argmax[0, 0, :2, :2] == 2 * 8 + 2).all()
    expected = max_backward_reference(dtop, argmax, x.shape)
    assert expected[0, 0, 2, 2] == pytest.approx(dtop[0, 0, :2, :2].sum())
    np.testing.assert_allclose(to_host(bottoms[0].diff), expected, rtol=1e-12, atol=1e-15)


def test_max_backward_in_blocks_of_planes(monkeypatch):
    # A tiny bincount budget: one plane per bincount, same result.
    monkeypatch.setattr(pooling, "BINCOUNT_BINS", 10)
    layer = _layer("kernel_size: 2 stride: 1 pad: 1", "MAX")
    x = distinct_values((2, 3, 4, 3), seed=4)
    _, bottoms, tops = run_forward(layer, [x])
    dtop = np.random.default_rng(5).standard_normal(tops[0].shape)
    tops[0].diff = dtop
    layer.backward(tops, [True], bottoms)
    _, argmax = pool_reference(x, "MAX", 2, 2, 1, 1, 1, 1)
    np.testing.assert_allclose(bottoms[0].diff, max_backward_reference(dtop, argmax, x.shape))


@pytest.mark.parametrize("text, geometry", [
    ("kernel_size: 3 stride: 2", (3, 3, 2, 2, 0, 0)),  # pool1: the last window overhangs
    ("kernel_size: 3 stride: 1 pad: 1", (3, 3, 1, 1, 1, 1)),  # one phase, padded
    ("kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 pad_h: 1 pad_w: 0",
     (2, 3, 3, 2, 1, 0)),  # a stride over the kernel: rows no window reads
    ("kernel_size: 1 stride: 2", (1, 1, 2, 2, 0, 0)),
    ("kernel_size: 4 stride: 3 pad: 2", (4, 4, 3, 3, 2, 2))])
@pytest.mark.parametrize("grid", [True, False], ids=["phase-grid", "gathered"])
def test_max_forward_on_the_phase_grid_and_gathered_matches_loops(monkeypatch, text,
                                                                   geometry, grid):
    # Ties (small integers), NaN, -inf and -FLT_MAX, in blocks of a few planes.
    monkeypatch.setattr(_max_pool_cpu, "GRID_WASTE", 1000 if grid else 0)
    monkeypatch.setattr(_max_pool_cpu, "BLOCK_CELLS", 40)
    rng = np.random.default_rng(len(text))
    x = rng.integers(-3, 3, (2, 3, 9, 8)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[0, 1] = np.nan  # a plane of nothing: -FLT_MAX and -1 everywhere
    x[1, 2, :3, :3] = -FLT_MAX
    layer = _layer(text, "MAX")
    (top,), _, _ = run_forward(layer, [x])
    expected, argmax = pool_reference(x.astype(np.float64), "MAX", *geometry)
    np.testing.assert_array_equal(top, expected.astype(np.float32))
    np.testing.assert_array_equal(layer.internals()["argmax"], argmax)


def test_max_ties_go_to_the_first_in_scan_order(xp):
    layer = _layer("kernel_size: 2 stride: 2", "MAX")
    x = np.array([[1.0, 3.0, 5.0, 5.0],
                  [3.0, 2.0, 5.0, 5.0]]).reshape(1, 1, 2, 4)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_array_equal(top.ravel(), [3.0, 5.0])
    # window 0: 3 at (0, 1) before 3 at (1, 0); window 1: the first 5, at (0, 2)
    np.testing.assert_array_equal(to_host(layer.internals()["argmax"]).ravel(), [1, 2])


def test_nan_never_wins_and_a_window_of_nothing_keeps_minus_one(xp):
    layer = _layer("kernel_size: 2 stride: 2", "MAX")
    nan = float("nan")
    x = np.array([[nan, 1.0, nan, nan],
                  [2.0, nan, nan, -np.inf]], dtype=np.float32).reshape(1, 1, 2, 4)
    _, bottoms, tops = run_forward(layer, [x], xp=xp)
    top = to_host(tops[0].data).ravel()
    assert top[0] == 2.0 and top[1] == pytest.approx(-FLT_MAX)  # as Caffe: -FLT_MAX, not NaN
    np.testing.assert_array_equal(to_host(layer.internals()["argmax"]).ravel(), [4, -1])
    tops[0].diff = xp.asarray(np.array([0.5, 7.0], dtype=np.float32).reshape(1, 1, 1, 2))
    layer.backward(tops, [True], bottoms)
    expected = np.zeros((1, 1, 2, 4), dtype=np.float32)
    expected[0, 0, 1, 0] = 0.5  # the lost window routes nothing
    np.testing.assert_array_equal(to_host(bottoms[0].diff), expected)


def test_backward_reads_the_argmax_it_exposes(xp):
    layer = _layer("kernel_size: 2 stride: 2", "MAX")
    x = distinct_values((1, 1, 4, 4), seed=3)
    _, bottoms, tops = run_forward(layer, [x], xp=xp)
    tops[0].diff = xp.ones(tops[0].shape)
    argmax = layer.internals()["argmax"]
    true_winners = to_host(argmax).copy()
    # Overwrite the exposed mask in place: every window now "won" at its top-left cell.
    top_left = np.array([[0, 2], [8, 10]]).reshape(1, 1, 2, 2)
    assert (true_winners != top_left).any()
    argmax[...] = xp.asarray(top_left)
    layer.backward(tops, [True], bottoms)
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, ::2, ::2] = 1.0
    np.testing.assert_array_equal(to_host(bottoms[0].diff), expected)


def test_wins_per_input_can_be_counted_from_argmax():
    # What the debugger's pooling view does: a bincount of argmax over the plane.
    layer = _layer("kernel_size: 3 stride: 2", "MAX")
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre belongs to all four windows
    run_forward(layer, [x])
    argmax = layer.internals()["argmax"]
    wins = np.bincount(argmax[0, 0].ravel(), minlength=25).reshape(5, 5)
    assert wins[2, 2] == 4 and wins.sum() == 4


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method, xp):
    layer = _layer("global_pooling: true", method)
    x = distinct_values((2, 3, 4, 5), seed=6)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    assert top.shape == (2, 3, 1, 1) and (layer.kh, layer.kw) == (4, 5)
    reduce = np.max if method == "MAX" else np.mean
    np.testing.assert_allclose(top[..., 0, 0], reduce(x, axis=(2, 3)), rtol=1e-12)
    if method == "MAX":
        flat = x.reshape(2, 3, 20).argmax(axis=2)
        np.testing.assert_array_equal(to_host(layer.internals()["argmax"])[..., 0, 0], flat)
    (result,) = check_layer(_layer("global_pooling: true", method), [xp.asarray(x)])
    assert result.passed, result


def test_ave_divisor_by_hand(xp):
    # 3x3 input of ones, kernel 2, stride 2, pad 1 -> 2x2 top (ceil(1.5) + 1 = 3, clipped:
    # window 2 would start at 4 >= 3 + 1). Window (0, 0) covers padded rows -1..0 and
    # columns -1..0: 4 cells, 1 real -> 1/4. Window (1, 1) covers rows 1..2, columns 1..2:
    # 4 real cells -> 1. Window (0, 1): 2 real of 4 -> 1/2.
    layer = _layer("kernel_size: 2 stride: 2 pad: 1", "AVE")
    x = np.ones((1, 1, 3, 3))
    (top,), bottoms, tops = run_forward(layer, [x], xp=xp)
    np.testing.assert_allclose(top[0, 0], [[0.25, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(to_host(layer.internals()["pool_size"]), [[4, 4], [4, 4]])
    tops[0].diff = xp.ones(tops[0].shape)
    layer.backward(tops, [True], bottoms)
    # each input is in one window; it gets 1 / 4 of that window's diff
    np.testing.assert_allclose(to_host(bottoms[0].diff), np.full((1, 1, 3, 3), 0.25))


def test_ave_overhang_of_a_rounded_up_window_is_not_counted(xp):
    # 4 columns, kernel 3, stride 2, no pad: ceil(0.5) + 1 = 2 windows; the second covers
    # columns 2..4, of which only 2 and 3 exist, and no padding: divisor 1 * 2 = 2.
    layer = _layer("kernel_h: 1 kernel_w: 3 stride: 2", "AVE")
    x = np.array([1.0, 2.0, 4.0, 8.0]).reshape(1, 1, 1, 4)
    (top,), _, _ = run_forward(layer, [x], xp=xp)
    np.testing.assert_allclose(top.ravel(), [(1 + 2 + 4) / 3, (4 + 8) / 2])


@pytest.mark.parametrize(
    "text, message",
    [
        ("pool: STOCHASTIC kernel_size: 2", "STOCHASTIC pooling is not supported"),
        ("pool: MAX", "give kernel_size, or both kernel_h and kernel_w"),
        ("pool: MAX kernel_h: 2", "give kernel_size, or both kernel_h and kernel_w"),
        ("pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2", "not both"),
        ("pool: MAX global_pooling: true kernel_size: 2", "takes no kernel size"),
        ("pool: MAX global_pooling: true stride: 2", "only pad 0 and stride 1"),
        ("pool: MAX kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "give pad, or both pad_h and"),
        ("pool: MAX kernel_size: 2 stride_h: 2", "give stride, or both stride_h and"),
    ],
)
def test_bad_parameters_name_the_layer(text, message):
    with pytest.raises(BpinspectError, match=message) as err:
        make_layer(f'name: "bad" type: "Pooling" pooling_param {{ {text} }}')
    assert "'bad'" in str(err.value)


def test_a_second_max_top_is_the_mask_as_floats(xp):
    layer = make_layer('name: "p" type: "Pooling" top: "p" top: "mask" '
                       "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }")
    x = distinct_values((2, 3, 7, 6), seed=4)
    (top, mask), _, _ = run_forward(layer, [x], xp=xp)
    expected, argmax = pool_reference(x, "MAX", 3, 3, 2, 2, 1, 1)
    np.testing.assert_allclose(top, expected, rtol=1e-12)
    assert mask.dtype == x.dtype
    np.testing.assert_array_equal(mask, argmax.astype(x.dtype))


def test_only_max_pooling_takes_a_second_top():
    with pytest.raises(BpinspectError, match="only MAX pooling has a second top") as err:
        make_layer('name: "ave" type: "Pooling" top: "a" top: "b" '
                   "pooling_param { pool: AVE kernel_size: 2 }")
    assert "'ave'" in str(err.value)


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("pool: MAX kernel_size: 2 pad: 2", (1, 1, 5, 5), "smaller than the kernel"),
        ("pool: AVE kernel_size: 7", (1, 1, 5, 5), "does not fit"),
        ("pool: MAX kernel_size: 2", (1, 5, 5), "4-D bottom"),
    ],
)
def test_bad_shapes_at_setup(text, shape, message):
    layer = make_layer(f'name: "bad" type: "Pooling" pooling_param {{ {text} }}')
    with pytest.raises(BpinspectError, match=message):
        layer.setup([shape])
