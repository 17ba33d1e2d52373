"""Layer family: crop. Crop cuts bottom[0] down to the shape of bottom[1], after
src/caffe/layers/crop_layer.cpp (the FCN layer that aligns an upsampled score
map with the input).

Axes before ``axis`` (default 2, negative counts from the end) keep bottom[0]'s
size; from ``axis`` on, each axis takes bottom[1]'s size and starts at an offset:
``offset`` given once applies to every cropped axis, given once per cropped axis
it applies axis by axis, not given it is 0. With ``o`` those offsets (0 on the
uncropped axes) and ``s`` the top shape::

    top = bottom0[o0 : o0 + s0, o1 : o1 + s1, ...]
    bottom0_diff = 0 everywhere, except bottom0_diff[same window] = top_diff

bottom[1] only gives a shape: no gradient flows to it (its diff is left as it
is, as in Caffe), so ``allow_force_backward`` is False for it.
``internals()["offsets"]`` is ``o``, one offset per axis of bottom[0].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis


@register("Crop")
class Crop(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.crop_param
        self.axis = int(p.axis)
        self.offset = [int(o) for o in p.offset]
        self._offsets: np.ndarray = np.zeros(0, dtype=np.int64)
        self._window: tuple[slice, ...] = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape, reference = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        n = len(shape)
        start = canonical_axis(self, self.axis, n)
        if len(reference) < n:
            self.fail(f"bottom[1] {reference} has fewer axes than bottom[0] {shape}")
        if len(self.offset) > 1 and start + len(self.offset) != n:
            self.fail(f"{len(self.offset)} offsets given for the {n - start} axes from "
                      f"axis {start}: give one offset, or one per cropped axis")
        offsets = [0] * n
        top = list(shape)
        for i in range(start, n):
            if len(self.offset) == 1:
                offsets[i] = self.offset[0]
            elif self.offset:
                offsets[i] = self.offset[i - start]
            top[i] = reference[i]
            if shape[i] - offsets[i] < reference[i]:
                self.fail(f"the crop of axis {i} (size {reference[i]} at offset {offsets[i]}) "
                          f"does not fit bottom[0]'s size {shape[i]}")
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._window = tuple(slice(o, o + s) for o, s in zip(offsets, top, strict=True))
        return [tuple(top)]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        top[0].data = xp.ascontiguousarray(bottom[0].data[self._window])

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dx = xp.zeros(bottom[0].shape, dtype=top[0].diff.dtype)
        dx[self._window] = top[0].diff
        bottom[0].diff = dx

    def internals(self) -> dict[str, Array]:
        return {"offsets": self._offsets}
