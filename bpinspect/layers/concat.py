"""Layer family: concat. Concat, Slice and Split move values between blobs unchanged.

- Concat (src/caffe/layers/concat_layer.cpp): the bottoms are joined along
  ``axis`` (default 1; negative counts from the end; the legacy
  ``concat_dim`` is used when it is set). Backward gives each bottom its own
  slice of the top diff: ``bottom_i.diff = top.diff[..., o_i:o_{i+1}, ...]``.
  ``internals()["offsets"]`` holds ``o``: each bottom's start along the axis,
  then the top's size there (num_bottoms + 1 values).
- Slice (slice_layer.cpp): the inverse. The bottom is cut along ``axis`` (or
  the legacy ``slice_dim``) at ``slice_point``s, or into equal parts; backward
  writes each top's diff into its slice of the bottom diff. ``offsets`` as
  for Concat, one per top.
- Split (split_layer.cpp; inserted by the net where one blob feeds several
  layers): every top shares the bottom's data; backward *sums* the tops'
  diffs into the bottom diff. This is how a blob used twice (a blob
  concatenated with itself, say) receives the sum of both gradients.

With one bottom (Concat) or one top (Slice), the top shares the bottom's data
and the bottom gets the top's diff, as Caffe's ShareData/ShareDiff do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import Array
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis


def _legacy_or_axis(layer: Layer, p: Any, legacy: str, num_axes: int) -> int:
    """Caffe: ``axis`` and the legacy uint field may not both be given; the legacy
    one is used when set (never negative), else the canonical ``axis``."""
    if p.HasField("axis") and p.HasField(legacy):
        layer.fail(f"either axis or {legacy} should be specified; not both")
    if p.HasField(legacy):
        value = int(getattr(p, legacy))
        if value >= num_axes:
            layer.fail(f"{legacy} {value} is out of range for a blob with {num_axes} axes")
        return value
    return canonical_axis(layer, int(p.axis), num_axes)


def _index(axis: int, start: int, stop: int) -> tuple[Any, ...]:
    return (slice(None),) * axis + (slice(start, stop),)


@register("Concat")
class Concat(Layer):
    min_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.axis = 1  # the canonical axis, once set up
        self._offsets: np.ndarray = np.zeros(1, dtype=np.int64)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shapes = [tuple(s) for s in bottom_shapes]
        n = len(shapes[0])
        self.axis = _legacy_or_axis(self, self.param.concat_param, "concat_dim", n)
        for i, s in enumerate(shapes[1:], start=1):
            if len(s) != n:
                self.fail(f"all bottoms must have the same number of axes: bottom[0] is "
                          f"{shapes[0]}, bottom[{i}] is {s}")
            pairs = enumerate(zip(s, shapes[0], strict=True))
            if any(a != b for j, (a, b) in pairs if j != self.axis):
                self.fail(f"all bottoms must have the same shape except along axis "
                          f"{self.axis}: bottom[0] is {shapes[0]}, bottom[{i}] is {s}")
        sizes = [s[self.axis] for s in shapes]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        top = list(shapes[0])
        top[self.axis] = int(self._offsets[-1])
        return [tuple(top)]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        if len(bottom) == 1:
            top[0].data = bottom[0].data
            return
        xp = bottom[0].xp
        top[0].data = xp.concatenate([b.data for b in bottom], axis=self.axis)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        diff = top[0].diff
        if len(bottom) == 1:
            if propagate_down[0]:
                bottom[0].diff = diff
            return
        o = self._offsets
        # Copies, as Caffe's caffe_copy: each bottom diff owns its memory.
        parts = [diff[_index(self.axis, int(o[i]), int(o[i + 1]))].copy()
                 if propagate_down[i] else None for i in range(len(bottom))]
        for b, part in zip(bottom, parts, strict=True):
            if part is not None:
                b.diff = part

    def internals(self) -> dict[str, Array]:
        return {"offsets": self._offsets}


@register("Slice")
class Slice(Layer):
    exact_num_bottoms = 1
    min_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.axis = 1
        self.slice_point = [int(v) for v in param.slice_param.slice_point]
        self._offsets: np.ndarray = np.zeros(1, dtype=np.int64)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        num_tops = len(self.param.top)
        self.axis = _legacy_or_axis(self, self.param.slice_param, "slice_dim", len(shape))
        size = shape[self.axis]
        if self.slice_point:
            if len(self.slice_point) != num_tops - 1:
                self.fail(f"{len(self.slice_point)} slice_point(s) for {num_tops} tops "
                          f"(give one fewer than the tops)")
            points = [0, *self.slice_point, size]
            if any(b <= a for a, b in zip(points, points[1:], strict=False)):
                self.fail(f"slice_point {self.slice_point} must increase strictly within "
                          f"(0, {size}) along axis {self.axis}")
        else:
            if num_tops == 0 or size % num_tops:
                self.fail(f"{num_tops} tops do not evenly divide axis {self.axis} of size {size}")
            step = size // num_tops
            points = [i * step for i in range(num_tops + 1)]
        self._offsets = np.asarray(points, dtype=np.int64)
        tops = []
        for a, b in zip(points, points[1:], strict=False):
            s = list(shape)
            s[self.axis] = b - a
            tops.append(tuple(s))
        return tops

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        if len(top) == 1:
            top[0].data = x
            return
        o = self._offsets
        for i, t in enumerate(top):
            t.data = x[_index(self.axis, int(o[i]), int(o[i + 1]))].copy()

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        if len(top) == 1:
            bottom[0].diff = top[0].diff
            return
        xp = bottom[0].xp
        bottom[0].diff = xp.concatenate([t.diff for t in top], axis=self.axis)

    def internals(self) -> dict[str, Array]:
        return {"offsets": self._offsets}


@register("Split")
class Split(Layer):
    exact_num_bottoms = 1
    min_num_tops = 1

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        p = self.param
        if len(p.bottom) and p.bottom[0] in list(p.top):
            self.fail("does not allow in-place computation (as Caffe's Split)")
        return [tuple(bottom_shapes[0]) for _ in p.top]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for t in top:
            t.data = bottom[0].data  # shared, as Caffe's ShareData

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        total = top[0].diff.copy()
        for t in top[1:]:
            total += t.diff
        bottom[0].diff = total
