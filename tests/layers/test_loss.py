"""SoftmaxWithLoss (every normalization, ignore_label), EuclideanLoss and Accuracy,
against loop references; gradients with the label's propagate_down false."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward


def loss_layer(text="", tops=("loss",)):
    return make_layer("SoftmaxWithLoss", text, bottoms=("score", "label"), tops=tops)


IGNORE = 255


def softmax_loss_reference(x, labels, axis, ignore, mode):
    """Caffe's loop: -sum log p[label] over non-ignored positions / normalizer."""
    moved = np.moveaxis(x, axis, -1)
    outer = int(np.prod(x.shape[:axis]))
    positions = moved.reshape(-1, x.shape[axis])
    flat = labels.reshape(-1)
    total, valid = 0.0, 0
    for row, label in zip(positions, flat, strict=True):
        if ignore is not None and int(label) == ignore:
            continue
        m = max(row)
        log_sum = m + math.log(sum(math.exp(v - m) for v in row))
        total -= row[int(label)] - log_sum
        valid += 1
    normalizer = {"FULL": flat.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, normalizer)


def make_labels(rng, shape, classes, ignored=True):
    labels = rng.integers(0, classes, shape).astype(np.float64)
    if ignored:
        labels.flat[::3] = IGNORE
    return labels


MODES = ["FULL", "VALID", "BATCH_SIZE", "NONE"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_softmax_loss_forward(xp, mode, ignore):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2, 2)) * 2
    labels = make_labels(rng, (3, 1, 2, 2), 5, ignored=ignore is not None)
    text = f"loss_param {{ normalization: {mode} "
    text += f"ignore_label: {ignore} }}" if ignore is not None else "}"
    layer = loss_layer(text)
    _, tops = run_forward(layer, xp, [x, labels])
    assert tops[0].shape == ()
    expected = softmax_loss_reference(x, labels, 1, ignore, mode)
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_softmax_loss_gradient(xp, mode, ignore):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2)) * 2
    labels = make_labels(rng, (4, 2), 3, ignored=ignore is not None)
    text = f"loss_param {{ normalization: {mode} "
    text += f"ignore_label: {ignore} }}" if ignore is not None else "}"
    results = check_layer(loss_layer(text), [xp.asarray(x), xp.asarray(labels)],
                          propagate_down=[True, False])
    assert [r.what for r in results] == ["bottom[0]"]
    assert_passed(results)


@pytest.mark.parametrize(("normalize", "mode"), [("true", "VALID"), ("false", "BATCH_SIZE")])
def test_legacy_normalize(xp, normalize, mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3))
    labels = make_labels(rng, (4,), 3)
    layer = loss_layer(f"loss_param {{ normalize: {normalize} ignore_label: {IGNORE} }}")
    _, tops = run_forward(layer, xp, [x, labels])
    expected = softmax_loss_reference(x, labels, 1, IGNORE, mode)
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12)


def test_softmax_loss_other_axis(xp):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4))
    labels = rng.integers(0, 4, (2, 3)).astype(np.float64)
    layer = loss_layer("softmax_param { axis: 2 }")
    _, tops = run_forward(layer, xp, [x, labels])
    assert float(to_host(tops[0].data)) == pytest.approx(
        softmax_loss_reference(x, labels, 2, None, "VALID"), rel=1e-12)
    assert_passed(check_layer(loss_layer("softmax_param { axis: 2 }"),
                              [xp.asarray(x), xp.asarray(labels)], propagate_down=[True, False]))


def test_softmax_loss_backward_formula_and_prob(xp):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4))
    labels = np.array([2.0, IGNORE, 0.0])
    layer = loss_layer(f"loss_param {{ ignore_label: {IGNORE} }}", tops=("loss", "prob"))
    bottoms, tops = run_forward(layer, xp, [x, labels])
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(to_host(layer.internals()["prob"]), p, rtol=1e-12)
    np.testing.assert_allclose(to_host(tops[1].data), p, rtol=1e-12)  # the second top
    tops[0].diff = xp.asarray(np.float64(0.5))  # the loss weight
    bottoms[1].diff = xp.full(3, 7.0)
    layer.backward(tops, [True, False], bottoms)
    expected = p.copy()
    expected[0, 2] -= 1
    expected[2, 0] -= 1
    expected[1] = 0  # ignored
    np.testing.assert_allclose(to_host(bottoms[0].diff), expected * 0.5 / 2, rtol=1e-12)
    assert (to_host(bottoms[1].diff) == 7).all()  # the labels get nothing


def test_softmax_loss_contract(xp):
    layer = loss_layer()
    assert layer.is_loss
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    bottoms, tops = run_forward(layer, xp, [np.zeros((2, 3)), np.array([0.0, 1.0])])
    tops[0].diff = xp.asarray(np.float64(1.0))
    with pytest.raises(BpinspectError, match="label"):
        layer.backward(tops, [True, True], bottoms)


def test_softmax_loss_rejects_labels_out_of_range(xp):
    with pytest.raises(BpinspectError, match="label 3 is outside 0..2"):
        run_forward(loss_layer(), xp, [np.zeros((2, 3)), np.array([0.0, 3.0])])
    with pytest.raises(BpinspectError, match="label -1"):
        run_forward(loss_layer("loss_param { ignore_label: 255 }"), xp,
                    [np.zeros((2, 3)), np.array([-1.0, 255.0])])


def test_softmax_loss_all_ignored_is_zero_not_nan(xp):
    layer = loss_layer(f"loss_param {{ ignore_label: {IGNORE} }}")
    bottoms, tops = run_forward(layer, xp, [np.ones((2, 3)), np.array([IGNORE, IGNORE], float)])
    assert float(to_host(tops[0].data)) == 0.0
    tops[0].diff = xp.asarray(np.float64(1.0))
    layer.backward(tops, [True, False], bottoms)
    assert (to_host(bottoms[0].diff) == 0).all()


def test_softmax_loss_shape_checks(xp):
    with pytest.raises(BpinspectError, match="number of labels"):
        loss_layer().setup([(2, 3, 4), (2, 3)])
    with pytest.raises(BpinspectError, match="first dimension"):
        loss_layer().setup([(2, 3), (3,)])


# ---- EuclideanLoss -------------------------------------------------------------------


def euclidean(tops=("loss",)):
    return make_layer("EuclideanLoss", bottoms=("a", "b"), tops=tops)


def test_euclidean_forward(xp):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 2, 2))
    layer = euclidean()
    _, tops = run_forward(layer, xp, [a, b])
    total = sum((a.flat[i] - b.flat[i]) ** 2 for i in range(a.size))
    assert float(to_host(tops[0].data)) == pytest.approx(total / (2 * 3), rel=1e-12)
    np.testing.assert_allclose(to_host(layer.internals()["diff"]), a - b.reshape(3, 4))
    assert layer.is_loss and layer.allow_force_backward(1)


@pytest.mark.parametrize("down", [[True, True], [True, False], [False, True]])
def test_euclidean_gradients(xp, down):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 2, 2))
    results = check_layer(euclidean(), [xp.asarray(a), xp.asarray(b)], propagate_down=down)
    assert [r.what for r in results] == [f"bottom[{i}]" for i, d in enumerate(down) if d]
    assert_passed(results)


def test_euclidean_backward_signs(xp):
    a, b = np.array([[1.0, 2.0]]), np.array([[0.5, 4.0]])
    layer = euclidean()
    bottoms, tops = run_forward(layer, xp, [a, b])
    tops[0].diff = xp.asarray(np.float64(2.0))
    layer.backward(tops, [True, True], bottoms)
    np.testing.assert_allclose(to_host(bottoms[0].diff), 2.0 * (a - b))
    np.testing.assert_allclose(to_host(bottoms[1].diff), -2.0 * (a - b))


# ---- Accuracy ------------------------------------------------------------------------


def accuracy_reference(x, labels, top_k, ignore):
    hits = count = 0
    per_hits, per_count = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for row, label in zip(x, labels, strict=True):
        label = int(label)
        if ignore is not None and label == ignore:
            continue
        better = sum(1 for v in row if v >= row[label]) - 1
        count += 1
        per_count[label] += 1
        if better < top_k:
            hits += 1
            per_hits[label] += 1
    per_class = np.divide(per_hits, per_count, out=np.zeros_like(per_hits), where=per_count > 0)
    return (hits / count if count else 0.0), per_class


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_accuracy(xp, top_k, ignore):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 4))
    labels = make_labels(rng, (20,), 4, ignored=ignore is not None)
    text = f"accuracy_param {{ top_k: {top_k} "
    text += f"ignore_label: {ignore} }}" if ignore is not None else "}"
    layer = make_layer("Accuracy", text, bottoms=("score", "label"), tops=("acc", "per_class"))
    _, tops = run_forward(layer, xp, [x, labels])
    expected, per_class = accuracy_reference(x, labels, top_k, ignore)
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(to_host(tops[1].data), per_class, rtol=1e-12)
    assert 0 < expected < 1


def accuracy_loop(scores, labels, axis, top_k, ignore):
    """accuracy_layer.cpp's Forward_cpu on the flat arrays: (accuracy, per-class)."""
    data, label = scores.reshape(-1), labels.reshape(-1)
    axis %= scores.ndim
    outer, num_labels = int(np.prod(scores.shape[:axis])), scores.shape[axis]
    inner = int(np.prod(scores.shape[axis + 1:]))
    dim = data.size // outer
    accuracy = count = 0
    nums, hits = [0] * num_labels, [0] * num_labels
    for i in range(outer):
        for j in range(inner):
            label_value = int(label[i * inner + j])
            if ignore is not None and label_value == ignore:
                continue
            nums[label_value] += 1
            prob_of_true_class = data[i * dim + label_value * inner + j]
            num_better_predictions = -1  # the true class also counts as "better"
            for k in range(num_labels):
                num_better_predictions += data[i * dim + k * inner + j] >= prob_of_true_class
            if num_better_predictions < top_k:
                accuracy += 1
                hits[label_value] += 1
            count += 1
    per_class = [0.0 if n == 0 else h / n for h, n in zip(hits, nums, strict=True)]
    return (0.0 if count == 0 else accuracy / count), np.array(per_class)


@pytest.mark.parametrize(("axis", "shape", "label_shape"), [
    (None, (2, 5, 3, 4), (2, 3, 4)),  # (N, C, H, W) scores, (N, H, W) labels
    (1, (3, 5, 7), (3, 1, 7)),  # only the count must match
    (2, (2, 3, 5, 4), (2, 3, 4)),
    (-1, (4, 3, 5), (4, 3)),
    (0, (5, 4, 6), (24,)),
])
@pytest.mark.parametrize(("top_k", "ignore"), [(1, None), (2, None), (3, 1), (1, IGNORE)])
@pytest.mark.parametrize("ties", [False, True])
def test_accuracy_axis_spatial_top_k_ignore_per_class(xp, axis, shape, label_shape, top_k,
                                                      ignore, ties):
    rng = np.random.default_rng(8)
    classes = shape[axis if axis is not None else 1]
    # Ties (scores rounded to halves): Caffe counts a class scoring >= the true one as better.
    x = rng.standard_normal(shape)
    if ties:
        x = np.round(2 * x) / 2
    labels = rng.integers(0, classes - 1, label_shape).astype(np.float64)  # none of the last
    if ignore == IGNORE:
        labels.flat[::4] = IGNORE
    fields = [f"top_k: {top_k}"] + ([f"axis: {axis}"] if axis is not None else [])
    fields += [f"ignore_label: {ignore}"] if ignore is not None else []
    text = f"accuracy_param {{ {' '.join(fields)} }}"
    layer = make_layer("Accuracy", text, bottoms=("score", "label"), tops=("acc", "per_class"))
    assert layer.setup([shape, label_shape]) == [(), (classes,)]
    _, tops = run_forward(make_layer("Accuracy", text, bottoms=("score", "label"),
                                     tops=("acc", "per_class")), xp, [x, labels])
    expected, per_class = accuracy_loop(x, labels, axis if axis is not None else 1, top_k,
                                        ignore)
    assert 0 < expected < 1 and per_class[-1] == 0  # the last class: no label, 0 not NaN
    if ignore == 1:  # an ignored real class: counted nowhere
        assert per_class[1] == 0
    assert float(to_host(tops[0].data)) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert to_host(tops[1].data).shape == (classes,)
    np.testing.assert_allclose(to_host(tops[1].data), per_class, rtol=1e-12)
    # One top: the same accuracy.
    _, (acc,) = run_forward(make_layer("Accuracy", text, bottoms=("score", "label"),
                                       tops=("acc",)), xp, [x, labels])
    assert float(to_host(acc.data)) == float(to_host(tops[0].data))


def test_accuracy_has_no_backward(xp):
    layer = make_layer("Accuracy", bottoms=("score", "label"), tops=("acc",))
    assert not layer.is_loss
    assert not layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    bottoms, tops = run_forward(layer, xp, [np.eye(3), np.array([0.0, 1.0, 1.0])])
    assert float(to_host(tops[0].data)) == pytest.approx(2 / 3)
    bottoms[0].diff = xp.full((3, 3), 4.0)
    tops[0].diff = xp.asarray(np.float64(1.0))
    layer.backward(tops, [True, False], bottoms)
    assert (to_host(bottoms[0].diff) == 4).all()
