"""Layer ``HDF5Data``: rows of HDF5 datasets (``hdf5_data_layer.cpp``).

- ``hdf5_data_param``: ``source``, a text file naming ``.h5`` files
  (whitespace-separated), ``batch_size``, ``shuffle``.
- One top per dataset: top ``t`` reads the dataset named ``t`` of each file;
  axis 0 is the item, so top ``t`` is ``(batch_size, *dataset.shape[1:])``,
  from the first file (every file must agree).
- The files are read in list order, each whole before the next, the rows in
  order; a batch crosses from one file into the next, and after the last
  file Caffe starts over at the first.
- ``shuffle``: Caffe shuffles the order of the files at setup and at each
  wrap, and the order of the rows each time it loads a file (rows of two
  files never interleave). Here epoch ``e``'s file order, and the row order
  of the ``j``-th file visited in it, are permutations drawn from the seed
  and ``(e)``, ``(e, j)``: a pure function of the batch number.
- ``internals()``: per item, ``file`` (index in the list), ``row`` (in that
  file), ``record`` (the row counted over all files in list order), ``epoch``.
- ``transform_param`` is refused, as Caffe refuses it ("does not transform
  data").

Every listed file is checked at setup (shapes only: rows per file are what
make batch ``k`` computable); its data is read when a batch first needs it,
one file held at a time, as Caffe does. Values are cast to the net's dtype
(Caffe reads integer and float datasets as floats too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.io.db import resolve_path
from bpinspect.io.hdf5 import Hdf5File
from bpinspect.io.listfiles import read_hdf5_list
from bpinspect.layers.base import Shape
from bpinspect.layers.data_source import (
    STREAM_ROWS,
    STREAM_SHUFFLE,
    Batch,
    DataSource,
    describe_indices,
)
from bpinspect.layers.registry import register

__all__ = ["HDF5Data"]


@register("HDF5Data")
class HDF5Data(DataSource):
    min_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.hdf5_data_param
        self.source: str = p.source
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.files: list[Hdf5File] = []
        self._loaded: tuple[int, list[np.ndarray]] | None = None  # (file index, arrays)
        self._row_orders: dict[tuple[int, int, int], np.ndarray] = {}

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if self.param.HasField("transform_param"):
            self.fail("HDF5Data does not transform data: remove transform_param (Caffe "
                      "refuses it)")
        self.check_batch_size(self.batch_size, "hdf5_data_param")
        if not self.source:
            self.fail("hdf5_data_param.source is not set")
        if not self.files:
            names = read_hdf5_list(resolve_path(self.source, self.base_dir), self.where,
                                   display=self.source)
            tops = list(self.param.top)
            where = f"{self.where}: HDF5 list {self.source!r}"
            self.files = [Hdf5File(resolve_path(name, self.base_dir), name, tops, where)
                          for name in names]
        first = self.files[0]
        for f in self.files:
            if f.rows == 0:
                f.fail("has no rows")
            for name, shape, want in zip(f.datasets, f.shapes, first.shapes, strict=True):
                if shape[1:] != want[1:]:
                    f.fail(f"dataset {name!r} has rows of shape {shape[1:]}, those of "
                           f"{first.display!r} are {want[1:]}; every file must agree")
        return [(self.batch_size, *shape[1:]) for shape in first.shapes]

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files)

    def file_order(self, epoch: int) -> np.ndarray:
        """The file indices in epoch ``epoch``'s order."""
        n = len(self.files)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return self.rng(STREAM_SHUFFLE, epoch).permutation(n)

    def row_order(self, epoch: int, visit: int, rows: int) -> np.ndarray:
        """The row order of the ``visit``-th file read in epoch ``epoch``."""
        if not self.shuffle:
            return np.arange(rows, dtype=np.int64)
        key = (self._seed, epoch, visit)
        if key not in self._row_orders:
            if len(self._row_orders) >= 4:  # a batch spans few files: keep the latest
                self._row_orders.pop(next(iter(self._row_orders)))
            self._row_orders[key] = self.rng(STREAM_ROWS, epoch, visit).permutation(rows)
        return self._row_orders[key]

    def _arrays(self, index: int) -> list[np.ndarray]:
        if self._loaded is None or self._loaded[0] != index:
            self._loaded = (index, self.files[index].load())
        return self._loaded[1]

    def read_batch(self, k: int, dtype: Any) -> Batch:
        b, total = self.batch_size, self.total_rows
        positions = k * b + np.arange(b, dtype=np.int64)
        epochs, within = positions // total, positions % total
        file_of = np.empty(b, dtype=np.int64)
        row_of = np.empty(b, dtype=np.int64)
        for e in np.unique(epochs):
            order = self.file_order(int(e))
            ends = np.cumsum([self.files[i].rows for i in order])
            mask = epochs == e
            visits = np.searchsorted(ends, within[mask], side="right")
            starts = ends[visits] - np.array([self.files[order[v]].rows for v in visits])
            rows = [self.row_order(int(e), int(v), self.files[order[v]].rows)[int(q - s)]
                    for v, q, s in zip(visits, within[mask], starts, strict=True)]
            file_of[mask] = order[visits]
            row_of[mask] = rows
        tops = [np.empty((b, *shape[1:]), dtype=dtype) for shape in self.files[0].shapes]
        for m in range(b):
            arrays = self._arrays(int(file_of[m]))
            for top, array in zip(tops, arrays, strict=True):
                top[m] = array[row_of[m]]
        first_rows = np.cumsum([0] + [f.rows for f in self.files])[:-1]
        internals = {"record": first_rows[file_of] + row_of, "file": file_of, "row": row_of,
                     "epoch": epochs}
        return Batch(tops, internals,
                     self._describe(file_of, row_of))

    def _describe(self, file_of: np.ndarray, row_of: np.ndarray) -> str:
        parts: list[str] = []
        start = 0
        for m in range(1, len(file_of) + 1):  # runs of items from one file
            if m == len(file_of) or file_of[m] != file_of[start]:
                f = self.files[int(file_of[start])]
                parts.append(f"{describe_indices(row_of[start:m], 'rows', f.rows)} of "
                             f"{f.display}")
                start = m
        return (f"{'; '.join(parts)} ({self.total_rows} rows in {len(self.files)} files), "
                f"HDF5 list {self.source}")
