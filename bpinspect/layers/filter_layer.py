"""Layer family: filter. Filter keeps the items of its bottoms whose selector is
nonzero, after src/caffe/layers/filter_layer.cpp.

Bottoms ``x_1 .. x_K`` and, last, the selector ``s`` of shape ``(N, 1, ..., 1)``;
tops ``y_1 .. y_K``. With ``kept`` the item indices ``n`` where ``s[n] != 0``, in
order::

    y_k = x_k[kept]                      (along axis 0)
    dx_k[n] = dy_k[kept.index(n)]  if n is kept, else 0

The tops' first axis is ``len(kept)``, known only from the selector's values, so
it changes from forward to forward (``top_shapes_vary``): setup gives the full
batch ``N`` (Caffe's first Reshape does the same, whatever the selector holds; the
memory plan reads it as an upper bound), each forward reshapes the tops, and the
Net reshapes the layers after a top that changed before their own forward, as
Caffe's per-Forward Reshape does. ``net.reshape()`` sets the tops back to ``N``
(Caffe's Reshape would count the selector's current values; the next forward
gives the same shapes either way).

No gradient flows to the selector. Caffe's FilterLayer aborts in Backward when
``propagate_down`` holds for it, which ``force_backward: true`` makes so (the
layer keeps Caffe's default ``AllowForceBackward``); bpinspect's backward fails
there the same way, with one line. One deliberate difference: a forward that
keeps no item gives tops of ``0`` items and a backward of zero diffs, where
Caffe's backward divides by the empty top's ``0`` items.

``internals()["indices"]`` is ``kept`` as the last forward found it, the very
array backward routes the diffs with.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register


@register("Filter")
class Filter(Layer):
    min_num_bottoms = 2
    min_num_tops = 1
    # The Net reshapes the layers after this one when a forward changes a top's shape.
    top_shapes_vary: ClassVar[bool] = True

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._indices: Array = np.zeros(0, dtype=np.int64)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if len(bottom_shapes) - 1 != len(self.param.top):
            self.fail(f"takes one top per filtered bottom: {len(bottom_shapes) - 1} "
                      f"bottom(s) before the selector, {len(self.param.top)} top(s)")
        for k, (b, t) in enumerate(zip(self.param.bottom, self.param.top, strict=False)):
            if b == t:  # its top's first axis changes: the bottom's items would be lost
                self.fail(f"cannot filter {b!r} in place (bottom[{k}] and top[{k}]); give "
                          "the top another name")
        selector = tuple(bottom_shapes[-1])
        if not selector:
            self.fail("the selector (the last bottom) has no axes; it needs one item per row")
        if any(d != 1 for d in selector[1:]):
            self.fail(f"the selector (the last bottom) has shape {selector}: every axis but "
                      "the first must be 1")
        for k, shape in enumerate(bottom_shapes[:-1]):
            if not shape or shape[0] != selector[0]:
                self.fail(f"bottom[{k}] {tuple(shape)} and the selector {selector} differ in "
                          "their first axis: each bottom needs one item per selector row")
        return [tuple(shape) for shape in bottom_shapes[:-1]]

    def has_gradient(self, bottom_index: int) -> bool:
        # Caffe allows force_backward on the selector, then aborts in Backward; a gradient
        # check has nothing to check there (the tops are a step function of it).
        return bottom_index != len(self.param.bottom) - 1

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        selector = bottom[-1].data
        xp = get_array_module(selector)
        # A NaN selector keeps its item, as Caffe's `if (value)` does.
        self._indices = xp.nonzero(selector.reshape(selector.shape[0]) != 0)[0]
        for x, y in zip(bottom[:-1], top, strict=True):
            kept = xp.ascontiguousarray(x.data[self._indices])
            y.reshape(tuple(int(d) for d in kept.shape))  # a new diff only if the shape changed
            y.data = kept

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[-1]:
            self.fail(f"cannot backpropagate to the selector {self.param.bottom[-1]!r} (the "
                      "last bottom), as Caffe's FilterLayer refuses: give it propagate_down: "
                      "false and leave force_backward off")
        kept = int(self._indices.size)
        for k, (y, x) in enumerate(zip(top, bottom[:-1], strict=True)):
            if not propagate_down[k]:
                continue
            if y.diff.shape[:1] != (kept,):
                self.fail(f"top {self.param.top[k]!r} has a diff of shape {tuple(y.diff.shape)},"
                          f" the last forward kept {kept} item(s)")
            xp = get_array_module(y.diff)
            dx = xp.zeros(x.shape, dtype=y.diff.dtype)
            dx[self._indices] = y.diff
            x.diff = dx

    def internals(self) -> dict[str, Array]:
        return {"indices": self._indices}
