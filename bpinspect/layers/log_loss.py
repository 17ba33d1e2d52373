"""Layer family: log losses over class probabilities. InfogainLoss and
MultinomialLogisticLoss, after src/caffe/layers/{infogain,multinomial_logistic}_loss_layer.cpp.

Both take ``log(max(p, 1e-20))`` (Caffe's kLOG_THRESHOLD), so a zero
probability gives a large finite loss, not infinity.

InfogainLoss: bottom[0] scores x, softmaxed along ``infogain_loss_param.axis``
(default 1) into p; bottom[1] one label per position outside that axis; an
infogain matrix H (K x K, K the number of classes) from bottom[2], or else from
the ``.binaryproto`` file ``infogain_loss_param.source`` (read at setup; a
relative path is looked up from the working directory, then beside the net).
Over the positions whose label l is not ``ignore_label``::

    loss = -sum_k H[l, k] log p_k / normalizer
    bottom_diff[k] = (p_k * sum_j H[l, j] - H[l, k]) * top_diff / normalizer   (0 if ignored)

``normalizer`` as SoftmaxWithLoss's (``normalization``, default VALID; Caffe
refuses the legacy ``normalize`` here, and so does this layer). A second top
receives p. No gradient reaches the labels or H. ``internals()``: ``prob`` (p)
and ``infogain`` (H as K x K).

MultinomialLogisticLoss: bottom[0] holds probabilities p (N, dim after
flattening), bottom[1] one label per sample (N, 1, 1, 1)::

    loss = -sum_n log(max(p[n, l_n], 1e-20)) / N
    bottom_diff[n, l_n] = -top_diff / (N max(p[n, l_n], 1e-20)),  0 elsewhere
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.loss import check_first_dim, class_labels, normalizer
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count
from bpinspect.layers.softmax import softmax
from bpinspect.proto import caffe_pb2

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD
_Norm = caffe_pb2.LossParameter
FULL, VALID, BATCH_SIZE, NONE = _Norm.FULL, _Norm.VALID, _Norm.BATCH_SIZE, _Norm.NONE


@register("InfogainLoss")
class InfogainLoss(Layer):
    min_num_bottoms = 2
    max_num_bottoms = 3
    min_num_tops = 1
    max_num_tops = 2
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        lp = param.loss_param
        if lp.HasField("normalize"):
            self.fail("loss_param.normalize is deprecated here (as in Caffe): use "
                      "normalization")
        self.normalization = int(lp.normalization)
        if self.normalization not in (FULL, VALID, BATCH_SIZE, NONE):
            self.fail(f"unknown normalization mode {self.normalization}")
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        ip = param.infogain_loss_param
        self.axis = int(ip.axis)
        self.source = str(ip.source) if ip.HasField("source") else None
        self._file_matrix: Any = None  # host array from source, read once
        self._axis = 1
        self._outer = self._inner = self._classes = 1
        self._prob: Array | None = None
        self._infogain: Array | None = None
        self._labels: Array | None = None
        self._valid: Array | None = None
        self._normalizer: Any = 1.0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, label = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        check_first_dim(self, shape, label)
        self._axis = canonical_axis(self, self.axis, len(shape))
        self._outer, self._inner = count(shape, 0, self._axis), count(shape, self._axis + 1)
        self._classes = shape[self._axis]
        if self._outer * self._inner != count(label):
            self.fail(f"the number of labels must match the number of predictions: "
                      f"{shape} with axis {self._axis} needs {self._outer * self._inner} "
                      f"labels, bottom[1] {label} has {count(label)}")
        k = self._classes
        if len(bottom_shapes) == 3:
            matrix_count = count(tuple(bottom_shapes[2]))
            where = f"bottom[2] {tuple(bottom_shapes[2])}"
        else:
            self._load_source()
            matrix_count = int(self._file_matrix.size)
            where = f"the matrix in {self.source} {tuple(self._file_matrix.shape)}"
        if matrix_count != k * k:
            self.fail(f"{where} must hold {k}x{k} values (one row per class), has "
                      f"{matrix_count}")
        self._prob = self._infogain = None
        tops: list[Shape] = [()]
        if len(self.param.top) >= 2:
            tops.append(shape)
        return tops

    def _load_source(self) -> None:
        if self._file_matrix is not None:
            return
        if not self.source:
            self.fail("needs the infogain matrix: give infogain_loss_param.source (a "
                      ".binaryproto file) or a third bottom")
        from bpinspect.errors import BpinspectError
        from bpinspect.io.caffemodel import read_binaryproto
        from bpinspect.io.db import resolve_path

        try:
            self._file_matrix = read_binaryproto(resolve_path(self.source, self.base_dir))
        except (OSError, BpinspectError) as e:
            self.fail(f"cannot read the infogain matrix: {e}")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0

    def _normalizer_of(self, valid_count: Any, dtype: Any) -> Any:
        return normalizer(self, valid_count, self._outer * self._inner, self._outer, dtype)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        k = self._classes
        if len(bottom) == 3:
            h = bottom[2].data.reshape(k, k)
        else:
            h = xp.asarray(self._file_matrix, dtype=x.dtype).reshape(k, k)
        prob = softmax(x, self._axis)
        p3 = prob.reshape(self._outer, k, self._inner)
        labels, valid = class_labels(self, bottom[1].data.reshape(self._outer, self._inner),
                                      k, self.ignore_label)
        rows = h[labels]  # (outer, inner, k): H[l, :] per position
        logs = xp.log(xp.maximum(p3, x.dtype.type(LOG_THRESHOLD))).transpose(0, 2, 1)
        per_position = xp.sum(rows * logs, axis=2)
        loss = -xp.sum(xp.where(valid, per_position, 0))
        self._normalizer = self._normalizer_of(xp.sum(valid), x.dtype)
        self._prob, self._infogain, self._labels, self._valid = prob, h, labels, valid
        top[0].data = xp.asarray(loss / self._normalizer, dtype=x.dtype).reshape(())
        if len(top) >= 2:
            top[1].data = prob

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[1]:
            self.fail("cannot backpropagate to the labels (bottom[1])")
        if len(propagate_down) > 2 and propagate_down[2]:
            self.fail("cannot backpropagate to the infogain matrix (bottom[2])")
        if not propagate_down[0]:
            return
        if self._prob is None or self._infogain is None:
            self.fail("backward before forward: no prob yet")
        xp = get_array_module(self._prob)
        k = self._classes
        h, labels, valid = self._infogain, self._labels, self._valid
        p3 = self._prob.reshape(self._outer, k, self._inner)
        row_sums = xp.sum(h, axis=1)[labels]  # (outer, inner)
        rows = h[labels].transpose(0, 2, 1)  # (outer, k, inner)
        diff = p3 * row_sums[:, None, :] - rows
        diff = xp.where(valid[:, None, :], diff, 0)
        scale = top[0].diff / self._normalizer
        bottom[0].diff = (diff * scale).astype(p3.dtype).reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        if self._prob is None:
            return {}
        return {"prob": self._prob, "infogain": self._infogain}


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._num = self._dim = 1
        self._labels: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, label = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        check_first_dim(self, shape, label)
        if len(label) > 4 or any(d != 1 for d in label[1:]):
            self.fail(f"takes one label per sample: bottom[1] must be (N, 1, 1, 1), got {label}")
        self._num, self._dim = shape[0], count(shape, 1)
        self._labels = None
        return [()]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def _picked(self, p: Array) -> Array:
        xp = get_array_module(p)
        picked = xp.take_along_axis(p, self._labels[:, None], axis=1)[:, 0]
        return xp.maximum(picked, p.dtype.type(LOG_THRESHOLD))

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        p = bottom[0].data.reshape(self._num, self._dim)
        xp = get_array_module(p)
        self._labels, _ = class_labels(self, bottom[1].data.reshape(self._num), self._dim, None)
        loss = -xp.sum(xp.log(self._picked(p))) / p.dtype.type(self._num)
        top[0].data = xp.asarray(loss, dtype=p.dtype).reshape(())

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[1]:
            self.fail("cannot backpropagate to the labels (bottom[1])")
        if not propagate_down[0]:
            return
        if self._labels is None:
            self.fail("backward before forward: no labels yet")
        p = bottom[0].data.reshape(self._num, self._dim)
        xp = get_array_module(p)
        scale = -top[0].diff / p.dtype.type(self._num)
        onehot = self._labels[:, None] == xp.arange(self._dim)[None, :]
        diff = xp.where(onehot, (scale / self._picked(p))[:, None], 0)
        bottom[0].diff = diff.astype(p.dtype).reshape(bottom[0].shape)
