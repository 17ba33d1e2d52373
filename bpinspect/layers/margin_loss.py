"""Layer family: margin losses. HingeLoss and ContrastiveLoss, after
src/caffe/layers/{hinge,contrastive}_loss_layer.cpp.

HingeLoss: bottom[0] scores x (N, dim after flattening), bottom[1] one label l
per sample (its first N values). With ``s = -1`` at the label's score and ``+1`` elsewhere, the
margins are ``m = max(0, 1 + s * x)`` and::

    L1 (default):  loss = sum(m) / N        bottom_diff = s * [m > 0] * top_diff / N
    L2:            loss = sum(m^2) / N      bottom_diff = 2 s * m * top_diff / N

``internals()["margins"]`` is ``m`` (Caffe keeps it in bottom[0]'s diff).

ContrastiveLoss: bottoms a, b (N, C, 1, 1) and a similarity y (N, 1, 1, 1), 1 for
similar pairs; ``d = a - b``, ``dist_sq = |d|^2`` per pair, margin ``M``
(default 1)::

    similar:     loss_n = dist_sq                        da = d
    dissimilar:  loss_n = max(M - dist, 0)^2             da = -(M - dist) / (dist + 1e-4) * d
                 legacy_version: max(M - dist_sq, 0)     da = -d           (where M - ... > 0)
    loss = sum(loss_n) / (2 N),   a_diff = da * top_diff / N,   b_diff = -a_diff

The 1e-4 is Caffe's guard against dist = 0, so the non-legacy gradient is
Caffe's, not exactly the derivative of the loss. No gradient reaches y.
``internals()``: ``diff`` (d) and ``dist_sq``.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import count
from bpinspect.proto import caffe_pb2

L1, L2 = caffe_pb2.HingeLossParameter.L1, caffe_pb2.HingeLossParameter.L2


def _legacy4(layer: Layer, shape: Shape, what: str) -> Shape:
    """Caffe's (num, channels, height, width) reading of a blob of at most 4 axes."""
    if not 1 <= len(shape) <= 4:
        layer.fail(f"{what} {shape}: expected 1 to 4 axes (num, channels, height, width)")
    return shape + (1,) * (4 - len(shape))


@register("HingeLoss")
class HingeLoss(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.norm = int(param.hinge_loss_param.norm)
        if self.norm not in (L1, L2):
            self.fail(f"unknown norm {self.norm} (L1 or L2)")
        self._num = self._dim = 1
        self._sign: Array | None = None
        self._margins: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, label = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if not shape or not label or shape[0] != label[0]:
            self.fail(f"bottom[0] {shape} and bottom[1] {label} must have the same "
                      "first dimension")
        self._num, self._dim = shape[0], count(shape, 1)
        self._sign = self._margins = None
        return [()]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data.reshape(self._num, self._dim)
        xp = get_array_module(x)
        # The first N label values, one per sample (as Caffe reads them), toward zero.
        labels = bottom[1].data.reshape(-1)[: self._num].astype(xp.int64)
        bad = (labels < 0) | (labels >= self._dim)
        if bool(bad.any()):
            self.fail(f"label {int(labels[bad][0])} is outside 0..{self._dim - 1}")
        is_label = labels[:, None] == xp.arange(self._dim)[None, :]
        sign = xp.where(is_label, x.dtype.type(-1), x.dtype.type(1))
        margins = xp.maximum(0, 1 + sign * x)
        total = xp.sum(margins) if self.norm == L1 else xp.sum(margins * margins)
        self._sign, self._margins = sign, margins
        top[0].data = xp.asarray(total / x.dtype.type(self._num), dtype=x.dtype).reshape(())

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[1]:
            self.fail("cannot backpropagate to the labels (bottom[1])")
        if not propagate_down[0]:
            return
        if self._sign is None or self._margins is None:
            self.fail("backward before forward: no margins yet")
        m = self._margins
        scale = top[0].diff / m.dtype.type(self._num)
        if self.norm == L1:
            dx = self._sign * (m > 0) * scale
        else:
            dx = self._sign * m * (2 * scale)
        bottom[0].diff = dx.astype(m.dtype).reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        return {} if self._margins is None else {"margins": self._margins}


DIST_GUARD = 1e-4  # Caffe's: dist + 1e-4 in the dissimilar gradient


@register("ContrastiveLoss")
class ContrastiveLoss(Layer):
    exact_num_bottoms = 3
    exact_num_tops = 1
    is_loss = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy_version = bool(p.legacy_version)
        self._num = self._channels = 1
        self._diff: Array | None = None
        self._dist_sq: Array | None = None
        self._similar: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        a = _legacy4(self, tuple(bottom_shapes[0]), "bottom[0]")
        b = _legacy4(self, tuple(bottom_shapes[1]), "bottom[1]")
        y = _legacy4(self, tuple(bottom_shapes[2]), "bottom[2]")
        if a[0] != b[0] or a[0] != y[0]:
            self.fail(f"the three bottoms must have the same first dimension: "
                      f"{tuple(bottom_shapes[0])}, {tuple(bottom_shapes[1])}, "
                      f"{tuple(bottom_shapes[2])}")
        if a[1] != b[1] or a[2:] != (1, 1) or b[2:] != (1, 1):
            self.fail(f"a {tuple(bottom_shapes[0])} and b {tuple(bottom_shapes[1])} must "
                      "both be (N, C, 1, 1) with the same C")
        if y[1:] != (1, 1, 1):
            self.fail(f"the similarity {tuple(bottom_shapes[2])} must be (N, 1, 1, 1)")
        self._num, self._channels = a[0], a[1]
        self._diff = self._dist_sq = self._similar = None
        return [()]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        a = bottom[0].data.reshape(self._num, self._channels)
        xp = get_array_module(a)
        t = a.dtype.type
        d = a - bottom[1].data.reshape(self._num, self._channels)
        dist_sq = xp.sum(d * d, axis=1)
        similar = bottom[2].data.reshape(self._num).astype(xp.int64) != 0
        if self.legacy_version:
            apart = xp.maximum(t(self.margin) - dist_sq, 0)
        else:
            gap = xp.maximum(t(self.margin) - xp.sqrt(dist_sq), 0)
            apart = gap * gap
        loss = xp.sum(xp.where(similar, dist_sq, apart)) / t(self._num) / t(2)
        self._diff, self._dist_sq, self._similar = d, dist_sq, similar
        top[0].data = xp.asarray(loss, dtype=a.dtype).reshape(())

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not (propagate_down[0] or propagate_down[1]):
            return
        if self._diff is None or self._dist_sq is None or self._similar is None:
            self.fail("backward before forward: no distances yet")
        xp = get_array_module(self._diff)
        d = self._diff
        t = d.dtype.type
        if self.legacy_version:
            mdist = t(self.margin) - self._dist_sq
            beta = xp.full(mdist.shape, t(-1))
        else:
            dist = xp.sqrt(self._dist_sq)
            mdist = t(self.margin) - dist
            beta = -mdist / (dist + t(DIST_GUARD))
        factor = xp.where(self._similar, t(1), xp.where(mdist > 0, beta, t(0)))
        grad = (factor[:, None] * d) * (top[0].diff / t(self._num))
        grad = grad.astype(d.dtype)
        if propagate_down[0]:
            bottom[0].diff = grad.reshape(bottom[0].shape)
        if propagate_down[1]:
            bottom[1].diff = (-grad).reshape(bottom[1].shape)

    def internals(self) -> dict[str, Array]:
        if self._diff is None:
            return {}
        return {"diff": self._diff, "dist_sq": self._dist_sq}
