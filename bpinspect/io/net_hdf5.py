"""Caffe's HDF5 files, through h5py: weights (``.caffemodel.h5``) and solver state
(``.solverstate.h5``), as a solver with ``snapshot_format: HDF5`` writes them.

Weights (``Net::ToHDF5``, ``Net::CopyTrainedLayersFromHDF5``): a group ``data``
with one group per layer, every layer in net order, holding one dataset per
param named ``0``, ``1``, ...; a param shared with an earlier layer is written
only by the layer that owns it. With ``snapshot_diff`` a group ``diff`` holds
every param's diff the same way, shared ones included. Reading copies each
dataset into the param of the layer of the same name, whose shape it must have;
a layer of the file that the net lacks is ignored (a note says so); a layer with
more datasets than params is an error, and so is a missing dataset, unless that
param is shared (its owner's dataset holds it).

Solver state (``SGDSolver::SnapshotSolverStateToHDF5`` and its restore):
scalar integers ``iter`` and ``current_step``, the string ``learned_net`` (the
weights file, named as written) and a group ``history`` with datasets ``0``,
``1``, ... in the order of the solver's history blobs.

Caffe tells an HDF5 weights file by its signature (``H5Fis_hdf5``), a state
file by its ``.h5`` suffix; so does bpinspect. Files are written to a
temporary name and renamed, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError

__all__ = [
    "HDF5SolverState",
    "copy_hdf5_layers",
    "is_hdf5",
    "read_net_hdf5",
    "read_solverstate_hdf5",
    "write_net_hdf5",
    "write_solverstate_hdf5",
]

SIGNATURE = b"\x89HDF\r\n\x1a\n"

TrainedHDF5 = dict[str, dict[int, np.ndarray]]  # layer -> {param index: values}


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """The file starts with HDF5's signature (no user block, as Caffe writes them)."""
    try:
        with open(os.fspath(path), "rb") as f:
            return f.read(len(SIGNATURE)) == SIGNATURE
    except OSError:
        return False


def _h5py() -> Any:
    import h5py  # a dependency (HDF5Data layers, HDF5 snapshots)

    return h5py


def _write_atomic(path: str, write: Callable[[Any], None]) -> None:
    h5py = _h5py()
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise BpinspectError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _open(path: str, what: str) -> Any:
    try:
        return _h5py().File(path, "r")
    except OSError as exc:
        raise BpinspectError(f"{path}: cannot read it as an HDF5 {what} ({exc})") from None


# ---- weights -----------------------------------------------------------------------


def write_net_hdf5(path: str | os.PathLike[str], layers: Sequence[tuple[str, Sequence[Any]]],
                   owned: Callable[[str, int], bool], write_diff: bool = False) -> None:
    """``Net::ToHDF5``. ``layers``: (name, [param Blobs]) for every layer in net order;
    ``owned(layer, j)``: the param is not shared from an earlier layer."""
    path = os.fspath(path)

    def write(f: Any) -> None:
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for name, blobs in layers:
            layer_data = data.create_group(name)
            layer_diff = diff.create_group(name) if diff is not None else None
            for j, blob in enumerate(blobs):
                if owned(name, j):
                    layer_data.create_dataset(str(j), data=np.asarray(to_host(blob.data)))
                if layer_diff is not None:
                    layer_diff.create_dataset(str(j), data=np.asarray(to_host(blob.diff)))

    _write_atomic(path, write)


def read_net_hdf5(path: str | os.PathLike[str]) -> TrainedHDF5:
    """Every layer's datasets of the ``data`` group, by param index."""
    path = os.fspath(path)
    with _open(path, "weights file") as f:
        if "data" not in f:
            raise BpinspectError(f"{path}: no group 'data': not HDF5 weights as Caffe's "
                                 "Net::ToHDF5 writes them")
        trained: TrainedHDF5 = {}
        for name, group in f["data"].items():
            if not hasattr(group, "items"):
                raise BpinspectError(f"{path}: data/{name} is not a group of params")
            params: dict[int, np.ndarray] = {}
            for key, dataset in group.items():
                if not key.isdigit() or not hasattr(dataset, "dtype"):
                    raise BpinspectError(f"{path}: data/{name}/{key} is not a param dataset "
                                         "(named 0, 1, ...)")
                if dataset.dtype.kind not in "fiu":
                    raise BpinspectError(f"{path}: data/{name}/{key} holds {dataset.dtype}, "
                                         "not numbers")
                params[int(key)] = np.asarray(dataset)
            trained[name] = params
    return trained


def copy_hdf5_layers(trained: TrainedHDF5, params: dict[str, list[Any]], path: str,
                     layer_names: Sequence[str], owned: Callable[[str, int], bool]) -> list[str]:
    """``CopyTrainedLayersFromHDF5`` into the net's param Blobs; returns notes."""
    ignored = []
    for name, arrays in trained.items():
        if name not in layer_names:
            ignored.append(name)
            continue
        blobs = params.get(name, [])
        if len(arrays) > len(blobs):
            raise BpinspectError(f"{path}: incompatible number of blobs for layer {name!r}: "
                                 f"{len(arrays)} in the file, {len(blobs)} in the net")
        for j, blob in enumerate(blobs):
            if j not in arrays:
                if not owned(name, j):
                    continue  # shared: its owner's dataset holds it
                raise BpinspectError(f"{path}: incompatible number of blobs for layer "
                                     f"{name!r}: no dataset data/{name}/{j}")
            values = arrays[j]
            if tuple(values.shape) != tuple(blob.shape):
                raise BpinspectError(
                    f"{path}: layer {name!r} param {j}: cannot load blob from hdf5; shape "
                    f"mismatch: the file has {tuple(values.shape)}, the net {tuple(blob.shape)}")
            blob.data[...] = blob.xp.asarray(values, dtype=blob.dtype)
    if ignored:
        return [f"{path}: ignoring layers the net does not have: {', '.join(ignored)}"]
    return []


# ---- solver state ------------------------------------------------------------------


@dataclass
class HDF5SolverState:
    iter: int
    learned_net: str | None
    current_step: int
    history: list[np.ndarray]


def write_solverstate_hdf5(path: str | os.PathLike[str], it: int, learned_net: str,
                           history: Sequence[Any], current_step: int) -> None:
    def write(f: Any) -> None:
        f.create_dataset("iter", data=np.int32(it))
        f.create_dataset("learned_net", data=np.bytes_(learned_net.encode()))
        f.create_dataset("current_step", data=np.int32(current_step))
        group = f.create_group("history")
        for i, a in enumerate(history):
            group.create_dataset(str(i), data=np.asarray(to_host(a)))

    _write_atomic(os.fspath(path), write)


def read_solverstate_hdf5(path: str | os.PathLike[str]) -> HDF5SolverState:
    path = os.fspath(path)
    with _open(path, "solver state") as f:
        for name in ("iter", "current_step", "history"):
            if name not in f:
                raise BpinspectError(f"{path}: no '{name}': not a solver state as Caffe's "
                                     "SnapshotSolverStateToHDF5 writes it")
        learned = None
        if "learned_net" in f:
            raw = f["learned_net"][()]
            try:
                learned = raw.decode() if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                raise BpinspectError(f"{path}: learned_net is not UTF-8 text") from None
        history = []
        group = f["history"]
        for i in range(len(group)):
            if str(i) not in group:
                raise BpinspectError(f"{path}: history has {len(group)} entries but no "
                                     f"history/{i}")
            history.append(np.asarray(group[str(i)]))
        try:
            it, step = int(f["iter"][()]), int(f["current_step"][()])
        except (TypeError, ValueError):
            raise BpinspectError(f"{path}: iter and current_step must be integers") from None
    return HDF5SolverState(it, learned, step, history)
