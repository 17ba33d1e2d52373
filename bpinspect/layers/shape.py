"""Layer family: shape. Flatten and Reshape change a blob's shape, never its values.

Both follow Caffe in sharing memory: the top's data is a view of the bottom's
data (src/caffe/layers/flatten_layer.cpp, reshape_layer.cpp) and the bottom's
diff a view of the top's diff, reshaped. Forward: ``top = reshape(bottom)``;
gradient: ``bottom_diff = reshape(top_diff)``.

``canonical_axis`` (Caffe's ``Blob::CanonicalAxisIndex``) lives here and is
shared by the other families.
"""

from __future__ import annotations

import math
from typing import Any

from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register


def canonical_axis(layer: Layer, axis: int, num_axes: int, what: str = "axis") -> int:
    """``axis`` in ``[-num_axes, num_axes)``, negative counting from the end."""
    if not -num_axes <= axis < num_axes:
        layer.fail(
            f"{what} {axis} is out of range for a blob with {num_axes} axes "
            f"(expected {-num_axes} <= {what} < {num_axes})"
        )
    return axis + num_axes if axis < 0 else axis


def count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    """Caffe's ``Blob::count(start, end)``: the product of ``shape[start:end]``."""
    return math.prod(shape[start:end])


def _not_in_place(layer: Layer) -> None:
    p = layer.param
    if len(p.bottom) and len(p.top) and p.bottom[0] == p.top[0]:
        layer.fail("does not allow in-place computation (bottom and top are the same blob)")


class _View(Layer):
    """A layer whose top is its bottom seen with another shape."""

    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._bottom_shape: Shape = ()
        self._top_shape: Shape = ()

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].data = bottom[0].data.reshape(self._top_shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            bottom[0].diff = top[0].diff.reshape(self._bottom_shape)


@register("Flatten")
class Flatten(_View):
    """Merge axes ``axis..end_axis`` (inclusive; defaults 1 and -1) into one."""

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.flatten_param
        self.axis = int(p.axis)
        self.end_axis = int(p.end_axis)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        _not_in_place(self)
        shape = tuple(bottom_shapes[0])
        n = len(shape)
        start = canonical_axis(self, self.axis, n, "axis")
        end = canonical_axis(self, self.end_axis, n, "end_axis")
        if end < start:
            self.fail(f"end_axis {self.end_axis} comes before axis {self.axis}")
        top = shape[:start] + (count(shape, start, end + 1),) + shape[end + 1 :]
        self._bottom_shape, self._top_shape = shape, top
        return [top]


@register("Reshape")
class Reshape(_View):
    """Replace axes ``axis .. axis+num_axes`` by ``shape``: 0 copies the bottom's
    dimension at that position, -1 is inferred from the count."""

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.reshape_param
        self.shape = [int(d) for d in p.shape.dim]
        self.axis = int(p.axis)
        self.num_axes = int(p.num_axes)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        _not_in_place(self)
        bshape = tuple(bottom_shapes[0])
        n = len(bshape)
        copy_axes = [i for i, d in enumerate(self.shape) if d == 0]
        inferred = [i for i, d in enumerate(self.shape) if d == -1]
        if len(inferred) > 1:
            self.fail("reshape_param.shape has more than one -1 (at most one dim is inferred)")
        if any(d < -1 for d in self.shape):
            self.fail(f"reshape_param.shape {self.shape}: dims must be >= -1")
        start = self.axis if self.axis >= 0 else n + self.axis + 1
        if not 0 <= start <= n:
            self.fail(f"axis {self.axis} is out of range for a {n}-axis bottom")
        if self.num_axes < -1:
            self.fail(f"num_axes must be >= 0, or -1 for all; got {self.num_axes}")
        end = n if self.num_axes == -1 else start + self.num_axes
        if end > n:
            self.fail(f"axis + num_axes = {end} is out of range for a {n}-axis bottom")
        top = list(bshape[:start]) + list(self.shape) + list(bshape[end:])
        for i in copy_axes:
            if start + i >= n:
                self.fail(
                    f"reshape_param.shape has a 0 at position {i}, but the bottom has no "
                    f"axis {start + i} to copy"
                )
            top[start + i] = bshape[start + i]
        total = count(bshape)
        if inferred:
            known = math.prod(d for j, d in enumerate(top) if j != start + inferred[0])
            if known == 0 or total % known:
                self.fail(
                    f"cannot infer the -1 dim: the bottom count {total} is not divisible by "
                    f"the product of the other dims ({known})"
                )
            top[start + inferred[0]] = total // known
        if count(tuple(top)) != total:
            self.fail(
                f"top shape {tuple(top)} has {count(tuple(top))} values, the bottom "
                f"{bshape} has {total}"
            )
        self._bottom_shape, self._top_shape = bshape, tuple(top)
        return [self._top_shape]
