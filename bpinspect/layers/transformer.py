"""Caffe's DataTransformer (``src/caffe/data_transformer.cpp``): crop, mirror,
mean subtraction and scale, applied item by item to what a data layer read.

For an item ``x`` of ``C x H x W`` values (a Datum's bytes or floats, or a
decoded image laid out as CHW, BGR) and ``transform_param``:

- ``crop_size`` s: the top is ``C x s x s``, cut at ``(h_off, w_off)``:
  random in TRAIN, ``h_off = Rand(H - s + 1)``, ``w_off = Rand(W - s + 1)``;
  centred in TEST, ``((H - s) / 2, (W - s) / 2)`` rounded down. Without a
  crop, the whole item (offsets 0).
- ``mirror``: the item is flipped left-right when ``Rand(2)`` says so (in
  both phases, as Caffe).
- ``mean_file`` (a ``.binaryproto`` of exactly ``C x H x W``, the uncropped
  size) is subtracted at the crop's offset: ``mean[c, h_off + h, w_off + w]``;
  else ``mean_value`` (one for all channels, or one per channel). Giving
  both is an error, as is ``force_color`` with ``force_gray``.
- per element, in the blob's dtype (Caffe's ``Dtype``):
  ``top[c, h, w'] = (x[c, h_off + h, w_off + w] - mean) * scale``, with
  ``w' = s - 1 - w`` when mirrored: the mean before the scale, the mirror
  moving values, not the mean's position.

``force_color`` / ``force_gray`` choose how an *encoded* item is decoded
(:attr:`DataTransformer.decode_mode`); Caffe ignores them for raw Datums.

The random choices come from a generator the layer gives per batch (seeded
by the layer's seed and the batch number), drawn in Caffe's order per item:
the mirror flag (only when ``mirror``), then ``h_off``, ``w_off`` (only for a
TRAIN crop). Caffe's own generator (boost's mt19937 from the solver's seed)
is not reproduced: the same seed does not give Caffe's crops, only the same
crops on every replay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.io.caffemodel import read_binaryproto
from bpinspect.io.db import resolve_path
from bpinspect.io.imdecode import ImreadMode

__all__ = ["DataTransformer"]

Shape = tuple[int, ...]


class DataTransformer:
    """One layer's ``transform_param``; ``where`` names the layer in errors."""

    def __init__(self, param: Any, phase: str, where: str) -> None:
        self.where = where
        self.phase = phase
        self.scale = float(param.scale)
        self.mirror = bool(param.mirror)
        self.crop_size = int(param.crop_size)
        self.mean_file: str | None = param.mean_file if param.HasField("mean_file") else None
        self.mean_values = [float(v) for v in param.mean_value]
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.mean_file is not None and self.mean_values:
            self.fail("cannot specify mean_file and mean_value at the same time")
        if self.force_color and self.force_gray:
            self.fail("cannot set both force_color and force_gray")
        self.mean: np.ndarray | None = None  # C x H x W, float32, after load_mean

    def fail(self, message: str) -> None:
        raise BpinspectError(f"{self.where}: transform_param: {message}")

    def load_mean(self, base_dir: str | None) -> None:
        """Read ``mean_file`` (Caffe does it when the transformer is made)."""
        if self.mean_file is None or self.mean is not None:
            return
        try:
            blob = read_binaryproto(resolve_path(self.mean_file, base_dir))
        except BpinspectError as e:
            self.fail(f"mean_file: {e}")
        # Caffe compares the data with data_mean_.channels()/height()/width() and reads
        # the first C*H*W values: a (1, C, H, W) blob (a 3-axis one would be misread).
        if blob.ndim != 4:
            self.fail(f"mean_file {self.mean_file!r} has shape {tuple(blob.shape)}; Caffe "
                      "expects (1, C, H, W)")
        self.mean = np.ascontiguousarray(blob[0])

    @property
    def decode_mode(self) -> ImreadMode:
        """How an encoded item is decoded (``DecodeDatumToCVMat`` / ``...Native``)."""
        if self.force_color:
            return ImreadMode.COLOR
        if self.force_gray:
            return ImreadMode.GRAYSCALE
        return ImreadMode.UNCHANGED

    @property
    def needs_rand(self) -> bool:
        """InitRand: random numbers are drawn for ``mirror`` or a TRAIN crop."""
        return self.mirror or (self.phase == "train" and self.crop_size > 0)

    def infer_shape(self, item_shape: Shape, what: str) -> Shape:
        """InferBlobShape: the ``C x H' x W'`` of one transformed item."""
        c, h, w = item_shape
        s = self.crop_size
        if c <= 0:
            raise BpinspectError(f"{what}: has {c} channels")
        if h < s or w < s:
            raise BpinspectError(f"{what}: is {h} x {w}, smaller than crop_size {s}")
        return (c, s, s) if s else (c, h, w)

    def draw(self, rng: Any, item_shape: Shape, what: str = "an item") -> tuple[int, int, bool]:
        """``(h_off, w_off, mirror)`` for one item, in Caffe's order of draws (an item
        smaller than the crop is the one-line error of ``infer_shape``)."""
        self.infer_shape(item_shape, what)
        _, h, w = item_shape
        s = self.crop_size
        mirror = bool(self.mirror and rng.integers(2))
        if not s:
            return 0, 0, mirror
        if self.phase == "train":
            return int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1)), mirror
        return (h - s) // 2, (w - s) // 2, mirror

    def transform_batch(self, items: list[np.ndarray], draws: list[tuple[int, int, bool]],
                        dtype: Any, out: np.ndarray, whats: list[str]) -> None:
        """Every item of a batch transformed into ``out`` (N x C x H' x W'): the same
        arithmetic as :meth:`transform` item by item, element for element, done once
        over the batch (per-item calls cost more than the work for small images).
        Items of another shape than the first go through :meth:`transform` and fail
        there, naming the record."""
        first = items[0].shape
        if any(item.shape != first for item in items):
            for m, (item, (h_off, w_off, mirror)) in enumerate(zip(items, draws, strict=True)):
                out[m] = self.transform(item, h_off, w_off, mirror, dtype, whats[m])
            return
        c, h, w = first
        self.infer_shape(first, whats[0])
        s = self.crop_size
        ch, cw = (s, s) if s else (h, w)
        dtype = np.dtype(dtype)
        if s:
            for m, (item, (h_off, w_off, _)) in enumerate(zip(items, draws, strict=True)):
                out[m] = item[:, h_off:h_off + ch, w_off:w_off + cw]
        else:
            out[...] = np.stack(items)
        if self.mean is not None:
            self._check_mean(first, whats[0])
            mean = self.mean.astype(dtype)
            if s:
                for m, (h_off, w_off, _) in enumerate(draws):
                    out[m] -= mean[:, h_off:h_off + ch, w_off:w_off + cw]
            else:
                out -= mean
        elif self.mean_values:
            out -= self._mean_values(c, dtype, whats[0])[:, None, None]
        out *= dtype.type(self.scale)
        flipped = [m for m, (_, _, mirror) in enumerate(draws) if mirror]
        if flipped:
            out[flipped] = out[flipped][..., ::-1]

    def _check_mean(self, shape: tuple[int, ...], what: str) -> None:
        assert self.mean is not None
        if self.mean.shape != tuple(shape):
            c, h, w = shape
            raise BpinspectError(
                f"{what}: is {c} x {h} x {w}, the mean_file {self.mean_file!r} is "
                f"{' x '.join(map(str, self.mean.shape))}; they must match (uncropped)")

    def _mean_values(self, c: int, dtype: Any, what: str) -> np.ndarray:
        if len(self.mean_values) not in (1, c):
            raise BpinspectError(f"{what}: has {c} channels; give 1 mean_value or {c}, "
                                 f"not {len(self.mean_values)}")
        values = self.mean_values * c if len(self.mean_values) == 1 else self.mean_values
        return np.asarray(values, dtype=dtype)

    def transform(self, item: np.ndarray, h_off: int, w_off: int, mirror: bool,
                  dtype: Any, what: str) -> np.ndarray:
        """One item (``C x H x W``, uint8 or float32) transformed, in ``dtype``."""
        c, h, w = item.shape
        self.infer_shape((c, h, w), what)
        s = self.crop_size
        ch, cw = (s, s) if s else (h, w)
        dtype = np.dtype(dtype)
        x = item[:, h_off:h_off + ch, w_off:w_off + cw].astype(dtype)
        if self.mean is not None:
            self._check_mean((c, h, w), what)
            x -= self.mean[:, h_off:h_off + ch, w_off:w_off + cw].astype(dtype)
        elif self.mean_values:
            x -= self._mean_values(c, dtype, what)[:, None, None]
        x *= dtype.type(self.scale)
        return x[:, :, ::-1] if mirror else x
