"""pycaffe's ``caffe.coord_map`` (``python/caffe/coord_map.py``): how the spatial
coordinates of one NetSpec top map onto another's, and ``crop(top_from, top_to)``,
the Crop layer that aligns them, as FCN's net-writing scripts use it::

    from bpinspect.caffe.coord_map import crop
    n.score = crop(n.upscore, n.data)   # Crop with axis 2 and the offset computed

A map is ``(axis, scale, shift)``: output coordinate ``scale * x + shift`` for
input coordinate ``x``, per spatial axis from ``axis`` on (``axis`` None: any,
as for pointwise layers). Convolution-like layers map a pixel to its window's
centre, ``(pad - (k_eff - 1) / 2) / stride`` with the dilated kernel ``k_eff``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.caffe.net_spec import Top
from bpinspect.caffe.net_spec import layers as L
from bpinspect.errors import BpinspectError

__all__ = ["AxisMismatchException", "UndefinedMapException", "compose", "coord_map",
           "coord_map_from_to", "crop", "inverse"]

# Layers whose top pixel i is bottom pixel i (pycaffe's list).
PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU",
                       "Log", "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale",
                       "Sigmoid", "Split", "TanH", "Threshold"]

CoordMap = tuple[Any, Any, Any]  # (axis or None, scale, shift); scale and shift arrays
IDENTITY: CoordMap = (None, 1, 0)


class UndefinedMapException(BpinspectError):
    """A layer (InnerProduct, a loss...) that has no coordinate mapping."""


class AxisMismatchException(BpinspectError):
    """Two maps over different spatial axes."""


def _field(params: dict[str, Any], name: str, default: Any) -> np.ndarray:
    return np.array(params.get(name, default), ndmin=1)


def conv_params(fn: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(axis, stride, dilated kernel size, pad)`` of a Convolution, Deconvolution,
    Im2col (``convolution_param``) or Pooling (its fields given directly)."""
    params = fn.params.get("convolution_param", fn.params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}
    if legacy & set(params):
        raise BpinspectError(f"coord_map: {fn.type_name} with {sorted(legacy & set(params))}: "
                             "crop takes kernel_size/stride/pad, not the _h/_w forms")
    if "kernel_size" not in params:
        raise BpinspectError(f"coord_map: {fn.type_name} has no kernel_size")
    kernel = _field(params, "kernel_size", 1)
    dilation = _field(params, "dilation", 1)
    return (int(params.get("axis", 1)), _field(params, "stride", 1),
            (kernel - 1) * dilation + 1, _field(params, "pad", 0))


def crop_params(fn: Any) -> tuple[int, np.ndarray]:
    """``(axis, offset)`` of a Crop layer, with Caffe's defaults (axis 2, offset 0)."""
    params = fn.params.get("crop_param", fn.params)
    return int(params.get("axis", 2)), _field(params, "offset", 0)


def coord_map(fn: Any) -> CoordMap:
    """The map from the bottom of layer ``fn`` (a NetSpec Function) to its top."""
    kind = fn.type_name
    if kind in ("Convolution", "Pooling", "Im2col"):
        axis, stride, kernel, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (kernel - 1) / 2) / stride
    if kind == "Deconvolution":  # the transpose: the inverse of a convolution's map
        axis, stride, kernel, pad = conv_params(fn)
        return axis, stride, (kernel - 1) / 2 - pad
    if kind in PASS_THROUGH_LAYERS:
        return IDENTITY
    if kind == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # axis - 1: the last axis that is not a coordinate
    raise UndefinedMapException(f"coord_map: a {kind} layer has no coordinate mapping")


def compose(base: CoordMap, further: CoordMap) -> CoordMap:
    """``base`` after ``further``: the scales multiply, ``further``'s shift is scaled
    by ``base``'s."""
    ax1, a1, b1 = base
    ax2, a2, b2 = further
    if ax1 is None:
        axis = ax2
    elif ax2 is None or ax1 == ax2:
        axis = ax1
    else:
        raise AxisMismatchException(f"coord_map: maps over axis {ax1} and axis {ax2}")
    return axis, a1 * a2, a1 * b2 + b1


def inverse(cmap: CoordMap) -> CoordMap:
    """The map back (the gradient's direction)."""
    axis, a, b = cmap
    return axis, 1 / a, -b / a


def _mappable_bottoms(top: Top) -> tuple[Top, ...]:
    # A Crop's second bottom only gives the shape: its coordinates do not map.
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _ancestor_maps(start: Top) -> dict[Top, CoordMap]:
    """Every top that ``start`` is computed from through mappable layers, with the map
    from that top's coordinates to ``start``'s."""
    maps: dict[Top, CoordMap] = {start: IDENTITY}
    frontier = [start]
    while frontier:
        top = frontier.pop()
        try:
            own = coord_map(top.fn)
        except UndefinedMapException:
            continue  # the walk stops at a layer with no map
        for bottom in _mappable_bottoms(top):
            if bottom not in maps:
                maps[bottom] = compose(maps[top], own)
                frontier.append(bottom)
    return maps


def coord_map_from_to(top_from: Top, top_to: Top) -> CoordMap:
    """The map from ``top_from``'s coordinates to ``top_to``'s, through the nearest
    top both are computed from."""
    from_maps = _ancestor_maps(top_from)
    to_maps: dict[Top, CoordMap] = {top_to: IDENTITY}
    frontier = [top_to]
    while frontier:  # breadth first: the first common top found is the nearest
        top = frontier.pop(0)
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        try:
            own = coord_map(top.fn)
        except UndefinedMapException:
            continue
        for bottom in _mappable_bottoms(top):
            if bottom not in to_maps:
                to_maps[bottom] = compose(to_maps[top], own)
                frontier.append(bottom)
    raise BpinspectError("coord_map: the two tops have no common top through spatial "
                         "layers (convolution, pooling, pointwise, crop)")


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer that cuts ``top_from`` to ``top_to``'s extent, aligned: its axis and
    offsets from the map between them, which must be a whole, non-negative shift."""
    axis, scale, shift = coord_map_from_to(top_from, top_to)
    scale, shift = np.array(scale, ndmin=1), np.array(shift, ndmin=1)
    if not (scale == 1).all():
        raise BpinspectError(f"crop: the tops differ in scale ({scale.tolist()}): "
                             "only a shift can be cropped")
    if not (shift <= 0).all():
        raise BpinspectError(f"crop: negative offset {(-shift).tolist()}: top_from starts "
                             "inside top_to, there is nothing to cut")
    if not (np.round(shift) == shift).all():
        raise BpinspectError(f"crop: offset {(-shift).tolist()} is not whole")
    if axis is None:
        axis = 1  # only pointwise layers between them: crop every spatial axis, by 0
    return L.Crop(top_from, top_to,
                  crop_param=dict(axis=int(axis) + 1,  # + 1: the first cropped axis
                                  offset=[int(v) for v in -np.round(shift)]))
