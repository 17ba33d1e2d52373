"""Caffe's fillers (include/caffe/filler.hpp): the initial values of params.

``fill(filler, shape, xp=..., rng=..., dtype=...)`` draws one array as
Caffe's ``GetFiller(param)->Fill(blob)`` would, with the same definitions:

- ``constant``: every value is ``value`` (Caffe's default filler, value 0;
  ``filler=None`` means this default).
- ``uniform``: U(min, max).
- ``gaussian``: N(mean, std^2); with ``sparse >= 0`` each value is kept with
  probability ``sparse / shape[0]`` and zeroed otherwise.
- ``positive_unitball``: U(0, 1), then each of the ``shape[0]`` rows is divided
  by its sum.
- ``xavier``: U(-a, a) with ``a = sqrt(3 / n)``; ``msra``: N(0, 2 / n); where
  ``n`` is ``fan_in = count / shape[0]`` (``variance_norm: FAN_IN``, the
  default), ``fan_out = count / shape[1]`` (``FAN_OUT``; ``count`` for 1-axis
  blobs) or their average (``AVERAGE``).
- ``bilinear``: the (K, K) bilinear-interpolation kernel in every (c, g) plane
  of a 4-axis blob, for upsampling Deconvolutions.

Randomness comes only from ``rng``, a seeded generator of either array module
(``backend.rng(seed, xp)``), never from global state. Values are drawn in
float64 whatever ``dtype`` is, then cast and placed on ``xp``: one seed gives
the same weights (up to rounding) to a float32 and a float64 net, and a NumPy
generator gives the same weights whichever device runs the net.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np

from bpinspect.backend import Array
from bpinspect.errors import BpinspectError

Shape = tuple[int, ...]

KNOWN_TYPES = ("constant", "gaussian", "positive_unitball", "uniform", "xavier", "msra", "bilinear")


def fill(
    filler: Any | None,
    shape: Shape,
    *,
    xp: types.ModuleType = np,
    rng: Any,
    dtype: Any = np.float32,
) -> Array:
    """An array of ``shape`` filled as Caffe's filler ``filler`` fills a blob.

    ``filler`` is a ``caffe_pb2.FillerParameter``, or None for Caffe's default
    (constant 0). An unknown type is a ``BpinspectError`` naming it.
    """
    shape = tuple(int(d) for d in shape)
    if filler is None:
        return xp.zeros(shape, dtype=dtype)
    kind = str(filler.type)
    sparse = int(filler.sparse)
    if kind not in KNOWN_TYPES:
        raise BpinspectError(
            f"unknown filler type {kind!r} (Caffe's fillers: {', '.join(KNOWN_TYPES)})"
        )
    if sparse != -1 and kind != "gaussian":
        raise BpinspectError(
            f"filler {kind!r}: sparse: {sparse} is only supported by the gaussian filler"
        )
    count = math.prod(shape)

    if kind == "constant":
        return xp.full(shape, float(filler.value), dtype=dtype)
    if kind == "bilinear":
        return _bilinear(shape, xp, dtype)
    if count == 0:
        return xp.zeros(shape, dtype=dtype)

    if kind == "uniform":
        values = _uniform(rng, shape, float(filler.min), float(filler.max))
    elif kind == "gaussian":
        if sparse < -1:
            raise BpinspectError(f"filler 'gaussian': sparse must be >= -1, got {sparse}")
        values = _gaussian(rng, shape, float(filler.mean), float(filler.std))
        if sparse >= 0:
            rows = _first_axis(shape, kind)
            keep = _random(rng, shape) < sparse / rows
            values = values * keep
    elif kind == "positive_unitball":
        values = _random(rng, shape)
        rows = _first_axis(shape, kind)
        flat = values.reshape(rows, -1)
        values = (flat / flat.sum(axis=1, keepdims=True)).reshape(shape)
    else:  # xavier, msra
        n = _fan(filler, shape, kind)
        if kind == "xavier":
            scale = math.sqrt(3.0 / n)
            values = _uniform(rng, shape, -scale, scale)
        else:
            values = _gaussian(rng, shape, 0.0, math.sqrt(2.0 / n))
    return xp.asarray(values, dtype=dtype)


def msra_default(shape: Shape, xp: types.ModuleType, rng: Any, dtype: Any = np.float32) -> Array:
    """A seeded MSRA (He) filler, FAN_IN: what bpinspect uses for weights with no
    filler when no ``.caffemodel`` is given (Caffe's own default, constant 0,
    would make every gradient below a weight zero)."""
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) == 0:
        return xp.zeros(shape, dtype=dtype)
    n = _fan(None, shape, "msra")
    return xp.asarray(_gaussian(rng, shape, 0.0, math.sqrt(2.0 / n)), dtype=dtype)


# ---- helpers ------------------------------------------------------------------------


def _random(rng: Any, shape: Shape) -> Array:
    """U[0, 1) from ``rng`` (NumPy or CuPy Generator), in float64."""
    return rng.random(shape, dtype=np.float64)


def _uniform(rng: Any, shape: Shape, low: float, high: float) -> Array:
    return low + (high - low) * _random(rng, shape)


def _gaussian(rng: Any, shape: Shape, mean: float, std: float) -> Array:
    return mean + std * rng.standard_normal(shape, dtype=np.float64)


def _first_axis(shape: Shape, kind: str) -> int:
    if len(shape) == 0:
        raise BpinspectError(f"filler {kind!r} needs a blob with at least one axis, got shape ()")
    return shape[0]


def _fan(filler: Any | None, shape: Shape, kind: str) -> float:
    """Caffe's n for xavier/msra: fan_in, fan_out or their average."""
    count = math.prod(shape)
    fan_in = count // _first_axis(shape, kind)
    fan_out = count // shape[1] if len(shape) > 1 else count
    norm = int(filler.variance_norm) if filler is not None else 0
    if norm == 2:  # AVERAGE
        return (fan_in + fan_out) / 2.0
    if norm == 1:  # FAN_OUT
        return float(fan_out)
    return float(fan_in)


def _bilinear(shape: Shape, xp: types.ModuleType, dtype: Any) -> Array:
    if len(shape) != 4:
        raise BpinspectError(f"filler 'bilinear' needs a 4-axis blob, got shape {shape}")
    height, width = shape[2], shape[3]
    if height != width:
        raise BpinspectError(f"filler 'bilinear' needs a square kernel, got {height}x{width}")
    f = math.ceil(width / 2.0)
    c = (width - 1) / (2.0 * f)
    ramp = 1.0 - np.abs(np.arange(width, dtype=np.float64) / f - c)
    kernel = np.outer(ramp, ramp)  # [y, x]
    full = np.broadcast_to(kernel, shape)
    return xp.asarray(full, dtype=dtype)

