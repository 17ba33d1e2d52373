"""Layer ``MemoryData``: batches of arrays the caller hands over (``memory_data_layer.cpp``).

- ``memory_data_param``: ``batch_size``, ``channels``, ``height``, ``width``,
  all positive. Tops: ``data`` ``(batch_size, channels, height, width)``,
  ``label`` ``(batch_size,)``.
- :meth:`MemoryData.set_input_arrays` is pycaffe's ``Net.set_input_arrays``
  (Caffe's ``Reset``): ``data`` of ``(N, channels, height, width)`` and
  ``labels`` of ``(N,)`` (or pycaffe's ``(N, 1, 1, 1)``), N a positive
  multiple of ``batch_size``; reading starts over at row 0. As in pycaffe
  the arrays are kept, not copied: changing them changes later batches.
  (pycaffe also insists on C-contiguous float32; any real array is taken
  here and cast to the net's dtype.)
- Batch ``k`` is rows ``(k * batch_size) mod N`` onwards: Caffe's position
  wraps to 0 after the last batch.
- ``transform_param`` does nothing to these arrays (Caffe's ``Reset`` does not
  transform; it warns), and a note says so.
- Caffe's Forward reshapes the label top to ``(batch_size, 1, 1, 1)``; it
  stays ``(batch_size,)`` here, the shape its setup gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.layers.base import Shape
from bpinspect.layers.data_source import Batch, DataSource, describe_indices
from bpinspect.layers.registry import register

__all__ = ["MemoryData"]


@register("MemoryData")
class MemoryData(DataSource):
    exact_num_tops = 2

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.channels, self.height, self.width = int(p.channels), int(p.height), int(p.width)
        self.data: np.ndarray | None = None
        self.labels: np.ndarray | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            self.fail("batch_size, channels, height, and width must be specified and positive "
                      "in memory_data_param")
        if self.param.HasField("transform_param"):
            self.note("transform_param is not applied to the arrays of set_input_arrays "
                      "(Caffe's MemoryData does not transform them)")
        b = self.batch_size
        return [(b, self.channels, self.height, self.width), (b,)]

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """Use ``data`` ``(N, C, H, W)`` and ``labels`` ``(N,)`` from now on (Caffe's Reset)."""
        data, labels = np.asarray(data), np.asarray(labels)
        want = (self.channels, self.height, self.width)
        if data.ndim != 4 or data.shape[1:] != want:
            self.fail(f"set_input_arrays: the data array has shape {data.shape}; it must be "
                      f"(N, {', '.join(map(str, want))})")
        if labels.ndim == 4 and labels.shape[1:] == (1, 1, 1):
            labels = labels.reshape(-1)
        if labels.ndim != 1:
            self.fail(f"set_input_arrays: the labels array has shape {labels.shape}; it must "
                      "be (N,) or (N, 1, 1, 1)")
        n = data.shape[0]
        if labels.shape[0] != n:
            self.fail(f"set_input_arrays: data and labels must have the same first dimension, "
                      f"got {n} and {labels.shape[0]}")
        if n == 0 or n % self.batch_size:
            self.fail(f"set_input_arrays: the first dimension of the arrays ({n}) must be a "
                      f"positive multiple of batch_size {self.batch_size}")
        for name, a in (("data", data), ("labels", labels)):
            if a.dtype.kind not in "biuf":
                self.fail(f"set_input_arrays: the {name} array holds {a.dtype}, not numbers")
        self.data, self.labels = data, labels
        self.next_batch = 0  # Reset: pos_ = 0

    def read_batch(self, k: int, dtype: Any) -> Batch:
        if self.data is None or self.labels is None:
            self.fail("no input arrays: call net.set_input_arrays(data, labels) first, or feed "
                      "its tops with --input")
        assert self.data is not None and self.labels is not None
        n, b = self.data.shape[0], self.batch_size
        rows = (k * b) % n + np.arange(b, dtype=np.int64)  # n is a multiple of b: no split
        tops = [self.data[rows].astype(dtype), self.labels[rows].astype(dtype)]
        return Batch(tops, {"record": rows},
                     f"{describe_indices(rows, 'rows', n)}, arrays of set_input_arrays")
