"""Layer family: plumbing. Layers that move, repeat or drop values without
arithmetic on them: Silence, Parameter, BatchReindex and Tile, after
src/caffe/layers/{silence,batch_reindex,tile}_layer.cpp and
include/caffe/layers/parameter_layer.hpp.

- Silence: takes any bottoms, has no top; forward does nothing, backward sets
  the bottoms' diffs to 0 (so a blob nobody reads can be silenced).
- Parameter: no bottom; its one param blob (shape ``parameter_param.shape``)
  *is* its top: forward hands the top the param's data, backward hands the
  param the top's diff (Caffe shares both, so the param's diff is the top's
  diff, not a sum).
- BatchReindex: ``top[i] = bottom0[index[i]]`` along the first axis, with
  ``index`` = bottom[1] (one axis, integer values stored as floats, in range).
  Backward sums: ``bottom0_diff[j] = sum of top_diff[i] over i with index[i] == j``
  (0 for rows never picked). No gradient reaches the indices.
- Tile: along ``axis`` (default 1), the block of axes ``axis ..`` is repeated
  ``tiles`` times: top shape has ``shape[axis] * tiles`` there; backward sums
  the ``tiles`` copies' diffs.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count

ONEHOT_BUDGET = 1 << 22  # values per one-hot block in BatchReindex's backward


@register("Silence")
class Silence(Layer):
    min_num_bottoms = 1
    exact_num_tops = 0

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        return []

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Nothing: the bottoms are read by no one."""

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        for b, down in zip(bottom, propagate_down, strict=True):
            if down:
                b.diff = b.xp.zeros(b.shape, dtype=b.dtype)


@register("Parameter")
class Parameter(Layer):
    exact_num_bottoms = 0
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.shape: Shape = tuple(int(d) for d in param.parameter_param.shape.dim)

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        self.param_shapes = [self.shape]
        return [self.shape]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        top[0].data = self.blobs[0].data

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if self.param_propagate_down and self.param_propagate_down[0]:
            self.blobs[0].diff[...] = top[0].diff


def _row_indices(layer: Layer, values: Array, rows: int) -> Array:
    xp = get_array_module(values)
    index = values.astype(xp.int64)  # static_cast<int>: toward zero
    bad = (values < 0) | (index >= rows)
    if bool(bad.any()):
        first = float(values[bad].ravel()[0])
        layer.fail(f"index {first:g} is outside 0..{rows - 1} (bottom[0]'s first axis)")
    return index


@register("BatchReindex")
class BatchReindex(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._indices: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, index_shape = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if len(index_shape) != 1:
            self.fail(f"bottom[1] (the indices) must have one axis, got {index_shape}")
        if not shape:
            self.fail("bottom[0] needs at least one axis")
        self._indices = None
        return [index_shape + shape[1:]]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        index = _row_indices(self, bottom[1].data, x.shape[0])
        self._indices = index
        top[0].data = x[index]

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[1]:
            self.fail("cannot backpropagate to bottom[1] (the indices)")
        if not propagate_down[0]:
            return
        if self._indices is None:
            self.fail("backward before forward: no indices yet")
        xp = get_array_module(top[0].diff)
        rows = bottom[0].shape[0]
        dy = top[0].diff.reshape(self._indices.shape[0], -1)
        dx = xp.zeros((rows, dy.shape[1]), dtype=dy.dtype)
        targets = xp.arange(rows)[None, :]
        block = max(1, ONEHOT_BUDGET // max(rows, 1))
        for r0 in range(0, dy.shape[0], block):
            onehot = (self._indices[r0 : r0 + block, None] == targets).astype(dy.dtype)
            dx += onehot.T @ dy[r0 : r0 + block]
        bottom[0].diff = dx.reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        return {} if self._indices is None else {"indices": self._indices}


@register("Tile")
class Tile(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.tile_param
        self.axis = int(p.axis)
        self.tiles = int(p.tiles) if p.HasField("tiles") else None
        self._outer = self._inner = 1
        self._top_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        axis = canonical_axis(self, self.axis, len(shape))
        if self.tiles is None:
            self.fail("tile_param.tiles must be given")
        if self.tiles <= 0:
            self.fail(f"tiles must be positive, got {self.tiles}")
        self._outer, self._inner = count(shape, 0, axis), count(shape, axis)
        top = list(shape)
        top[axis] *= self.tiles
        self._top_shape = tuple(top)
        return [self._top_shape]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data.reshape(self._outer, 1, self._inner)
        tiled = xp.broadcast_to(x, (self._outer, self.tiles, self._inner))
        top[0].data = xp.ascontiguousarray(tiled).reshape(self._top_shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = top[0].diff.reshape(self._outer, self.tiles, self._inner)
        bottom[0].diff = xp.sum(dy, axis=1).reshape(bottom[0].shape)
