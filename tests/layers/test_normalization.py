"""BatchNorm (batch and global statistics, Caffe's moving averages), Scale and Bias."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, blob, make_layer, run_forward

EPS = float(np.float32(1e-5))
MAF = float(np.float32(0.999))


def channel_stats(x):
    """Per-channel mean and biased variance by loops over (n, spatial)."""
    c = 1 if x.ndim == 1 else x.shape[1]
    x3 = x.reshape(x.shape[0], c, -1)
    means, variances = np.zeros(c), np.zeros(c)
    for ch in range(c):
        values = [x3[n, ch, s] for n in range(x3.shape[0]) for s in range(x3.shape[2])]
        means[ch] = sum(values) / len(values)
        variances[ch] = sum((v - means[ch]) ** 2 for v in values) / len(values)
    return means, variances, len(values)


def normalize(x, mean, var, eps):
    c = 1 if x.ndim == 1 else x.shape[1]
    x3 = x.reshape(x.shape[0], c, -1)
    return ((x3 - mean[None, :, None]) / np.sqrt(var[None, :, None] + eps)).reshape(x.shape)


# ---- BatchNorm -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 2), (6,)])
def test_batchnorm_train_forward_and_moving_averages(xp, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 2 + 1
    c = 1 if len(shape) == 1 else shape[1]
    old = [rng.standard_normal(c), rng.uniform(0.5, 2, c), np.array([3.0])]
    layer = make_layer("BatchNorm", phase="train")
    assert not layer.use_global_stats
    _, tops = run_forward(layer, xp, [x], [p.copy() for p in old])
    mean, var, m = channel_stats(x)
    np.testing.assert_allclose(to_host(tops[0].data), normalize(x, mean, var, EPS), rtol=1e-10)
    mean_blob, var_blob, factor = (to_host(b.data) for b in layer.blobs)
    np.testing.assert_allclose(factor, old[2] * MAF + 1, rtol=1e-12)
    np.testing.assert_allclose(mean_blob, mean + MAF * old[0], rtol=1e-12)
    np.testing.assert_allclose(var_blob, m / (m - 1) * var + MAF * old[1], rtol=1e-12)
    internals = layer.internals()
    np.testing.assert_allclose(to_host(internals["mean"]), mean, rtol=1e-12)
    np.testing.assert_allclose(to_host(internals["std"]), np.sqrt(var + EPS), rtol=1e-12)
    np.testing.assert_allclose(to_host(internals["x_norm"]), to_host(tops[0].data))


def test_batchnorm_global_stats_divide_by_the_factor(xp):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5))
    mean_sum, var_sum, factor = rng.standard_normal(4), rng.uniform(1, 3, 4), np.array([2.5])
    layer = make_layer("BatchNorm", "batch_norm_param { eps: 0.001 }")
    assert layer.use_global_stats  # TEST phase default
    _, tops = run_forward(layer, xp, [x], [mean_sum, var_sum, factor])
    eps = float(np.float32(0.001))
    expected = normalize(x, mean_sum / 2.5, var_sum / 2.5, eps)
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12)
    # The blobs are not touched in this mode.
    np.testing.assert_array_equal(to_host(layer.blobs[0].data), mean_sum)


def test_batchnorm_zero_factor_means_zero_statistics(xp):
    x = np.random.default_rng(2).standard_normal((2, 3))
    layer = make_layer("BatchNorm", "batch_norm_param { use_global_stats: true }", phase="train")
    _, tops = run_forward(layer, xp, [x], [np.ones(3), np.ones(3), np.zeros(1)])
    np.testing.assert_allclose(to_host(tops[0].data), x / np.sqrt(EPS), rtol=1e-12)


def test_batchnorm_explicit_use_global_stats_false_in_test(xp):
    layer = make_layer("BatchNorm", "batch_norm_param { use_global_stats: false }")
    assert not layer.use_global_stats


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 2), (6,)])
@pytest.mark.parametrize("phase", ["train", "test"])
def test_batchnorm_gradients(xp, shape, phase):
    rng = np.random.default_rng(3)
    c = 1 if len(shape) == 1 else shape[1]
    params = [rng.standard_normal(c), rng.uniform(0.5, 2, c), np.array([1.7])]
    layer = make_layer("BatchNorm", phase=phase)
    # The statistics are not parameters: no gradient is checked (or written) for them.
    results = check_layer(layer, [xp.asarray(rng.standard_normal(shape))], params,
                          check_params=False)
    assert [r.what for r in results] == ["bottom[0]"]
    assert_passed(results)


@pytest.mark.parametrize("phase", ["train", "test"])
def test_batchnorm_writes_no_param_diff(xp, phase):
    rng = np.random.default_rng(4)
    layer = make_layer("BatchNorm", phase=phase)
    bottoms, tops = run_forward(layer, xp, [rng.standard_normal((3, 2, 2))],
                                [np.zeros(2), np.ones(2), np.ones(1)])
    tops[0].diff = xp.asarray(rng.standard_normal((3, 2, 2)))
    layer.backward(tops, [True], bottoms)
    assert all((to_host(b.diff) == 0).all() for b in layer.blobs)


def test_batchnorm_in_place(xp):
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    params = [np.zeros(3), np.ones(3), np.ones(1)]
    layer = make_layer("BatchNorm", phase="train")
    bottoms, tops = run_forward(layer, xp, [x], params)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    in_place = make_layer("BatchNorm", phase="train", bottoms=("x",), tops=("x",))
    shared = blob(xp, x)
    in_place.setup([shared.shape])
    in_place.blobs = [blob(xp, p) for p in params]
    in_place.forward([shared], [shared])
    shared.diff = xp.asarray(dy)
    in_place.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(shared.data), to_host(tops[0].data), rtol=1e-12)
    np.testing.assert_allclose(to_host(shared.diff), to_host(bottoms[0].diff), rtol=1e-12)


def test_batchnorm_refuses_learned_statistics(xp):
    layer = make_layer("BatchNorm", "param { lr_mult: 0 } param { lr_mult: 1 }")
    with pytest.raises(BpinspectError, match="lr_mult"):
        layer.setup([(2, 3)])
    ok = make_layer("BatchNorm", "param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 }")
    assert ok.setup([(2, 3, 4)]) == [(2, 3, 4)]
    assert ok.param_shapes == [(3,), (3,), (1,)]
    # TEST (global stats): identity statistics stand in for Caffe's zeros (mean 0,
    # variance 1, factor 1), and the layer says so for the net's notes.
    assert [(f.type, f.value) for f in ok.param_fillers()] == [
        ("constant", 0.0), ("constant", 1.0), ("constant", 1.0)]
    assert "identity" in ok.untrained_fill
    # TRAIN (batch statistics): Caffe's zeros, where the running sums start.
    train = make_layer("BatchNorm", phase="train")
    train.setup([(2, 3, 4)])
    assert train.param_fillers() == [None, None, None]
    assert train.untrained_fill == ""


# ---- Scale / Bias ----------------------------------------------------------------------

SCALE_CASES = [  # (text, bottom shape, param shape)
    ("", (2, 3, 4, 2), (3,)),
    ("scale_param { axis: 1 num_axes: 2 }", (2, 3, 4), (3, 4)),
    ("scale_param { num_axes: 0 }", (2, 3, 4), ()),
    ("scale_param { axis: -1 }", (2, 3, 4), (4,)),
    ("scale_param { axis: 0 num_axes: -1 }", (2, 3), (2, 3)),
    ("scale_param { bias_term: true }", (2, 3, 4, 2), (3,)),
    ("scale_param { axis: 2 num_axes: 1 bias_term: true }", (2, 3, 4), (4,)),
]


def broadcast_reference(x, operand, axis, op):
    """x[i] op operand[i restricted to the operand's axes], index by index."""
    out = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        sub = index[axis: axis + operand.ndim] if operand.ndim else ()
        out[index] = op(x[index], operand[sub])
    return out


def canonical(text, ndim, operand_ndim):
    if operand_ndim == 0:
        return 0
    axis = 1
    if "axis:" in text:
        axis = int(text.split("axis:")[1].split()[0])
    return axis + ndim if axis < 0 else axis


@pytest.mark.parametrize(("text", "shape", "pshape"), SCALE_CASES)
def test_scale_with_a_param(xp, text, shape, pshape):
    rng = np.random.default_rng(6)
    layer = make_layer("Scale", text)
    assert layer.setup([shape]) == [shape]
    bias = "bias_term: true" in text
    assert layer.param_shapes == [pshape] + ([pshape] if bias else [])
    fillers = layer.param_fillers()
    assert fillers[0].type == "constant" and fillers[0].value == 1
    if bias:
        assert fillers[1].type == "constant" and fillers[1].value == 0
    x = rng.standard_normal(shape)
    params = [rng.standard_normal(s) for s in layer.param_shapes]
    _, tops = run_forward(make_layer("Scale", text), xp, [x], params)
    axis = canonical(text, len(shape), len(pshape))
    expected = broadcast_reference(x, params[0], axis, lambda a, s: a * s)
    if bias:
        expected = broadcast_reference(expected, params[1], axis, lambda a, b: a + b)
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12)
    assert_passed(check_layer(make_layer("Scale", text), [xp.asarray(x)]))


@pytest.mark.parametrize(("text", "shape", "sshape"), [
    ("", (2, 3, 4), (3,)),
    ("scale_param { axis: 0 }", (2, 3, 4), (2, 3)),
    ("", (2, 3, 4), ()),
    ("scale_param { bias_term: true }", (2, 3, 4), (3, 4)),
])
@pytest.mark.parametrize("down", [[True, True], [False, True], [True, False]])
def test_scale_from_bottom1(xp, text, shape, sshape, down):
    rng = np.random.default_rng(7)
    x, s = rng.standard_normal(shape), rng.standard_normal(sshape)
    layer = make_layer("Scale", text, bottoms=("x", "s"))
    layer.setup([shape, sshape])
    bias = "bias_term" in text
    assert layer.param_shapes == ([sshape] if bias else [])
    _, tops = run_forward(make_layer("Scale", text, bottoms=("x", "s")), xp, [x, s],
                          [np.zeros(sshape)] if bias else [])
    axis = canonical(text, len(shape), len(sshape))
    np.testing.assert_allclose(to_host(tops[0].data),
                               broadcast_reference(x, s, axis, lambda a, b: a * b), rtol=1e-12)
    results = check_layer(make_layer("Scale", text, bottoms=("x", "s")),
                          [xp.asarray(x), xp.asarray(s)], propagate_down=down)
    assert [r.what for r in results][: sum(down)] == [f"bottom[{i}]" for i, d in enumerate(down)
                                                       if d]
    assert_passed(results)


def test_scale_in_place_uses_the_saved_input(xp):
    rng = np.random.default_rng(8)
    x, dy = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))
    s = rng.standard_normal(3)
    layer = make_layer("Scale", bottoms=("x",), tops=("x",))
    shared = blob(xp, x)
    layer.setup([shared.shape])
    layer.blobs = [blob(xp, s)]
    layer.param_propagate_down = [True]
    layer.forward([shared], [shared])
    shared.diff = xp.asarray(dy)
    layer.backward([shared], [True], [shared])
    np.testing.assert_allclose(to_host(layer.blobs[0].diff), (dy * x).sum(axis=(0, 2)))
    np.testing.assert_allclose(to_host(shared.diff), dy * s[None, :, None])


def test_scale_param_diffs_accumulate(xp):
    rng = np.random.default_rng(9)
    layer = make_layer("Scale", "scale_param { bias_term: true }")
    bottoms, tops = run_forward(layer, xp, [rng.standard_normal((2, 3))],
                                [rng.standard_normal(3), rng.standard_normal(3)])
    tops[0].diff = xp.asarray(rng.standard_normal((2, 3)))
    layer.backward(tops, [True], bottoms)
    once = [to_host(b.diff).copy() for b in layer.blobs]
    layer.backward(tops, [True], bottoms)
    for b, first in zip(layer.blobs, once, strict=True):
        np.testing.assert_allclose(to_host(b.diff), 2 * first)


@pytest.mark.parametrize(("text", "shape", "pshape"), [
    ("", (2, 3, 4), (3,)),
    ("bias_param { axis: 0 num_axes: 2 }", (2, 3, 4), (2, 3)),
    ("bias_param { num_axes: 0 }", (2, 3), ()),
])
def test_bias_with_a_param(xp, text, shape, pshape):
    rng = np.random.default_rng(10)
    layer = make_layer("Bias", text)
    layer.setup([shape])
    assert layer.param_shapes == [pshape]
    assert layer.param_fillers()[0].type == "constant" and layer.param_fillers()[0].value == 0
    x, b = rng.standard_normal(shape), rng.standard_normal(pshape)
    _, tops = run_forward(make_layer("Bias", text), xp, [x], [b])
    axis = canonical(text, len(shape), len(pshape))
    np.testing.assert_allclose(to_host(tops[0].data),
                               broadcast_reference(x, b, axis, lambda u, v: u + v), rtol=1e-12)
    assert_passed(check_layer(make_layer("Bias", text), [xp.asarray(x)]))


def test_bias_from_bottom1(xp):
    rng = np.random.default_rng(11)
    x, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    assert_passed(check_layer(make_layer("Bias", bottoms=("x", "b")),
                              [xp.asarray(x), xp.asarray(b)]))


@pytest.mark.parametrize(("text", "shape", "bshape", "axis"), [
    ("", (2, 3, 4, 2), (3,), 1),
    ("", (2, 3, 4), (3, 4), 1),
    ("bias_param { axis: 0 }", (2, 3, 4), (2,), 0),
    ("bias_param { axis: 0 }", (2, 3, 4), (2, 3, 4), 0),
    ("bias_param { axis: -1 }", (2, 3, 4), (4,), 2),
    ("bias_param { axis: 2 }", (2, 3, 4, 5), (4, 5), 2),
    # With the bias from bottom[1], Caffe takes its shape from that blob: num_axes is
    # not read (here it would say 1 axis, the bias has 2).
    ("bias_param { axis: 1 num_axes: 1 }", (2, 3, 4), (3, 4), 1),
    # A scalar bias: Caffe sets axis 0 whatever axis says (even one past the bottom).
    ("bias_param { axis: 5 }", (2, 3, 4), (), None),
])
def test_bias_from_bottom1_forward_by_loops(xp, text, shape, bshape, axis):
    rng = np.random.default_rng(12)
    x, b = rng.standard_normal(shape), rng.standard_normal(bshape)
    layer = make_layer("Bias", text, bottoms=("x", "b"))
    assert layer.setup([shape, bshape]) == [shape] and layer.param_shapes == []
    _, tops = run_forward(make_layer("Bias", text, bottoms=("x", "b")), xp, [x, b])
    expected = np.empty(shape)  # Caffe's loop: top[i] = x[i] + b[the bias axes of i]
    for index in np.ndindex(*shape):
        expected[index] = x[index] + (b[index[axis: axis + len(bshape)]] if bshape else b)
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12)
    assert_passed(check_layer(make_layer("Bias", text, bottoms=("x", "b")),
                              [xp.asarray(x), xp.asarray(b)]))


@pytest.mark.parametrize(("type_name", "text", "shapes", "match"), [
    ("Scale", "scale_param { axis: 2 num_axes: 2 }", [(2, 3, 4)], "extends past"),
    ("Scale", "", [(2, 3, 4), (4,)], "does not match"),
    ("Scale", "scale_param { num_axes: -2 }", [(2, 3)], "num_axes"),
    ("Bias", "", [(2, 3, 4), (3, 5)], "does not match"),
    ("Bias", "bias_param { axis: 3 }", [(2, 3, 4)], "axis 3 is out of range"),
])
def test_scale_bias_errors(xp, type_name, text, shapes, match):
    bottoms = ("x", "s")[: len(shapes)]
    with pytest.raises(BpinspectError, match=match):
        make_layer(type_name, text, bottoms=bottoms).setup(shapes)
