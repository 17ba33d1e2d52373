"""Input blobs from files: a ``.npy`` array, or an image preprocessed as pycaffe does.

An image goes through the steps of pycaffe's classic ``caffe.io.Transformer``
as ``classify.py`` and the ImageNet examples set it up
(``python/caffe/io.py``: ``load_image``, then ``preprocess``):

1. load as RGB (grayscale when the blob has one channel) in [0, 1];
2. resize to the blob's (H, W), bilinear (Pillow's, on float values);
3. HWC -> CHW;
4. RGB -> BGR (``channel_swap``; three-channel blobs only);
5. times ``raw_scale`` (255 for the reference ImageNet models);
6. minus the mean (in the net's channel order, B, G, R);

and the result is repeated over the batch (N). A ``.npy`` file is taken
verbatim: it is already what the blob should hold.

The mean is a per-channel tuple (one value, or one per channel), or a file:
a ``.npy`` array or a ``.binaryproto`` ``BlobProto`` (Caffe's mean image).
A mean image of another size than the input is resized to (H, W)
bilinearly, as ``Transformer.set_mean`` does (not center-cropped as Caffe's
data layer does with ``crop_size``); pass its per-channel mean instead
(``parse_mean("104,117,123")``) if that is what the model was trained with.
"""

from __future__ import annotations

import math
import os
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from bpinspect.errors import BpinspectError
from bpinspect.io.caffemodel import read_binaryproto
from bpinspect.io.files import open_for_reading

__all__ = [
    "Mean", "load_image", "load_input", "load_mean", "load_npy", "npy_shape", "parse_mean",
]

Mean = Sequence[float] | np.ndarray | str | os.PathLike[str]

# skimage.color.rgb2gray's weights, which pycaffe's load_image(color=False) uses.
_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)


def load_input(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    *,
    mean: Mean | None = None,
    raw_scale: float = 255.0,
    channel_swap: bool = True,
    blob: str | None = None,
) -> np.ndarray:
    """A float32 array of ``shape`` for an input blob, from a ``.npy`` or an image.

    ``.npy``: must have ``shape``, or ``shape[1:]`` (then repeated over N); its
    values are used as they are. Anything else is read as an image (PNG,
    JPEG, ... via Pillow) and preprocessed as described in this module's
    docstring; ``shape`` must then be (N, C, H, W) with C 1 or 3.
    Every failure is a one-line ``BpinspectError`` naming the file (and ``blob``,
    the input blob it is for, when given).
    """
    shape = tuple(int(d) for d in shape)
    target = f"the input blob {blob!r}" if blob is not None else "the input blob"
    if Path(path).suffix.lower() == ".npy":
        return _load_npy_input(path, shape, target)
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise BpinspectError(
            f"{path}: an image fills a blob of shape (N, 1 or 3, H, W), not "
            f"{shape if blob is None else f'{target} of shape {shape}'}; give a .npy instead"
        )
    n, c, h, w = shape
    image = load_image(path, color=c == 3)  # H x W x C, RGB, [0, 1]
    if image.shape[:2] != (h, w):
        image = _resize(image, (h, w))
    chw = image.transpose(2, 0, 1)
    if c == 3 and channel_swap:
        chw = chw[::-1]
    chw = chw * np.float32(raw_scale)
    if mean is not None:
        chw = chw - load_mean(mean, (c, h, w))
    return np.ascontiguousarray(np.broadcast_to(chw, shape), dtype=np.float32)


def load_image(path: str | os.PathLike[str], color: bool = True) -> np.ndarray:
    """pycaffe's ``caffe.io.load_image``: H x W x 3 RGB (or H x W x 1 gray)
    float32 in [0, 1]. Alpha is dropped; 16-bit images scale by 1/65535."""
    try:
        with open_for_reading(path, "an image") as f, Image.open(f) as im:
            im.load()
            array = _to_float(im, color)
    except UnidentifiedImageError:
        raise BpinspectError(
            f"{path}: not an image that Pillow can read (PNG, JPEG, ...) nor a .npy"
        ) from None
    except Image.DecompressionBombError as e:
        raise BpinspectError(f"{path}: image too large: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BpinspectError(f"{path}: corrupt image: {' '.join(str(e).split())}") from None
    return array


def _to_float(im: Image.Image, color: bool) -> np.ndarray:
    if im.mode.startswith("I;16") or im.mode == "I":
        gray = np.asarray(im, dtype=np.float64) / 65535.0
        channels = np.clip(gray, 0.0, 1.0)[:, :, None]
    elif im.mode == "F":
        channels = np.asarray(im, dtype=np.float64)[:, :, None]
    elif im.mode in ("1", "L", "LA", "La"):
        channels = np.asarray(im.convert("L"), dtype=np.float64)[:, :, None] / 255.0
    else:
        channels = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    if color and channels.shape[2] == 1:
        channels = np.repeat(channels, 3, axis=2)
    elif not color and channels.shape[2] == 3:
        channels = (channels @ _GRAY_WEIGHTS)[:, :, None]
    return channels.astype(np.float32)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an H x W x C float image to ``size`` = (H, W)."""
    h, w = size
    planes = []
    for k in range(image.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(image[:, :, k], dtype=np.float32))
        resized = plane.resize((w, h), Image.Resampling.BILINEAR)
        planes.append(np.asarray(resized, dtype=np.float32))
    return np.stack(planes, axis=2)


def _load_npy_input(path: str | os.PathLike[str], shape: tuple[int, ...],
                    target: str = "the input blob") -> np.ndarray:
    array = load_npy(path)
    if array.shape == shape:
        return np.array(array, dtype=np.float32)
    if array.shape == shape[1:]:
        return np.ascontiguousarray(np.broadcast_to(array, shape), dtype=np.float32)
    raise BpinspectError(
        f"{path}: array of shape {array.shape} does not fit {target} of shape "
        f"{shape} (give {shape}, or {shape[1:]} to repeat over the batch)"
    )


def npy_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The shape a ``.npy`` file's header declares, without reading its data (the
    header checked against the file, as :func:`load_npy` does)."""
    with open_for_reading(path, "a .npy file") as f:
        shape, _ = _npy_header(f, path)
    return shape


# numpy's own limit on axes (NPY_MAXDIMS) and on a dimension (npy_intp).
_MAX_AXES = 64
_MAX_DIM = (1 << 63) - 1


def _npy_header(f: IO[bytes], path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the ``.npy`` open in ``f``, checked before any data is
    read: a numeric dtype, a shape numpy can hold, and as many bytes after the header
    as shape x dtype needs (a header may claim 10^12 values in a file of 100 bytes)."""
    magic = f.read(6)
    if magic != b"\x93NUMPY":
        what = "an .npz archive" if magic.startswith(b"PK") else "no NumPy header"
        raise BpinspectError(f"{path}: not a valid .npy file ({what})")
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    except (ValueError, TypeError, SyntaxError, OverflowError, OSError, EOFError,
            tokenize.TokenError) as e:
        raise BpinspectError(
            f"{path}: not a valid .npy file: {' '.join(str(e).split())[:200]}"
        ) from None
    shape = tuple(int(d) for d in shape)
    if dtype.hasobject:
        raise BpinspectError(
            f"{path}: holds Python objects (pickled); only numeric arrays are read"
        )
    if dtype.kind not in "biuf" or dtype.subdtype is not None:
        raise BpinspectError(f"{path}: dtype {dtype} is not numeric")
    if len(shape) > _MAX_AXES or any(d > _MAX_DIM for d in shape):
        raise BpinspectError(f"{path}: the header's shape {_short(shape)} is not an array shape")
    needed = math.prod(shape) * dtype.itemsize
    try:
        present = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, AttributeError, ValueError):
        present = None
    if present is not None and needed > present:
        raise BpinspectError(
            f"{path}: the header declares shape {_short(shape)} of {dtype} ({needed} bytes) "
            f"but the file holds {present} bytes after it (truncated or corrupt .npy)"
        )
    return shape, dtype


def _short(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 120 else text[:117] + "..."


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """A numeric ``.npy`` array, its header checked against the file before the data
    is read; any fault is a one-line ``BpinspectError`` naming the file."""
    with open_for_reading(path, "a .npy file") as f:
        shape, dtype = _npy_header(f, path)
        try:
            f.seek(0)
            array = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise BpinspectError(
                f"{path}: not a valid .npy file: {' '.join(str(e).split())[:200]}"
            ) from None
    result: np.ndarray = array
    return result


# ---- mean ---------------------------------------------------------------------


def parse_mean(text: str) -> tuple[float, ...] | Path:
    """``"104,117,123"`` (per-channel values, B,G,R) or a path to a mean file.

    Numbers separated by commas or spaces give a tuple, unless a file of that
    name exists; anything else is taken as a path (checked when loaded).
    """
    stripped = text.strip()
    if not stripped:
        raise BpinspectError("mean: empty; give per-channel values (104,117,123) or a file")
    parts = [p for p in re.split(r"[,\s]+", stripped) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        return Path(stripped)
    if Path(stripped).exists():
        return Path(stripped)
    if not all(np.isfinite(values)):
        raise BpinspectError(f"mean {text!r}: values must be finite")
    return values


def load_mean(mean: Mean, shape: tuple[int, int, int]) -> np.ndarray:
    """The mean as a float32 array broadcastable to ``shape`` = (C, H, W).

    Values: one, or one per channel. Arrays/files: (C,), (C, H', W'),
    (1, C, H', W') or (H', W') for one channel; an image of another size is
    resized bilinearly to (H, W), as pycaffe's ``Transformer.set_mean``.
    """
    c, h, w = shape
    if isinstance(mean, (str, os.PathLike)):
        where = str(mean)
        if Path(mean).suffix.lower() == ".npy":
            array = load_npy(mean).astype(np.float32)
        else:
            array = read_binaryproto(mean)
    else:
        where = "mean"
        try:
            array = np.asarray(mean, dtype=np.float32)
        except (TypeError, ValueError):
            raise BpinspectError(f"mean {mean!r}: not numbers") from None
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim <= 1:
        array = array.reshape(-1)
        if array.size not in (1, c):
            raise BpinspectError(
                f"{where}: {array.size} mean values for an input of {c} channel(s); give 1 or {c}"
            )
        return array[:, None, None]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise BpinspectError(f"{where}: a mean of shape {array.shape} is not (C, H, W)")
    if array.shape[0] != c:
        raise BpinspectError(f"{where}: the mean has {array.shape[0]} channel(s), the input {c}")
    if array.shape[1:] != (h, w):
        array = _resize(array.transpose(1, 2, 0), (h, w)).transpose(2, 0, 1)
    return np.ascontiguousarray(array, dtype=np.float32)
