"""Weights (``.caffemodel``): a binary ``NetParameter`` whose layers carry blobs.

Reading follows Caffe's ``ReadNetParamsFromBinaryFileOrDie`` (parse, then
``UpgradeNetAsNeeded``: the published ``bvlc_reference_caffenet.caffemodel``
is a V1 net); copying into a net follows ``Net::CopyTrainedLayersFrom``
(match layers by name, check blob counts and shapes with
``Blob::ShapeEquals``, ignore layers the net lacks). Blobs convert with
``Blob::FromProto``'s rules: the legacy ``num/channels/height/width`` win
over ``shape`` when present, and ``double_data`` over ``data``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf.message import DecodeError, Message

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.io.files import write_atomic
from bpinspect.io.prototxt import read_bytes
from bpinspect.io.upgrade import upgrade_net
from bpinspect.proto import caffe_pb2

if TYPE_CHECKING:
    from bpinspect.engine.blob import Blob

__all__ = [
    "array_to_blob",
    "blob_shape",
    "blob_to_array",
    "copy_trained_layers",
    "format_shape",
    "read_binaryproto",
    "read_caffemodel",
    "shape_equals",
    "write_caffemodel",
]

Shape = tuple[int, ...]

_LEGACY_DIMS = ("num", "channels", "height", "width")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ---- reading ------------------------------------------------------------------


def read_caffemodel(
    path: str | os.PathLike[str], notes: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> caffe_pb2.NetParameter:
    """The ``NetParameter`` stored in a ``.caffemodel``, upgraded to the current format.

    A missing, truncated or corrupt file, an HDF5 snapshot, a text prototxt
    or a file with no layers gives a one-line ``BpinspectError`` naming it.
    ``progress(bytes_read, size)`` follows the reading.
    """
    data = read_bytes(path, progress)
    if not data:
        raise BpinspectError(f"{path}: empty file; expected a binary .caffemodel")
    if data.startswith(_HDF5_SIGNATURE):
        raise BpinspectError(
            f"{path}: an HDF5 snapshot (.caffemodel.h5) is not supported; "
            "use the binary .caffemodel"
        )
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError as e:
        if _looks_like_text(data):
            raise BpinspectError(
                f"{path}: looks like a text file (a .prototxt?), not a binary .caffemodel"
            ) from None
        raise BpinspectError(
            f"{path}: truncated or corrupt .caffemodel (a binary NetParameter); protobuf: {e}"
        ) from None
    if len(net.layer) == 0 and len(net.layers) == 0:
        hint = " (it looks like text: a .prototxt?)" if _looks_like_text(data) else ""
        raise BpinspectError(f"{path}: holds no layers; is it a .caffemodel?{hint}")
    check_text_fields(net, f"{path}: corrupt .caffemodel")
    return upgrade_net(net, str(path), notes)


def check_text_fields(message: Message, where: str) -> None:
    """A one-line error (``where: <field> is not UTF-8 text``) for the first string
    field of a parsed binary message that is not UTF-8: protobuf hands such a proto2
    field over as bytes, which would fail far from the file that holds it."""
    bad = _first_bad_string(message, "")
    if bad is not None:
        raise BpinspectError(f"{where}: {bad} is not UTF-8 text")


def _first_bad_string(message: Message, prefix: str) -> str | None:
    for field, value in message.ListFields():
        if field.type not in (field.TYPE_STRING, field.TYPE_MESSAGE):
            continue
        values = list(value) if field.is_repeated else [value]
        for k, item in enumerate(values):
            name = f"{prefix}{field.name}" + (f"[{k}]" if field.is_repeated else "")
            if field.type == field.TYPE_STRING:
                if not isinstance(item, str):
                    return name
                continue
            label = getattr(item, "name", "") if field.name in ("layer", "layers") else ""
            if label and not isinstance(label, str):
                return f"{name}.name"
            bad = _first_bad_string(item, f"{name} ({label!r})." if label else f"{name}.")
            if bad is not None:
                return bad
    return None


def read_binaryproto(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``BlobProto`` file (a ``.binaryproto`` mean image) as a float32 array."""
    data = read_bytes(path)
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(data)
    except DecodeError as e:
        raise BpinspectError(f"{path}: not a valid .binaryproto (BlobProto): {e}") from None
    return blob_to_array(blob, str(path)).astype(np.float32, copy=False)


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


# ---- blobs --------------------------------------------------------------------


def blob_shape(blob: caffe_pb2.BlobProto) -> Shape:
    """The shape a ``BlobProto`` declares (``Blob::FromProto``): the legacy
    ``(num, channels, height, width)`` when any of them is set, else ``shape``."""
    if any(blob.HasField(f) for f in _LEGACY_DIMS):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def shape_equals(shape: Sequence[int], blob: caffe_pb2.BlobProto) -> bool:
    """``Blob::ShapeEquals``: a legacy 4-D ``BlobProto`` equals a shape of at most
    4 axes when it matches the shape left-padded with 1s."""
    shape = tuple(int(d) for d in shape)
    if any(blob.HasField(f) for f in _LEGACY_DIMS):
        if len(shape) > 4:
            return False
        return (1,) * (4 - len(shape)) + shape == blob_shape(blob)
    return shape == blob_shape(blob)


def format_shape(shape: Sequence[int]) -> str:
    """A shape as the user reads it: ``(96, 3, 11, 11)``, ``(1000,)``, ``()``."""
    return str(tuple(int(d) for d in shape))


def blob_to_array(blob: caffe_pb2.BlobProto, where: str) -> np.ndarray:
    """The blob's values as an array of its shape (a new array): float64 from
    ``double_data`` when present (as ``Blob::FromProto`` prefers it), else float32
    from ``data``; a count that does not match the shape is a ``BpinspectError``
    starting with ``where``.
    """
    shape = blob_shape(blob)
    if any(d < 0 for d in shape):
        raise BpinspectError(f"{where}: negative dimension in shape {format_shape(shape)}")
    count = math.prod(shape)
    if len(blob.double_data) > 0:
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    if values.size != count:
        raise BpinspectError(
            f"{where}: holds {values.size} values but its shape {format_shape(shape)} needs {count}"
        )
    return values.reshape(shape)


def array_to_blob(a: Any) -> caffe_pb2.BlobProto:
    """A ``BlobProto`` with ``shape`` and ``data`` (``double_data`` for float64),
    from NumPy or CuPy."""
    return caffe_pb2.BlobProto.FromString(b"".join(_blob_wire(a)))


# Filling a repeated float field value by value takes seconds for a large
# layer, and so does copying a big message into another; but the wire form of
# a packed float field is the raw little-endian floats. So weights are
# written by laying out the wire bytes of the messages directly, in field
# number order as protobuf's own serializer does (tests check the bytes are
# the same).

Chunks = list[Any]  # bytes, or memoryviews of arrays


def _blob_wire(a: Any, diff: Any = None) -> Chunks:
    """``Blob::ToProto``'s wire form: float32 ``data`` (5) and ``diff`` (6) before
    ``shape`` (7), or for a float64 array ``shape`` then ``double_data`` (8) and
    ``double_diff`` (9), each a packed field of little-endian values."""
    host = np.asarray(to_host(a))
    double = host.dtype == np.float64
    dtype, first = ("<f8", caffe_pb2.BlobProto.DOUBLE_DATA_FIELD_NUMBER) if double else \
        ("<f4", caffe_pb2.BlobProto.DATA_FIELD_NUMBER)
    head = caffe_pb2.BlobProto()
    head.shape.dim.extend(int(d) for d in host.shape)  # 0-d arrays stay 0-d
    values: Chunks = []
    for number, array in ((first, host), (first + 1, diff)):  # diff: the next field
        if array is None:
            continue
        raw = np.ascontiguousarray(to_host(array), dtype=dtype).reshape(-1)
        if raw.size:
            values += _delimited(number, [memoryview(raw).cast("B")])
    return [head.SerializeToString(), *values] if double else [*values, head.SerializeToString()]


def _delimited(number: int, chunks: Chunks) -> Chunks:
    """A length-delimited field ``number`` holding ``chunks``."""
    size = sum(len(c) for c in chunks)
    return [_varint(number << 3 | 2) + _varint(size), *chunks]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# ---- into a net ---------------------------------------------------------------


def copy_trained_layers(
    weights: caffe_pb2.NetParameter,
    params: Mapping[str, Sequence[Blob]],
    source: str,
    layer_names: Iterable[str] | None = None,
) -> list[str]:
    """Copy the file's blobs into the net's params (``Net::CopyTrainedLayersFrom``).

    ``params``: layer name -> its learnable blobs (the net's ``params``). Layers
    match by name; for a matched layer the blob count and every blob's shape
    must agree, else a ``BpinspectError`` naming the layer, the blob index and
    both shapes. Values go into ``blob.data`` on the blob's device and dtype.

    ``layer_names``: every layer of the net, those without params included.
    Given it, this is exactly Caffe's rule: a file layer that the net lacks is
    ignored (with a note) and one that the net has without params must have
    no blobs. Without it, a file layer with no blobs that is not in ``params``
    is skipped silently (it holds nothing to copy).

    Returns notes for the user: ignored layers, and net layers with params
    that the file does not cover (they keep their filled values).
    """
    names = set(layer_names) if layer_names is not None else None
    notes: list[str] = []
    copied: set[str] = set()
    for layer in weights.layer:
        name = layer.name
        target = params.get(name)
        if target is None:
            if names is not None and name in names:
                target = ()
            elif names is None and len(layer.blobs) == 0:
                continue
            else:
                notes.append(f"ignored layer '{name}' from {source}: not in the net")
                continue
        if len(layer.blobs) != len(target):
            raise BpinspectError(
                f"{source}: layer '{name}' has {len(layer.blobs)} blob(s) in the file but "
                f"{len(target)} in the net"
            )
        for j, (proto, blob) in enumerate(zip(layer.blobs, target, strict=True)):
            if not shape_equals(blob.shape, proto):
                raise BpinspectError(
                    f"{source}: cannot copy param {j} of layer '{name}': shape mismatch: "
                    f"the file has {format_shape(blob_shape(proto))}, the net has "
                    f"{format_shape(blob.shape)} (rename the layer to learn it from scratch)"
                )
            values = blob_to_array(proto, f"{source}: layer '{name}' param {j}")
            blob.data[...] = blob.xp.asarray(values.reshape(blob.shape), dtype=blob.dtype)
        copied.add(name)
    for name, blobs in params.items():
        if blobs and name not in copied:
            notes.append(f"layer '{name}' has no weights in {source}: it keeps its filled values")
    return notes


# ---- writing ------------------------------------------------------------------


def write_caffemodel(
    path: str | os.PathLike[str],
    layers: Iterable[tuple[str, str, Sequence[Any]]],
    net_name: str = "",
    diffs: Iterable[Sequence[Any]] | None = None,
) -> None:
    """Write ``(layer name, layer type, [arrays])`` as a V2 ``.caffemodel``; with
    ``diffs`` (one list per layer) each blob holds its diff too (``snapshot_diff``).

    Atomic: the bytes go to a temporary file in the same directory, which
    then replaces ``path``; a failure leaves no half-written file behind.
    """
    chunks: Chunks = []
    if net_name:
        chunks.append(caffe_pb2.NetParameter(name=net_name).SerializeToString())
    layer_diffs = iter(diffs) if diffs is not None else None
    for name, type_name, arrays in layers:
        grads = next(layer_diffs) if layer_diffs is not None else [None] * len(arrays)
        layer: Chunks = [caffe_pb2.LayerParameter(name=name, type=type_name).SerializeToString()]
        for a, g in zip(arrays, grads, strict=True):
            layer += _delimited(caffe_pb2.LayerParameter.BLOBS_FIELD_NUMBER, _blob_wire(a, g))
        chunks += _delimited(caffe_pb2.NetParameter.LAYER_FIELD_NUMBER, layer)
    write_atomic(path, lambda f: f.writelines(chunks), overwrite=True)
