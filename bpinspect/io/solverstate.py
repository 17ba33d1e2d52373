"""Solver state (``.solverstate``): a binary ``SolverState`` message.

What ``SGDSolver::SnapshotSolverStateToBinaryProto`` writes and
``RestoreSolverStateFromBinaryProto`` reads (``src/caffe/solvers/sgd_solver.cpp``):
``iter``, ``learned_net`` (the ``.caffemodel`` file name, as the solver wrote
it), ``current_step`` and one ``history`` ``BlobProto`` per history blob, as
``Blob::ToProto`` writes them: ``shape`` and float ``data`` for a float
solver, ``double_data`` for a double one. Reading keeps ``double_data`` in
float64 (``Blob::FromProto`` prefers it), else float32, and honours the
legacy ``num/channels/height/width``.

Caffe's HDF5 state (``.solverstate.h5``, ``snapshot_format: HDF5``) is read
and written by :mod:`bpinspect.io.net_hdf5`; as in Caffe, the ``.h5`` suffix
says which a file is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from bpinspect.errors import BpinspectError
from bpinspect.io.caffemodel import (
    _blob_wire,
    _varint,
    blob_to_array,
    check_text_fields,
)
from bpinspect.io.files import write_atomic
from bpinspect.io.prototxt import read_bytes
from bpinspect.proto import caffe_pb2

__all__ = ["SavedSolverState", "history_to_array", "read_solverstate", "write_solverstate"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class SavedSolverState:
    """The content of a ``.solverstate``: history blobs still as ``BlobProto``s."""

    iter: int
    learned_net: str | None
    current_step: int
    history: list[caffe_pb2.BlobProto] = field(default_factory=list)


def read_solverstate(path: str | os.PathLike[str]) -> SavedSolverState:
    """Parse a binary ``.solverstate``; an HDF5 or corrupt file is a one-line error."""
    path = os.fspath(path)
    data = read_bytes(path)
    if data.startswith(_HDF5_SIGNATURE):
        raise _hdf5(path)
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(data)
    except DecodeError as e:
        raise BpinspectError(
            f"{path}: truncated or corrupt .solverstate (a binary SolverState); protobuf: {e}"
        ) from None
    check_text_fields(state, f"{path}: corrupt .solverstate")
    return SavedSolverState(
        iter=int(state.iter),
        learned_net=state.learned_net if state.HasField("learned_net") else None,
        current_step=int(state.current_step),
        history=list(state.history),
    )


def _hdf5(path: str) -> BpinspectError:
    return BpinspectError(
        f"{path}: an HDF5 solver state without the .h5 suffix, by which Caffe (and "
        "bpinspect) tell HDF5 states from binaryproto ones: rename it to .solverstate.h5"
    )


history_to_array = blob_to_array
"""A history ``BlobProto`` as an array of its shape (float64 from ``double_data``)."""


def write_solverstate(
    path: str | os.PathLike[str], it: int, learned_net: str, history: Sequence[Any],
    current_step: int,
) -> None:
    """Write a binary ``SolverState`` atomically (replacing ``path``, as Caffe does).

    ``history``: arrays (NumPy or CuPy); float64 ones go to ``double_data``.
    The bytes are laid out as protobuf's serializer would, field by field, so
    that a large history is not copied value by value into messages.
    """
    head = caffe_pb2.SolverState(iter=int(it), learned_net=learned_net).SerializeToString()
    chunks: list[Any] = [head]
    for a in history:
        blob = _blob_wire(a)  # Blob::ToProto: float64 in double_data
        size = sum(len(c) for c in blob)
        chunks += [_tag(caffe_pb2.SolverState.HISTORY_FIELD_NUMBER) + _varint(size), *blob]
    chunks.append(caffe_pb2.SolverState(current_step=int(current_step)).SerializeToString())
    write_atomic(path, lambda f: f.writelines(chunks), overwrite=True)


def _tag(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited
