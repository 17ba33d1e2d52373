"""InfogainLoss (H from a third bottom or a .binaryproto file, normalizations,
ignore_label, axis, the prob top) and MultinomialLogisticLoss: losses by loops,
gradients numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

IGNORE = 7
K = 4


def infogain(text="", bottoms=("x", "label", "H"), tops=("loss",)):
    return make_layer("InfogainLoss", text, bottoms=bottoms, tops=tops)


def infogain_reference(x, labels, h, axis, ignore, mode):
    moved = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    flat = labels.ravel()
    total, valid = 0.0, 0
    for row, label in zip(moved, flat, strict=True):
        if ignore is not None and int(label) == ignore:
            continue
        m = max(row)
        z = sum(math.exp(v - m) for v in row)
        for k, v in enumerate(row):
            total -= h[int(label), k] * math.log(max(math.exp(v - m) / z, 1e-20))
        valid += 1
    outer = int(np.prod(x.shape[:axis]))
    normalizer = {"FULL": flat.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, normalizer)


def make_inputs(shape, axis, seed=0, ignored=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    label_shape = shape[:axis] + shape[axis + 1:]
    labels = rng.integers(0, shape[axis], label_shape).astype(np.float64)
    if ignored:
        labels.flat[::3] = IGNORE
    h = rng.uniform(0, 1, (shape[axis], shape[axis])) + np.eye(shape[axis])
    return x, labels, h


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_infogain_forward_and_gradient(xp, mode, ignore):
    text = f"loss_param {{ normalization: {mode} "
    text += f"ignore_label: {ignore} }}" if ignore is not None else "}"
    x, labels, h = make_inputs((3, K, 2, 2), 1, ignored=ignore is not None)
    labels = labels.reshape(3, 1, 2, 2)
    layer = infogain(text)
    _, tops = run_forward(layer, xp, [x, labels, h])
    assert float(to_host(tops[0].data)) == pytest.approx(
        infogain_reference(x, labels, h, 1, ignore, mode), rel=1e-12)
    np.testing.assert_array_equal(to_host(layer.internals()["infogain"]), h)
    assert_passed(check_layer(infogain(text), [xp.asarray(x), xp.asarray(labels),
                                               xp.asarray(h)],
                              propagate_down=[True, False, False]))


def test_infogain_axis_and_prob_top(xp):
    x, labels, h = make_inputs((2, 3, K), 2, seed=1)
    text = "infogain_loss_param { axis: -1 }"
    layer = infogain(text, tops=("loss", "prob"))
    _, tops = run_forward(layer, xp, [x, labels, h.ravel()])
    assert float(to_host(tops[0].data)) == pytest.approx(
        infogain_reference(x, labels, h, 2, None, "VALID"), rel=1e-12)
    e = np.exp(x - x.max(axis=2, keepdims=True))
    np.testing.assert_allclose(to_host(tops[1].data), e / e.sum(axis=2, keepdims=True),
                               rtol=1e-12)
    # (The prob top passes no gradient back, as in Caffe: check the loss alone.)
    assert_passed(check_layer(infogain(text), [xp.asarray(x), xp.asarray(labels), xp.asarray(h)],
                              propagate_down=[True, False, False]))


def test_infogain_with_the_identity_is_the_softmax_loss(xp):
    x, labels, _ = make_inputs((5, K), 1, seed=2)
    _, tops = run_forward(infogain(), xp, [x, labels, np.eye(K)])
    expected = -np.mean([x[i, int(labels[i])] - math.log(np.exp(x[i]).sum())
                         for i in range(5)])
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12)


def test_infogain_matrix_from_a_binaryproto(xp, tmp_path):
    x, labels, h = make_inputs((4, K), 1, seed=3)
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend([1, 1, K, K])
    proto.data.extend(h.ravel().tolist())
    (tmp_path / "H.binaryproto").write_bytes(proto.SerializeToString())
    text = 'infogain_loss_param { source: "H.binaryproto" }'
    layer = infogain(text, bottoms=("x", "label"))
    layer.base_dir = str(tmp_path)  # a relative source is found beside the net
    _, tops = run_forward(layer, xp, [x, labels])
    h32 = h.astype(np.float32).astype(np.float64)  # a BlobProto holds float32
    assert float(to_host(tops[0].data)) == pytest.approx(
        infogain_reference(x, labels, h32, 1, None, "VALID"), rel=1e-12)
    with pytest.raises(BpinspectError, match="source"):
        infogain(bottoms=("x", "label")).setup([(4, K), (4,)])
    with pytest.raises(BpinspectError, match="cannot read"):
        infogain('infogain_loss_param { source: "missing.binaryproto" }',
                 bottoms=("x", "label")).setup([(4, K), (4,)])


def test_infogain_errors(xp):
    with pytest.raises(BpinspectError, match="4x4"):
        infogain().setup([(2, K), (2,), (3, 3)])
    with pytest.raises(BpinspectError, match="normalize is deprecated"):
        infogain("loss_param { normalize: true }")
    layer = infogain()
    assert not layer.allow_force_backward(1) and not layer.allow_force_backward(2)
    with pytest.raises(BpinspectError, match="outside 0..3"):
        run_forward(infogain(), xp, [np.zeros((2, K)), np.array([0.0, 4.0]), np.eye(K)])


# ---- MultinomialLogisticLoss -----------------------------------------------------------


def multinomial():
    return make_layer("MultinomialLogisticLoss", bottoms=("p", "label"), tops=("loss",))


def test_multinomial_forward_and_gradient(xp):
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 1.0, (5, K))
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, K, (5, 1, 1, 1)).astype(np.float64)
    _, tops = run_forward(multinomial(), xp, [p, labels])
    expected = -sum(math.log(p[i, int(labels.ravel()[i])]) for i in range(5)) / 5
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12)
    assert_passed(check_layer(multinomial(), [xp.asarray(p), xp.asarray(labels)],
                              propagate_down=[True, False]))


def test_multinomial_zero_probability_is_finite(xp):
    p = np.array([[0.0, 1.0]])
    layer = multinomial()
    bottoms, tops = run_forward(layer, xp, [p, np.array([0.0])])
    assert float(to_host(tops[0].data)) == pytest.approx(-math.log(1e-20))
    tops[0].diff = xp.asarray(1.0)
    layer.backward(tops, [True, False], bottoms)
    np.testing.assert_allclose(to_host(bottoms[0].diff), [[-1e20, 0.0]])


def test_multinomial_label_shape():
    with pytest.raises(BpinspectError, match="one label per sample"):
        multinomial().setup([(3, K), (3, 2)])
