"""Writers of real data sources for the data-layer tests: LMDB and LevelDB
databases of Datums (keys as Caffe's convert_imageset writes them, ``%08d``),
HDF5 files and their list, images and an image list."""

from __future__ import annotations

import io

import h5py
import lmdb
import numpy as np
import plyvel
from PIL import Image

from bpinspect.proto import caffe_pb2


def raw_datum(array, label=0):
    """A Datum of a C x H x W uint8 (``data``) or float32 (``float_data``) array."""
    array = np.asarray(array)
    c, h, w = array.shape
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, label=int(label))
    if array.dtype == np.uint8:
        datum.data = array.tobytes()
    else:
        datum.float_data.extend(float(v) for v in array.ravel())
    return datum.SerializeToString()


def encoded_datum(image_bytes, label=0):
    return caffe_pb2.Datum(data=image_bytes, encoded=True, label=int(label)).SerializeToString()


def png_bytes(array, mode=None):
    """PNG of an H x W (x C) uint8 array, channels in RGB(A) order."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(buf, format="PNG")
    return buf.getvalue()


def write_lmdb(path, records):
    """``records``: {key bytes: value bytes}, written in the order given."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key, value)
    env.close()
    return path


def write_leveldb(path, records):
    db = plyvel.DB(str(path), create_if_missing=True)
    for key, value in records.items():
        db.put(key, value)
    db.close()
    return path


def keyed(values):
    """Caffe's keys: ``%08d`` of the record index."""
    return {b"%08d" % i: v for i, v in enumerate(values)}


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, array in datasets.items():
            f[name] = array
    return path


def pattern(c, h, w, start=0):
    """A C x H x W uint8 array whose every value differs (mod 256)."""
    return ((np.arange(c * h * w) * 7 + start) % 256).astype(np.uint8).reshape(c, h, w)
