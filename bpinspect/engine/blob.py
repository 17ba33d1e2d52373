"""Caffe's Blob: an N-d array of data and one of its gradient (diff)."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module

Shape = tuple[int, ...]


class Blob:
    """``data`` and ``diff`` of one shape and dtype, on one device.

    Layers write into ``data``/``diff`` in place or assign new arrays of the
    same shape; ``reshape`` reallocates only when the shape changes.

    ``zero_diff`` zeroes the diff lazily: the zeros are written when the diff is
    next read, unless a layer first takes it with ``diff_to_accumulate`` and
    writes ``0 + gradient`` into every element itself. A net's param diffs are
    zeroed before every backward pass and then summed into once; for CaffeNet's
    fc layers (58 M values) the skipped pass of zeros and read of them are a
    tenth of a batch-1 forward + backward.
    """

    def __init__(
        self, name: str, shape: Shape, xp: types.ModuleType = np, dtype: Any = np.float32
    ) -> None:
        self.name = name
        self.data: Array = xp.zeros(shape, dtype=dtype)
        self._diff: Array = xp.zeros(shape, dtype=dtype)
        self._diff_is_zero = False  # True: _diff holds stale values that stand for zeros

    @property
    def diff(self) -> Array:
        if self._diff_is_zero:
            self._diff[...] = 0
            self._diff_is_zero = False
        return self._diff

    @diff.setter
    def diff(self, value: Array) -> None:
        self._diff = value
        self._diff_is_zero = False

    def zero_diff(self, at_once: bool = False) -> None:
        """The diff becomes zeros: written when it is next read, or ``at_once``."""
        if at_once:
            self.diff[...] = 0
        self._diff_is_zero = not at_once

    def diff_to_accumulate(self) -> tuple[Array, bool]:
        """The diff to add a gradient into, and whether it stands for zeros: then its
        values are stale, and the caller writes ``0 + gradient`` (which is what adding
        onto zeros gives, bit for bit) into every element instead of adding."""
        zero = self._diff_is_zero
        self._diff_is_zero = False
        return self._diff, zero

    def array_to_overwrite(self, kind: str, shape: Shape | None = None,
                           dtype: Any = None) -> Array:
        """An array for a layer to write the blob's next ``kind`` ("data" or "diff")
        into, every element of it: the array the blob holds when nothing else refers to
        it (a NumPy array owning its memory, of that shape and dtype), else a new one.

        Fresh memory costs its page faults and zeroing, about a third of writing it
        (conv1's top at batch 64 is 74 MB). Whatever holds the array (the debugger's
        history keeps copies, a pycaffe user a view) counts among its references, so
        an array anything can still read is never handed out. An in-place layer that
        asks before it takes its bottom's array gets that array back, as in Caffe.
        """
        return overwritable(self, "data" if kind == "data" else "_diff", shape, dtype)

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


def overwritable(owner: Any, attr: str, shape: Shape | None = None,
                 dtype: Any = None) -> Array:
    """``owner.<attr>`` when nothing but ``owner`` refers to it and it is a NumPy array
    owning its memory, of ``shape`` and ``dtype`` (default: its own), C-contiguous and
    writeable: an array to overwrite; else a new empty one (NumPy unless the held one
    is CuPy's). See ``Blob.array_to_overwrite``. (Counted before anything here holds
    the array: the caller must not hold it either.)"""
    references = _references(owner, attr)
    held = getattr(owner, attr)
    shape = held.shape if shape is None else tuple(int(d) for d in shape)
    dtype = held.dtype if dtype is None else np.dtype(dtype)
    if (_SOLE is not None and references <= _SOLE and type(held) is np.ndarray
            and held.base is None and held.shape == shape and held.dtype == dtype
            and held.flags.c_contiguous and held.flags.writeable):
        return held  # (a diff that stands for zeros still reads as zeros until assigned)
    xp = np if held is None else get_array_module(held)
    return xp.empty(shape, dtype=dtype)


def _references(owner: Any, attr: str) -> int:
    return sys.getrefcount(getattr(owner, attr))


def _sole_reference_count() -> int | None:
    """What ``_references`` counts for an array only its owner holds, or None where one
    more reference does not show (then no array is ever reused)."""
    probe = Blob("probe", (1,))
    alone = _references(probe, "data")
    extra = probe.data  # noqa: F841 (a second holder, to see it counted)
    return alone if _references(probe, "data") == alone + 1 else None


_SOLE = _sole_reference_count()
