"""Caffe's Blob: an N-d array of data and one of its gradient (diff)."""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module

Shape = tuple[int, ...]


class Blob:
    """``data`` and ``diff`` of one shape and dtype, on one device.

    Layers write into ``data``/``diff`` in place or assign new arrays of the
    same shape; ``reshape`` reallocates only when the shape changes.
    """

    def __init__(
        self, name: str, shape: Shape, xp: types.ModuleType = np, dtype: Any = np.float32
    ) -> None:
        self.name = name
        self.data: Array = xp.zeros(shape, dtype=dtype)
        self.diff: Array = xp.zeros(shape, dtype=dtype)

    @property
    def shape(self) -> Shape:
        return tuple(int(d) for d in self.data.shape)

    @property
    def count(self) -> int:
        return int(self.data.size)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def xp(self) -> types.ModuleType:
        return get_array_module(self.data)

    def reshape(self, shape: Shape) -> None:
        shape = tuple(int(d) for d in shape)
        if shape != self.shape:
            self.data = self.xp.zeros(shape, dtype=self.dtype)
            self.diff = self.xp.zeros(shape, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={self.shape}, dtype={self.dtype})"
