"""The HDF5 files of an ``HDF5Data`` layer, read with ``h5py`` as Caffe reads them.

Follows ``src/caffe/layers/hdf5_data_layer.cpp`` (``LoadHDF5FileData``) and
``src/caffe/util/hdf5.cpp`` (``hdf5_load_nd_dataset``): each top is a
dataset at the file's root named as the top, of at least one axis, of an
integer or floating class (Caffe refuses strings, enums, compounds...);
axis 0 counts the rows (items) and is the same for every top of a file.

:class:`Hdf5File` checks a file once (shapes and types only, which is
cheap), so a layer knows how many rows each of its files holds before it
reads any of them; :meth:`Hdf5File.load` then reads the whole datasets, as
Caffe holds one whole file in memory at a time. No math.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError

__all__ = ["Hdf5File"]

Shape = tuple[int, ...]


class Hdf5File:
    """One listed HDF5 file: ``rows``, and ``shapes[i]`` of ``datasets[i]``."""

    def __init__(self, path: str, display: str, datasets: list[str], where: str) -> None:
        self.path = path
        self.display = display  # the name as the list gives it
        self.datasets = list(datasets)
        self.where = where
        self.shapes: list[Shape] = []
        with self._open() as f:
            for name in self.datasets:
                self.shapes.append(self._check(f, name))
        self.rows = self.shapes[0][0]
        for name, shape in zip(self.datasets, self.shapes, strict=True):
            if shape[0] != self.rows:
                self.fail(f"dataset {name!r} has {shape[0]} rows, dataset "
                          f"{self.datasets[0]!r} has {self.rows}; every top needs one row "
                          "per item")

    def load(self) -> list[np.ndarray]:
        """Every dataset, whole, as a NumPy array (its stored dtype)."""
        with self._open() as f:
            return [np.asarray(f[name][()]) for name in self.datasets]

    def fail(self, message: str) -> None:
        raise BpinspectError(f"{self.where}: HDF5 file {self.display!r}: {message}")

    def _open(self) -> Any:
        import h5py

        try:
            return h5py.File(self.path, "r")
        except FileNotFoundError:
            reason = "No such file or directory"
        except IsADirectoryError:
            reason = "Is a directory"
        except OSError as e:
            reason = "not an HDF5 file" if "signature" in str(e) else " ".join(str(e).split())
        raise BpinspectError(f"{self.where}: cannot open HDF5 file {self.display!r}: {reason}")

    def _check(self, f: Any, name: str) -> Shape:
        import h5py

        node = f.get(name)
        if not isinstance(node, h5py.Dataset):
            have = ", ".join(sorted(k for k in f if isinstance(f.get(k), h5py.Dataset)))
            what = "is a group, not a dataset" if node is not None else "has no dataset"
            self.fail(f"{what} {name!r} (each top reads the dataset named as it; "
                      f"the file has: {have or 'none'})")
        if node.dtype.kind not in "iuf":
            self.fail(f"dataset {name!r} holds {node.dtype}; Caffe reads only integer and "
                      "floating-point datasets")
        if node.ndim < 1:
            self.fail(f"dataset {name!r} is a scalar; it needs at least one axis (the rows)")
        return tuple(int(d) for d in node.shape)
