"""The current batch as pictures: a data layer's image top, item by item, with labels.

What a person checks first when a net will not learn is what it was fed: the
right images, the right labels, crops and mirrors that make sense. This view
takes the batch exactly as the data layer wrote it into its first top (after
Caffe's DataTransformer: crop, mirror, mean subtraction, scale) and makes small
RGB thumbnails of it:

- each image is stretched over its own min..max (the mean subtraction and the
  scale leave values a screen cannot show as they are), and says so;
- three channels are read in Caffe's order, BGR (OpenCV's, which
  ``convert_imageset`` and Caffe's image layers use), and shown as RGB; one
  channel is grey; any other count shows its first channel, in grey;
- images larger than ``max_side`` are reduced by averaging square blocks.

The labels are the layer's second top, where it holds one number per item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.layers.data_source import DataSource

__all__ = ["BatchImage", "BatchView", "batch_view", "data_layers", "thumbnail"]

DEFAULT_MAX_SIDE = 32
DEFAULT_COUNT = 64


@dataclass(frozen=True)
class BatchImage:
    item: int
    label: str | None  # the label of the item (None: the layer has no label top)
    pixels: np.ndarray  # (rows, cols, 3) uint8 RGB


@dataclass(frozen=True)
class BatchView:
    layer: str
    top: str
    label_top: str | None
    shape: tuple[int, ...]  # the image top's shape (N, C, H, W)
    description: str  # what the layer read, e.g. "records 128–191 of 1500, LMDB ..."
    first: int  # the first item shown
    images: tuple[BatchImage, ...]
    reduced_by: int  # block size of the reduction (1: full size)
    channels: str  # how the channels are shown

    @property
    def items(self) -> int:
        return self.shape[0]


def data_layers(session: Any) -> list[int]:
    """Indices of the layers that read a data source (Data, ImageData, ...)."""
    return [i for i, layer in enumerate(session.net.layers) if isinstance(layer, DataSource)]


def batch_view(session: Any, layer: str | None = None, first: int = 0,
               count: int = DEFAULT_COUNT, max_side: int = DEFAULT_MAX_SIDE) -> BatchView:
    """Items ``first .. first+count-1`` of the batch the data layer ``layer`` (the
    first data layer when None) read in this pass."""
    net = session.net
    indices = data_layers(session)
    if layer is None:
        if not indices:
            raise BpinspectError("the net has no data layer (Data, ImageData, HDF5Data, "
                                 "MemoryData) whose batch could be shown")
        index = indices[0]
    else:
        index = net.layer_index(layer)
        if index not in indices:
            raise BpinspectError(f"layer {layer!r} ({net.layers[index].type}) is not a data "
                                 "layer")
    name = net.layer_names[index]
    source: DataSource = net.layers[index]
    step = session.step_of(name, "forward")
    if not session.is_done(step.index) or source.last_batch is None:
        raise BpinspectError(f"{name} has not read its batch in this pass yet: press n "
                             "(step) or c (continue)")
    tops = net.top_names[name]
    images = to_host(session.array(tops[0], "data", step.index))
    if images.ndim != 4:
        raise BpinspectError(f"top {tops[0]!r} of {name} has shape {tuple(images.shape)}, not "
                             "(N, C, H, W) images")
    n, c = images.shape[:2]
    labels = None
    label_top = None
    if len(tops) > 1:
        candidate = to_host(session.array(tops[1], "data", step.index))
        if candidate is not None and candidate.size == n:
            labels, label_top = candidate.reshape(n), tops[1]
    first = min(max(int(first), 0), n - 1)
    block = max(1, math.ceil(max(images.shape[2:]) / max_side))
    shown = tuple(
        BatchImage(k, None if labels is None else _label_text(labels[k]),
                   thumbnail(images[k], block))
        for k in range(first, min(first + count, n)))
    channels = {1: "grey", 3: "BGR shown as RGB"}.get(c, f"channel 0 of {c}, grey")
    return BatchView(name, tops[0], label_top, tuple(int(d) for d in images.shape),
                     source.describe_batch(), first, shown, block, channels)


def thumbnail(image: np.ndarray, block: int = 1) -> np.ndarray:
    """One (C, H, W) image as (H // block, W // block, 3) uint8 RGB, stretched over
    its own finite min..max (constant: mid grey; NaN and Inf: red)."""
    x = np.asarray(image, dtype=np.float64)
    x = x[::-1] if x.shape[0] == 3 else x[:1]  # BGR -> RGB; else the first channel
    if block > 1:
        c, h, w = x.shape
        h, w = max(h // block, 1) * block, max(w // block, 1) * block
        x = _block_mean(x, h, w, block)
    bad = ~np.isfinite(x).all(axis=0)
    finite = x[np.isfinite(x)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    with np.errstate(invalid="ignore"):
        scaled = (x - lo) / (hi - lo) * 255 if hi > lo else np.full_like(x, 128.0)
    rgb = np.repeat(scaled, 3, axis=0) if scaled.shape[0] == 1 else scaled
    out = np.nan_to_num(rgb, nan=0.0).clip(0, 255).round().astype(np.uint8).transpose(1, 2, 0)
    out[bad] = (255, 0, 0)
    return out


def _block_mean(x: np.ndarray, h: int, w: int, block: int) -> np.ndarray:
    """Mean over ``block``×``block`` squares (a side smaller than a block is padded by
    repeating its last row or column)."""
    c = x.shape[0]
    if x.shape[1] < h or x.shape[2] < w:
        x = np.pad(x, ((0, 0), (0, max(h - x.shape[1], 0)), (0, max(w - x.shape[2], 0))),
                   mode="edge")
    x = x[:, :h, :w]
    return x.reshape(c, h // block, block, w // block, block).mean(axis=(2, 4))


def _label_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.4g}"
