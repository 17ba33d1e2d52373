"""Caffe's ``Datum`` records (``caffe.proto``) as ``C x H x W`` arrays.

A Datum holds one item of a database:

- raw: ``channels``, ``height``, ``width`` and either ``data`` (bytes, one
  uint8 per value, C x H x W order) or, when ``data`` is empty,
  ``float_data`` (Caffe's ``DataTransformer::Transform(const Datum&)`` picks
  ``data`` whenever it is non-empty);
- ``encoded``: ``data`` is a whole image file (JPEG, PNG...); the sizes are
  not used. ``DataTransformer`` decodes it with ``DecodeDatumToCVMat`` (color
  under ``force_color``, gray under ``force_gray``) or else
  ``DecodeDatumToCVMatNative`` (as stored: gray, BGR or BGRA), in OpenCV's
  BGR order (see :mod:`bpinspect.io.imdecode`), then lays HWC out as CHW.

and ``label``. Caffe trusts the sizes; here a raw record whose sizes do not
match its bytes is a one-line error naming the record, checked before any
array is made. No math.
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from bpinspect.errors import BpinspectError
from bpinspect.io.imdecode import ImreadMode, decode_image
from bpinspect.proto import caffe_pb2

__all__ = ["datum_to_array", "parse_datum"]


def parse_datum(value: bytes, where: str) -> caffe_pb2.Datum:
    """A record's bytes as a ``Datum``; ``where`` names the record for errors."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError as e:
        raise BpinspectError(f"{where}: not a Caffe Datum: {e}") from None
    return datum


def datum_to_array(datum: caffe_pb2.Datum, where: str,
                   mode: ImreadMode = ImreadMode.UNCHANGED) -> np.ndarray:
    """The datum's values, ``C x H x W``: uint8 for ``data`` and encoded images,
    float32 for ``float_data``. ``mode`` is how an encoded image is decoded."""
    if datum.encoded:
        hwc = decode_image(datum.data, mode, where)
        return np.ascontiguousarray(hwc.transpose(2, 0, 1))
    c, h, w = datum.channels, datum.height, datum.width
    if c <= 0 or h <= 0 or w <= 0:
        raise BpinspectError(f"{where}: a Datum of {c} x {h} x {w} (channels x height x width); "
                             "every size must be positive")
    count = c * h * w
    if len(datum.data):
        if len(datum.data) != count:
            raise BpinspectError(f"{where}: a Datum of {c} x {h} x {w} needs {count} bytes of "
                                 f"data, it holds {len(datum.data)}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(c, h, w)
    if len(datum.float_data) != count:
        raise BpinspectError(f"{where}: a Datum of {c} x {h} x {w} needs {count} values, it "
                             f"holds {len(datum.float_data)} float_data and no data")
    return np.array(datum.float_data, dtype=np.float32).reshape(c, h, w)
