"""Layer family: loss. SoftmaxWithLoss, EuclideanLoss, and Accuracy (not a loss).

A loss layer's top[0] is a scalar (shape ``()``) with loss weight 1 unless
the prototxt says otherwise; backward scales the gradient by that top's diff,
which the net seeds with the loss weight (Caffe's LossLayer contract).

SoftmaxWithLoss (src/caffe/layers/softmax_loss_layer.cpp). With ``p`` the
softmax of bottom[0] along ``axis`` (default 1) and labels ``l`` (bottom[1],
one per position outside ``axis``), over the positions whose label is not
``ignore_label``::

    loss = -sum log(max(p[l], FLT_MIN)) / normalizer
    bottom_diff = (p - onehot(l)) * top_diff / normalizer    (0 at ignored positions)

``normalizer`` is max(1, n) with n = the number of non-ignored labels (VALID,
the default), all positions (FULL), the outer count (BATCH_SIZE) or 1
(NONE); a legacy ``normalize: false`` means BATCH_SIZE, ``true`` VALID.
``internals()["prob"]`` is ``p``; a second top receives ``p`` too. No
gradient flows to the labels.

EuclideanLoss (euclidean_loss_layer.cpp): with ``d = a - b`` and N = a's
first dimension, ``loss = sum(d^2) / (2N)``, ``da = +d * top_diff / N``,
``db = -d * top_diff / N``; ``internals()["diff"]`` is ``d``.

Accuracy (accuracy_layer.cpp): the fraction of non-ignored positions whose
label's score is among the ``top_k`` best; an optional second top gives it per
class. It has no backward (Caffe's is NOT_IMPLEMENTED): backward leaves the
bottoms alone, and ``allow_force_backward`` is False for both bottoms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count
from bpinspect.layers.softmax import softmax
from bpinspect.proto import caffe_pb2

FLT_MIN = float(np.finfo(np.float32).tiny)

_Norm = caffe_pb2.LossParameter
FULL, VALID, BATCH_SIZE, NONE = _Norm.FULL, _Norm.VALID, _Norm.BATCH_SIZE, _Norm.NONE


def _num_tops(layer: Layer) -> int:
    # Caffe's AutoTopBlobs gives a loss layer with no top one anonymous top.
    return max(len(layer.param.top), 1)


def class_labels(layer: Layer, label: Array, classes: int, ignore: int | None
                 ) -> tuple[Array, Array]:
    """(labels, ignored ones replaced by 0; valid mask), in ``label``'s shape; a label
    out of ``[0, classes)`` that is not ``ignore_label`` is an error naming the layer."""
    xp = get_array_module(label)
    lab = label.astype(xp.int64)  # static_cast<int>: toward zero
    valid = lab != ignore if ignore is not None else xp.ones(lab.shape, dtype=bool)
    bad = valid & ((lab < 0) | (lab >= classes))
    if bool(bad.any()):
        first = int(lab[bad].ravel()[0])
        layer.fail(f"label {first} is outside 0..{classes - 1} (the size of the class axis)"
                   + ("" if ignore is None else f" and is not ignore_label {ignore}"))
    return xp.where(valid, lab, 0), valid


def _labels(
    layer: Layer, label: Array, outer: int, inner: int, channels: int, ignore: int | None
) -> tuple[Array, Array]:
    """:func:`class_labels` of the label blob as (outer, inner)."""
    return class_labels(layer, label.reshape(outer, inner), channels, ignore)


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(Layer):
    exact_num_bottoms = 2
    min_num_tops = 1
    max_num_tops = 2
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        lp = param.loss_param
        self.axis = int(param.softmax_param.axis)
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = VALID if lp.normalize else BATCH_SIZE
        else:
            self.normalization = int(lp.normalization)
        self._axis = 1
        self._outer = self._inner = self._channels = 0
        self._prob: Array = None  # until forward
        self._labels: Array = None  # until forward
        self._valid: Array = None  # until forward
        self._normalizer: Any = 1.0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, label_shape = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        self._axis = canonical_axis(self, self.axis, len(shape))
        check_first_dim(self, shape, label_shape)
        self._outer, self._inner = count(shape, 0, self._axis), count(shape, self._axis + 1)
        self._channels = shape[self._axis]
        if self._outer * self._inner != count(label_shape):
            self.fail(
                f"the number of labels must match the number of predictions: prediction "
                f"shape {shape} with axis {self._axis} needs {self._outer * self._inner} "
                f"labels, the label blob {label_shape} has {count(label_shape)}"
            )
        self._prob = None
        tops: list[Shape] = [()]
        if _num_tops(self) >= 2:
            tops.append(shape)
        return tops

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def _normalizer_of(self, valid_count: Any, dtype: Any) -> Any:
        return normalizer(self, valid_count, self._outer * self._inner, self._outer, dtype)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        prob = softmax(x, self._axis)
        p3 = prob.reshape(self._outer, self._channels, self._inner)
        labels, valid = _labels(self, bottom[1].data, self._outer, self._inner,
                                self._channels, self.ignore_label)
        picked = xp.take_along_axis(p3, labels[:, None, :], axis=1)[:, 0, :]
        logs = xp.log(xp.maximum(picked, picked.dtype.type(FLT_MIN)))
        loss = -xp.sum(xp.where(valid, logs, 0))
        self._normalizer = self._normalizer_of(xp.sum(valid), x.dtype)
        self._prob, self._labels, self._valid = prob, labels, valid
        top[0].data = xp.asarray(loss / self._normalizer, dtype=x.dtype).reshape(())
        if len(top) >= 2:
            top[1].data = prob

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if len(propagate_down) > 1 and propagate_down[1]:
            self.fail("cannot backpropagate to the label input (bottom[1])")
        if not propagate_down[0]:
            return
        if self._prob is None or self._labels is None or self._valid is None:
            self.fail("backward before forward: no prob yet")
        xp = get_array_module(self._prob)
        p3 = self._prob.reshape(self._outer, self._channels, self._inner)
        classes = xp.arange(self._channels).reshape(1, -1, 1)
        onehot = classes == self._labels[:, None, :]
        diff = xp.where(self._valid[:, None, :], p3 - onehot, 0)
        scale = top[0].diff / self._normalizer
        bottom[0].diff = (diff * scale).astype(p3.dtype).reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        return {} if self._prob is None else {"prob": self._prob}


def normalizer(layer: Any, valid_count: Any, full: int, batch: int, dtype: Any) -> Any:
    """Caffe's LossLayer::GetNormalizer for ``layer.normalization``: ``full`` positions
    (FULL), the non-ignored ones (VALID, a device scalar: no host sync), ``batch``
    (BATCH_SIZE) or 1 (NONE); at least 1."""
    mode = layer.normalization
    if mode == FULL:
        return float(max(1, full))
    if mode == VALID:
        return get_array_module(valid_count).maximum(valid_count, 1).astype(dtype)
    if mode == BATCH_SIZE:
        return float(max(1, batch))
    if mode == NONE:
        return 1.0
    layer.fail(f"unknown normalization mode {mode}")
    raise AssertionError("unreachable: fail raises")


def check_first_dim(layer: Layer, shape: Shape, other: Shape) -> None:
    """LossLayer::Reshape: data and label have the same first dimension."""
    if not shape or not other or shape[0] != other[0]:
        layer.fail(f"bottom[0] {shape} and bottom[1] {other} must have the same first dimension")


@register("EuclideanLoss")
class EuclideanLoss(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._diff: Array = None  # until forward
        self._num = 1

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        a, b = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        check_first_dim(self, a, b)
        if count(a, 1) != count(b, 1):
            self.fail(f"inputs must have the same dimension: {a} and {b}")
        self._num = a[0]
        self._diff = None
        return [()]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        a = bottom[0].data
        xp = get_array_module(a)
        d = a - bottom[1].data.reshape(a.shape)
        self._diff = d
        loss = xp.sum(d * d) / a.dtype.type(self._num) / a.dtype.type(2)
        top[0].data = xp.asarray(loss, dtype=a.dtype).reshape(())

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if self._diff is None:
            self.fail("backward before forward: no diff yet")
        d = self._diff
        grads = []
        for i, down in enumerate(propagate_down[:2]):
            if down:
                sign = 1.0 if i == 0 else -1.0
                alpha = top[0].diff * d.dtype.type(sign / self._num)
                grads.append((i, (d * alpha).astype(d.dtype).reshape(bottom[i].shape)))
        for i, g in grads:
            bottom[i].diff = g

    def internals(self) -> dict[str, Array]:
        return {} if self._diff is None else {"diff": self._diff}


@register("Accuracy")
class Accuracy(Layer):
    exact_num_bottoms = 2
    min_num_tops = 1
    max_num_tops = 2

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        ap = param.accuracy_param
        self.top_k = int(ap.top_k)
        self.axis = int(ap.axis)
        self.ignore_label = int(ap.ignore_label) if ap.HasField("ignore_label") else None
        self._axis = 1
        self._outer = self._inner = self._channels = 0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, label_shape = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        self._axis = canonical_axis(self, self.axis, len(shape))
        self._outer, self._inner = count(shape, 0, self._axis), count(shape, self._axis + 1)
        self._channels = shape[self._axis]
        if self._outer * self._inner != count(label_shape):
            self.fail(
                f"the number of labels must match the number of predictions: prediction "
                f"shape {shape} with axis {self._axis} needs {self._outer * self._inner} "
                f"labels, the label blob {label_shape} has {count(label_shape)}"
            )
        if self.top_k > self._channels:
            self.fail(f"top_k {self.top_k} is more than the {self._channels} classes")
        tops: list[Shape] = [()]
        if len(self.param.top) >= 2:
            tops.append((self._channels,))
        return tops

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        x3 = x.reshape(self._outer, self._channels, self._inner)
        labels, valid = _labels(self, bottom[1].data, self._outer, self._inner,
                                self._channels, self.ignore_label)
        true_score = xp.take_along_axis(x3, labels[:, None, :], axis=1)
        # The true class counts itself among those scoring >= it.
        better = xp.sum(x3 >= true_score, axis=1) - 1
        correct = valid & (better < self.top_k)
        n_valid = xp.sum(valid)
        acc = xp.where(n_valid > 0, xp.sum(correct) / xp.maximum(n_valid, 1), 0)
        top[0].data = xp.asarray(acc, dtype=x.dtype).reshape(())
        if len(top) >= 2:
            classes = xp.arange(self._channels).reshape(1, 1, -1)
            is_class = (labels[:, :, None] == classes) & valid[:, :, None]
            nums = xp.sum(is_class, axis=(0, 1))
            hits = xp.sum(is_class & correct[:, :, None], axis=(0, 1))
            per_class = xp.where(nums > 0, hits / xp.maximum(nums, 1), 0)
            top[1].data = per_class.astype(x.dtype)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """Accuracy has no gradient; the bottoms' diffs are left as they are."""
