"""Layer family: HDF5 output. HDF5Output writes its two bottoms to an HDF5 file,
after src/caffe/layers/hdf5_output_layer.cpp and ``hdf5_save_nd_dataset`` in
src/caffe/util/hdf5.cpp.

``hdf5_output_param.file_name`` (relative to the working directory, as in Caffe)
is created, or truncated, when the net is built (Caffe's LayerSetUp opens it with
``H5F_ACC_TRUNC``); a path that cannot be created is a one-line error naming the
layer and the file. Each forward writes bottom[0] as the dataset ``data`` and
bottom[1] as ``label``, in the net's dtype (float32, or float64 for a double net),
each with Caffe's legacy four axes ``(num, channels, height, width)``: a bottom of
fewer axes gets trailing 1s (``(N, 10)`` is stored as ``(N, 10, 1, 1)``), one of
more than four is refused, and both need the same ``num``. The layer has no tops
and its backward does nothing.

Caffe creates the two datasets at the first forward and keeps the file open; its
second forward into the same file fails (``H5LTmake_dataset`` refuses a dataset
that exists, BVLC/caffe#1726), so a second ``net.forward()`` here fails too, with
one line saying so. The file is closed after each write, so it can be read while
the net lives.

In the debugger a forward step that runs again is not a second forward: stepping
back over this layer's forward (or restarting the pass, which a change of input or
a replay also does) rewinds it (``undo_forward``), and the next forward replaces
both datasets with the values of the pass now shown. Until then the file keeps
what the undone forward wrote. In a training session each pass begins with a
restart, so each pass's forward rewrites the file (Caffe's training would stop at
the second); a test net, run by the solver, fails at its second batch as Caffe's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

# Caffe's HDF5_DATA_DATASET_NAME and HDF5_DATA_LABEL_NAME.
DATASETS = ("data", "label")


def legacy_shape(shape: Shape) -> Shape | None:
    """Caffe's (num, channels, height, width) of a blob, or None past four axes."""
    if len(shape) > 4:
        return None
    return tuple(shape) + (1,) * (4 - len(shape))


@register("HDF5Output")
class HDF5Output(Layer):
    exact_num_bottoms = 2
    exact_num_tops = 0

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.file_name: str = param.hdf5_output_param.file_name
        self._created = False  # the file is made once, at the first setup
        self._written = False  # a forward wrote the datasets and was not undone

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if not self._created:  # a reshape later calls setup again: Caffe's Reshape is empty
            self._create_file()
            self._created = True
        return []

    def _create_file(self) -> None:
        import h5py

        if not self.file_name:
            self.fail("hdf5_output_param { file_name } is not given")
        try:
            with h5py.File(self.file_name, "w"):
                pass
        except OSError as exc:
            self.fail(f"cannot create the HDF5 file {self.file_name!r}: "
                      f"{_reason(exc, self.file_name)}")

    def undo_forward(self) -> None:
        """The debugger stepped back over this forward: the next one rewrites."""
        self._written = False

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        import h5py

        if self._written:
            self.fail(f"a second forward into {self.file_name!r}: its datasets 'data' and "
                      "'label' exist from the first, and Caffe's HDF5Output stops here too "
                      "(it writes them once per net)")
        shapes = []
        for k, b in enumerate(bottom):
            shape = legacy_shape(b.shape)
            if shape is None:
                self.fail(f"bottom[{k}] has shape {b.shape}: Caffe writes (num, channels, "
                          "height, width), at most four axes")
            shapes.append(shape)
        if shapes[0][0] != shapes[1][0]:
            self.fail(f"data {bottom[0].shape} and label {bottom[1].shape}: the data blob "
                      "and the label blob must have the same batch size")
        arrays = [np.ascontiguousarray(to_host(b.data)).reshape(s)
                  for b, s in zip(bottom, shapes, strict=True)]
        try:
            with h5py.File(self.file_name, "a") as f:
                for name, array in zip(DATASETS, arrays, strict=True):
                    if name in f:  # what an undone forward wrote
                        del f[name]
                    f.create_dataset(name, data=array)
        except OSError as exc:
            self.fail(f"cannot write the HDF5 file {self.file_name!r}: "
                      f"{_reason(exc, self.file_name)}")
        self._written = True

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """Nothing: the file takes no gradient (Caffe's Backward returns)."""


def _reason(exc: OSError, path: str) -> str:
    """A short cause: h5py's own text is several lines of HDF5 internals."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no directory {directory}"
    return os.strerror(exc.errno) if exc.errno else " ".join(str(exc).split())
