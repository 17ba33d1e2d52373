"""Images decoded as OpenCV's ``cv::imdecode`` / ``cv::imread`` give them to Caffe.

Caffe reads images through OpenCV (``src/caffe/util/io.cpp``:
``ReadImageToCVMat``, ``DecodeDatumToCVMat``, ``DecodeDatumToCVMatNative``),
so a decoded image is an ``H x W x C`` uint8 array in OpenCV's channel order,
**B, G, R** (and A). Three modes, OpenCV's read flags:

- ``UNCHANGED`` (``imdecode(buf, -1)``, the "native" decode): gray stays one
  channel, color is BGR, an alpha channel (RGBA, gray + alpha, a palette with
  transparency) makes it BGRA, four channels;
- ``COLOR`` (``CV_LOAD_IMAGE_COLOR``): always BGR, gray replicated, alpha
  dropped (not composited), as OpenCV does;
- ``GRAYSCALE`` (``CV_LOAD_IMAGE_GRAYSCALE``): one channel.

Decoding is Pillow's (libjpeg, libpng, as OpenCV uses), so pixel values are
the same but for these known differences:

- a color JPEG read as GRAYSCALE is decoded straight to its luma (libjpeg's
  grayscale output, as OpenCV asks for); any other color image is converted
  with OpenCV's ``cvtColor`` weights in its fixed point, ``(4899 R + 9617 G +
  1868 B + 8192) >> 14``; OpenCV's PNG reader lets libpng convert, which may
  differ from that by one level;
- the EXIF orientation is not applied (OpenCV 3.1+ rotates JPEGs that carry
  one when reading COLOR; older OpenCV, as Caffe was mostly built with, does
  not);
- 16-bit images are an error, as for Caffe (its transformer needs 8 bits).

No math beyond the channel reordering and that gray conversion.
"""

from __future__ import annotations

import io
import warnings
from enum import Enum

import numpy as np
from PIL import Image, UnidentifiedImageError

from bpinspect.errors import BpinspectError

__all__ = ["ImreadMode", "decode_image"]


class ImreadMode(Enum):
    UNCHANGED = -1
    GRAYSCALE = 0
    COLOR = 1


_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def decode_image(data: bytes, mode: ImreadMode, where: str) -> np.ndarray:
    """``data`` (an encoded JPEG, PNG, ... file) as an ``H x W x C`` uint8 array, BGR(A).

    A file that does not decode is a ``BpinspectError`` starting with ``where``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            if mode is ImreadMode.GRAYSCALE and im.format == "JPEG" and im.mode != "L":
                im.draft("L", im.size)  # libjpeg's own grayscale output, as OpenCV asks
            im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise BpinspectError(f"{where}: cannot decode the image: {e}") from None
    if im.mode in _SIXTEEN_BIT:
        raise BpinspectError(f"{where}: a {im.mode} image (16-bit or float); Caffe's data "
                             "layers need 8-bit images")
    if mode is ImreadMode.GRAYSCALE:
        return _gray(im)[:, :, None]
    if mode is ImreadMode.COLOR:
        return _bgr(im.convert("RGB"))
    return _native(im)


def _native(im: Image.Image) -> np.ndarray:
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))[:, :, None]
    # OpenCV's PNG reader: 4 channels for an alpha channel or a palette with one.
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return _bgr(im.convert("RGBA" if has_alpha else "RGB"))


def _bgr(im: Image.Image) -> np.ndarray:
    rgb = np.asarray(im)
    order = [2, 1, 0, 3] if rgb.shape[2] == 4 else [2, 1, 0]
    return np.ascontiguousarray(rgb[:, :, order])


def _gray(im: Image.Image) -> np.ndarray:
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    rgb = np.asarray(im.convert("RGB")).astype(np.int32)
    # cv::cvtColor(BGR2GRAY) in fixed point (14 bits), rounding half up.
    gray = (rgb[:, :, 0] * 4899 + rgb[:, :, 1] * 9617 + rgb[:, :, 2] * 1868 + 8192) >> 14
    return gray.astype(np.uint8)
