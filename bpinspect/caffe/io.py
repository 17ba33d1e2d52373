"""pycaffe's ``caffe.io``: array <-> proto conversions, the Transformer, image helpers.

Follows ``python/caffe/io.py``. Images are read and resized with Pillow
(pycaffe uses scikit-image and SciPy): ``load_image`` gives the same
H x W x K float32 in [0, 1]; ``resize_image`` interpolates per channel
(order 0 nearest, 1 bilinear, 2-3 bicubic), so resized values can differ
from scikit-image's in the last digits, and by more where scikit-image
anti-aliases a downscale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from bpinspect.io.inputs import load_image as _load_image
from bpinspect.proto import caffe_pb2

__all__ = [
    "Transformer",
    "array_to_blobproto",
    "array_to_datum",
    "arraylist_to_blobprotovector_str",
    "blobproto_to_array",
    "blobprotovector_str_to_arraylist",
    "datum_to_array",
    "load_image",
    "oversample",
    "resize_image",
]


# ---- proto / datum / ndarray ------------------------------------------------------


def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The blob's data (or diff) shaped by its legacy num/channels/height/width
    when any is set, else by ``shape.dim``."""
    values = np.array(blob.diff if return_diff else blob.data)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return values.reshape(blob.num, blob.channels, blob.height, blob.width)
    return values.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr: Any, diff: Any = None) -> caffe_pb2.BlobProto:
    """A BlobProto with ``shape`` and ``data`` (and ``diff``) from N-d arrays."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist: Sequence[Any]) -> bytes:
    """A serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr: Any, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum from a C x H x W array: uint8 as bytes in ``data``, else ``float_data``."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """The C x H x W array of a Datum (uint8 from ``data``, else float from
    ``float_data``); the label stays in ``datum.label``."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=float).reshape(shape)


# ---- images -----------------------------------------------------------------------


def load_image(filename: Any, color: bool = True) -> np.ndarray:
    """An image as H x W x 3 RGB (or H x W x 1 intensity) float32 in [0, 1]."""
    return _load_image(filename, color=color)


_RESAMPLE = {0: Image.Resampling.NEAREST, 1: Image.Resampling.BILINEAR,
             2: Image.Resampling.BICUBIC, 3: Image.Resampling.BICUBIC}


def resize_image(im: Any, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """``im`` (H x W x K) resized to ``new_dims`` = (height, width), as float32."""
    im = np.asarray(im)
    h, w = int(new_dims[0]), int(new_dims[1])
    if im.size and im.min() == im.max():  # a constant image stays that constant
        return np.full((h, w, im.shape[-1]), im.flat[0], dtype=np.float32)
    resample = _RESAMPLE.get(int(interp_order), Image.Resampling.BILINEAR)
    planes = []
    for k in range(im.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(im[:, :, k], dtype=np.float32), mode="F")
        planes.append(np.asarray(plane.resize((w, h), resample), dtype=np.float32))
    return np.stack(planes, axis=2)


def oversample(images: Sequence[Any], crop_dims: Sequence[int]) -> np.ndarray:
    """The four corner crops and the centre crop of each image, then their mirrors:
    ``(10 * N, h, w, K)`` for N images of one size."""
    im_shape = np.array(np.asarray(images[0]).shape)
    crop = np.array(crop_dims, dtype=int)
    corners = [(i, j) for i in (0, im_shape[0] - crop[0]) for j in (0, im_shape[1] - crop[1])]
    boxes = [(i, j, i + crop[0], j + crop[1]) for i, j in corners]
    centre = im_shape[:2] / 2.0
    top_left = centre - crop / 2.0
    boxes.append(tuple(int(v) for v in np.concatenate([top_left, top_left + crop])))
    boxes = [tuple(int(v) for v in box) for box in boxes]
    first = np.asarray(images[0])
    crops = np.empty((10 * len(images), crop[0], crop[1], first.shape[-1]), dtype=np.float32)
    n = 0
    for im in images:
        im = np.asarray(im)
        for y0, x0, y1, x1 in boxes:
            crops[n] = im[y0:y1, x0:x1, :]
            n += 1
        crops[n:n + 5] = crops[n - 5:n, :, ::-1, :]  # mirrored
        n += 5
    return crops


# ---- the Transformer --------------------------------------------------------------


class Transformer:
    """Turns H x W x K images into the K x H x W arrays an input blob holds.

    ``inputs`` maps each input name to its blob shape (``{"data":
    net.blobs["data"].data.shape}``). ``preprocess`` converts to float32,
    resizes to the blob's (H, W), then transposes, swaps channels, scales by
    ``raw_scale``, subtracts the mean and scales by ``input_scale``, each
    where set; ``deprocess`` undoes it (except the resize).
    """

    def __init__(self, inputs: dict[str, Sequence[int]]) -> None:
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict[str, Any] = {}
        self.channel_swap: dict[str, Any] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise KeyError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data: Any) -> np.ndarray:
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=False)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        caffe_in = np.array(caffe_in, dtype=np.float32)  # own copy: scaled in place below
        if in_ in self.raw_scale:
            caffe_in *= self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in -= self.mean[in_]
        if in_ in self.input_scale:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: Any) -> np.ndarray:
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        if in_ in self.input_scale:
            decaf_in /= self.input_scale[in_]
        if in_ in self.mean:
            decaf_in += self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """The axis order, e.g. (2, 0, 1) for H x W x K -> K x H x W."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions "
                             "as the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """The channel order after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as "
                             "the input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Multiply the raw [0, 1] input by ``scale`` (255 for the ImageNet models)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: Any) -> None:
        """Subtract ``mean``: one value per channel (K,), or a K x H x W image
        (resized to the input's H x W when it differs)."""
        self._check_input(in_)
        mean = np.asarray(mean)
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            ms = mean.shape if mean.ndim != 2 else (1, *mean.shape)
            if len(ms) != 3:
                raise ValueError("Mean shape invalid")
            mean = mean.reshape(ms)
            if ms != self.inputs[in_][1:]:
                lo, hi = float(mean.min()), float(mean.max())
                unit = (mean - lo) / (hi - lo) if hi > lo else mean - lo
                resized = resize_image(unit.transpose((1, 2, 0)), self.inputs[in_][2:])
                mean = resized.transpose((2, 0, 1)) * (hi - lo) + lo
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Multiply the preprocessed input by ``scale`` (after the mean)."""
        self._check_input(in_)
        self.input_scale[in_] = scale
