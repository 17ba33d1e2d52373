"""Layer family: ArgMax, the indices of the ``top_k`` largest values, after
src/caffe/layers/argmax_layer.cpp.

- With ``axis``: along that axis; the top is the bottom's shape with ``top_k``
  there, holding the indices (or, with ``out_max_val``, the values instead).
- Without ``axis``: over each sample's flattened values (all axes but the
  first); the top is (N, 1, top_k), or (N, 2, top_k) with ``out_max_val``
  (indices, then values), padded with axes of size 1 to the bottom's number of
  axes.

Ranks follow Caffe's sort of (value, index) pairs, largest first: of equal
values the larger index comes first. Indices are written as floats, as Caffe
does. ArgMax has no gradient: ``allow_force_backward`` is False, and a backward
asked to reach its bottom is an error. ``internals()["indices"]`` holds the
integer indices of the last forward (top_k along the reduced axis), whatever
the top shows.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count


@register("ArgMax")
class ArgMax(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        self.has_axis = p.HasField("axis")
        self.axis = int(p.axis)
        self._axis = 1
        self._bottom_shape: Shape = ()
        self._indices: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if self.top_k < 1:
            self.fail(f"top_k must be at least 1, got {self.top_k}")
        self._bottom_shape = shape
        self._indices = None
        if self.has_axis:
            self._axis = canonical_axis(self, self.axis, len(shape))
            if self.top_k > shape[self._axis]:
                self.fail(f"top_k {self.top_k} is more than the {shape[self._axis]} values "
                          f"along axis {self._axis}")
            top = list(shape)
            top[self._axis] = self.top_k
            return [tuple(top)]
        if not shape:
            self.fail("needs a bottom with at least one axis")
        if self.top_k > count(shape, 1):
            self.fail(f"top_k {self.top_k} is more than the {count(shape, 1)} values per sample")
        top = [1] * max(len(shape), 3)
        top[0], top[1], top[2] = shape[0], 2 if self.out_max_val else 1, self.top_k
        return [tuple(top)]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        # (outer, dim, inner) with the ranked axis in the middle.
        if self.has_axis:
            a = self._axis
            view = x.reshape(count(x.shape, 0, a), x.shape[a], count(x.shape, a + 1))
        else:
            view = x.reshape(x.shape[0], -1, 1)
        dim = view.shape[1]
        # Largest first, ties to the larger index: sort (-value, -index) ascending, by
        # a stable sort of the reversed axis on -value.
        reversed_view = view[:, ::-1, :]
        order = xp.argsort(-reversed_view, axis=1, kind="stable")[:, : self.top_k, :]
        indices = dim - 1 - order
        values = xp.take_along_axis(view, indices, axis=1)
        self._indices = indices
        if self.has_axis:
            picked = values if self.out_max_val else indices.astype(x.dtype)
            top[0].data = picked.reshape(top[0].shape)
            return
        rows = indices[:, :, 0].astype(x.dtype)
        if self.out_max_val:
            rows = xp.concatenate([rows, values[:, :, 0]], axis=1)
        top[0].data = rows.reshape(top[0].shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            self.fail("has no gradient (Caffe's backward is not implemented): give the "
                      "layer after it propagate_down: false")

    def internals(self) -> dict[str, Array]:
        return {} if self._indices is None else {"indices": self._indices}
