"""Layer ``ImageData``: images named in a list file (``image_data_layer.cpp``).

- ``image_data_param``: ``source`` (lines ``path label``, parsed as Caffe:
  :func:`bpinspect.io.listfiles.read_image_list`), ``root_folder`` (put
  before each path as a string, as Caffe does: end it with ``/``),
  ``batch_size`` (default 1), ``is_color`` (read as BGR, else gray),
  ``new_height`` / ``new_width`` (resize; both or neither), ``shuffle``,
  ``rand_skip``; plus ``transform_param``.
- Tops: ``data`` ``(batch_size, C, H', W')`` inferred from the first image
  batch 0 reads (``InferBlobShape``), and ``label`` ``(batch_size,)``.
- Order: Caffe shuffles the lines at setup and again each time it wraps to
  the first line; here epoch ``e``'s order is a permutation drawn from the
  seed and ``e`` (so any batch can be replayed; a fresh uniform permutation
  per epoch, as Caffe's reshuffle of the previous order is one).
- ``rand_skip``: Caffe starts at line ``rand() % rand_skip`` (after the
  shuffle); here drawn from the seed. Batch ``k`` item ``m`` is position
  ``p = skip + k * batch_size + m`` of the stream, epoch ``p // N``, slot
  ``p mod N``.
- Resize: OpenCV's ``cv::resize`` with ``INTER_LINEAR`` (its default), see
  :func:`resize_linear`.

Images are read as ``cv::imread`` does (:mod:`bpinspect.io.imdecode`);
relative paths from the working directory, else from the net's directory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.io.db import resolve_path
from bpinspect.io.imdecode import ImreadMode, decode_image
from bpinspect.io.listfiles import read_image_list
from bpinspect.layers.base import Shape
from bpinspect.layers.data_source import (
    STREAM_SHUFFLE,
    STREAM_SKIP,
    STREAM_TRANSFORM,
    Batch,
    DataSource,
    describe_indices,
)
from bpinspect.layers.registry import register
from bpinspect.layers.transformer import DataTransformer

__all__ = ["ImageData", "resize_linear"]


def resize_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(image, Size(width, height))``, INTER_LINEAR, of an HWC uint8 image.

    OpenCV's geometry exactly: destination pixel ``x`` samples the source at
    ``fx = (x + 0.5) * src_w / width - 0.5``, between ``floor(fx)`` and the next
    pixel, clamped at the borders (no antialiasing when shrinking). OpenCV
    weighs in 11-bit fixed point, with SIMD paths that round differently;
    this weighs in float64 and rounds half up, so a value may differ from
    OpenCV's by one level. (Pillow's bilinear resize, which antialiases when
    shrinking, would differ much more.)
    """

    def taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
        i0 = np.floor(f).astype(np.int64)
        frac = f - i0
        low = i0 < 0
        frac[low], i0[low] = 0.0, 0
        high = i0 >= src - 1
        frac[high], i0[high] = 0.0, src - 1
        return i0, np.minimum(i0 + 1, src - 1), frac

    y0, y1, fy = taps(image.shape[0], height)
    x0, x1, fx = taps(image.shape[1], width)
    src = image.astype(np.float64)
    rows = src[y0] * (1 - fy)[:, None, None] + src[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@register("ImageData")
class ImageData(DataSource):
    exact_num_tops = 2

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.image_data_param
        self.source: str = p.source
        self.root_folder: str = p.root_folder
        self.batch_size = int(p.batch_size)
        self.new_height, self.new_width = int(p.new_height), int(p.new_width)
        self.is_color = bool(p.is_color)
        self.shuffle = bool(p.shuffle)
        self.rand_skip = int(p.rand_skip)
        self.transformer = DataTransformer(param.transform_param, phase, self.where)
        self.lines: list[tuple[str, int]] = []
        self._item_shape: Shape = ()
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    # ---- setup ---------------------------------------------------------------------

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if (self.new_height == 0) != (self.new_width == 0):
            self.fail("new_height and new_width must be set together (Caffe's requirement)")
        self.check_batch_size(self.batch_size, "image_data_param")
        if not self.source:
            self.fail("image_data_param.source is not set")
        if not self.lines:
            path = resolve_path(self.source, self.base_dir)
            self.lines = read_image_list(path, self.where, display=self.source)
        skip = self.skip()
        if skip >= len(self.lines):
            self.fail(f"rand_skip skips {skip} lines, the image list has {len(self.lines)} "
                      "(not enough points to skip)")
        self.transformer.load_mean(self.base_dir)
        first = int(self.order(0)[skip])
        item = self._image(first)
        self._item_shape = self.transformer.infer_shape(item.shape, self._what(first))
        return [(self.batch_size, *self._item_shape), (self.batch_size,)]

    def skip(self) -> int:
        """The first position read: ``rand() % rand_skip`` lines, or 0."""
        if not self.rand_skip:
            return 0
        return int(self.rng(STREAM_SKIP).integers(2**32)) % self.rand_skip

    def order(self, epoch: int) -> np.ndarray:
        """The line indices in epoch ``epoch``'s order (the file's order unshuffled)."""
        n = len(self.lines)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        key = (self._seed, epoch)
        if key not in self._orders:
            if len(self._orders) >= 4:  # the epochs around the current one are enough
                self._orders.pop(next(iter(self._orders)))
            self._orders[key] = self.rng(STREAM_SHUFFLE, epoch).permutation(n)
        return self._orders[key]

    # ---- reading -------------------------------------------------------------------

    def _what(self, index: int) -> str:
        return (f"{self.where}: image list {self.source!r} line {index + 1}: "
                f"{self.root_folder + self.lines[index][0]!r}")

    def _image(self, index: int) -> np.ndarray:
        """Line ``index``'s image as ``ReadImageToCVMat`` gives it, laid out CHW."""
        what = self._what(index)
        path = resolve_path(self.root_folder + self.lines[index][0], self.base_dir)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BpinspectError(f"{what}: could not load the image: "
                                 f"{e.strerror or e}") from None
        mode = ImreadMode.COLOR if self.is_color else ImreadMode.GRAYSCALE
        hwc = decode_image(data, mode, what)
        if self.new_height > 0:
            hwc = resize_linear(hwc, self.new_height, self.new_width)
        return np.ascontiguousarray(hwc.transpose(2, 0, 1))

    def read_batch(self, k: int, dtype: Any) -> Batch:
        b, n = self.batch_size, len(self.lines)
        positions = self.skip() + k * b + np.arange(b, dtype=np.int64)
        epochs, slots = positions // n, positions % n
        lines = np.array([self.order(int(e))[s] for e, s in zip(epochs, slots, strict=True)],
                         dtype=np.int64)
        rng = self.rng(STREAM_TRANSFORM, k)
        data = np.empty((b, *self._item_shape), dtype=dtype)
        labels = np.empty(b, dtype=dtype)
        offsets = np.zeros((b, 2), dtype=np.int64)
        mirrored = np.zeros(b, dtype=bool)
        for m, index in enumerate(int(i) for i in lines):
            item = self._image(index)
            what = self._what(index)
            h_off, w_off, mirror = self.transformer.draw(rng, item.shape, what)
            out = self.transformer.transform(item, h_off, w_off, mirror, dtype, what)
            if out.shape != self._item_shape:
                raise BpinspectError(f"{self._what(index)}: gives an item of {out.shape}, the "
                                     f"first image {self._item_shape}; set new_height and "
                                     "new_width (or a crop_size) to give all one shape")
            data[m] = out
            labels[m] = self.lines[index][1]
            offsets[m] = (h_off, w_off)
            mirrored[m] = mirror
        if self.shuffle:
            span = ", ".join(str(int(e)) for e in np.unique(epochs))
            what = (f"{describe_indices(slots, 'positions', n)} of epoch {span}'s shuffled "
                    f"order, image list {self.source}")
        else:
            what = f"{describe_indices(lines, 'records', n)}, image list {self.source}"
        internals = {"record": lines, "epoch": epochs, "crop_offset": offsets,
                     "mirror": mirrored}
        return Batch([data, labels], internals, what)
