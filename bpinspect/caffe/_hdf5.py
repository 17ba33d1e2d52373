"""Caffe's HDF5 weights (``Net::ToHDF5``, ``CopyTrainedLayersFromHDF5``) through h5py.

Layout: a group ``data`` with one group per layer (every layer, in net
order) holding one dataset per param, named ``0``, ``1``, ...; a param
shared with an earlier layer is written only by its owner. Reading copies
datasets into the layers of the same name; each must have the param's
shape; a layer with fewer datasets than params is accepted only where the
missing ones are shared.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover (h5py is a dependency)
        raise BpinspectError("save_hdf5/load_hdf5 need h5py (pip install h5py)") from None
    return h5py


def save_params(net: Any, path: str) -> None:
    h5py = _h5py()
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    seen: set[int] = set()
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for name, layer in zip(net.layer_names, net.layers, strict=True):
            group = data.create_group(name)
            for j, blob in enumerate(layer.blobs):
                if id(blob) in seen:
                    continue
                seen.add(id(blob))
                group.create_dataset(str(j), data=np.asarray(to_host(blob.data)))
    os.replace(tmp, path)


def load_params(net: Any, path: str) -> list[str]:
    """Copy the params in; notes name the layers of the file the net lacks."""
    h5py = _h5py()
    first_owner: dict[int, str] = {}
    for name, layer in zip(net.layer_names, net.layers, strict=True):
        for blob in layer.blobs:
            first_owner.setdefault(id(blob), name)
    notes: list[str] = []
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise BpinspectError(f"{path}: cannot read it as HDF5 ({exc})") from None
    with f:
        if "data" not in f:
            raise BpinspectError(f"{path}: no group 'data' (not written by Net.save_hdf5)")
        ignored = []
        for name in f["data"]:
            if name not in net.layer_names:
                ignored.append(name)
                continue
            group = f["data"][name]
            blobs = net.layers[net.layer_index(name)].blobs
            if len(group) > len(blobs):
                raise BpinspectError(f"{path}: incompatible number of blobs for layer {name!r}: "
                                     f"{len(group)} in the file, {len(blobs)} in the net")
            for j, blob in enumerate(blobs):
                if str(j) not in group:
                    if first_owner[id(blob)] != name:
                        continue  # shared: its owner's dataset holds it
                    raise BpinspectError(f"{path}: incompatible number of blobs for layer "
                                         f"{name!r}: no dataset {j}")
                values = np.asarray(group[str(j)])
                if tuple(values.shape) != blob.shape:
                    raise BpinspectError(
                        f"{path}: layer {name!r} param {j}: cannot load blob from hdf5; shape "
                        f"mismatch (file {tuple(values.shape)}, net {blob.shape})"
                    )
                xp = blob.xp
                blob.data[...] = xp.asarray(values, dtype=blob.dtype)
        if ignored:
            notes.append(f"{path}: ignoring layers the net does not have: {', '.join(ignored)}")
    return notes
