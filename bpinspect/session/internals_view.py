"""Views of the state layers keep for their backward, as small host data.

Every view reads the very arrays the layer's ``internals()`` returns (the LRN
``scale`` cache, the pooling ``argmax`` mask, the dropout ``mask``, the
softmax ``prob``), reduces them on the device, and returns only a plane or a
few numbers: nothing here recomputes what the layer computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module, to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.stats import BlobStats, compute_stats


@dataclass(frozen=True)
class LRNView:
    layer: str
    shape: tuple[int, ...]  # of the scale cache (= bottom shape)
    n: int
    c: int
    plane: np.ndarray  # (H, W) scale[n, c]
    plane_stats: BlobStats
    stats: BlobStats  # of the whole scale cache
    channel_mean: np.ndarray  # (C,) mean of scale[n, c] over H, W
    local_size: int
    alpha: float
    beta: float
    k: float
    region: str  # "ACROSS_CHANNELS" | "WITHIN_CHANNEL"


@dataclass(frozen=True)
class PoolingView:
    layer: str
    method: str  # "MAX" | "AVE" | "STOCHASTIC"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    bottom_shape: tuple[int, ...]
    top_shape: tuple[int, ...]
    n: int
    c: int
    wins: np.ndarray | None  # (H, W) int64: how many windows chose each input; None for AVE
    never_won: float  # fraction of input positions of the plane that won no window
    max_wins: int


@dataclass(frozen=True)
class PoolCell:
    n: int
    c: int
    y: int
    x: int
    window: tuple[int, int, int, int]  # (h0, h1, w0, w1), half-open, clipped to the input
    winner: tuple[int, int] | None  # (y, x) in the input plane; None for AVE
    value: float  # top data at the cell
    top_diff: float | None  # top diff at the cell, when backward has reached it


@dataclass(frozen=True)
class SliceInfo:
    blob: str
    start: int
    end: int
    shape: tuple[int, ...]
    data_stats: BlobStats | None  # of that slice of the whole blob's data
    diff_stats: BlobStats | None  # of that slice of the whole blob's diff


@dataclass(frozen=True)
class ConcatView:
    layer: str
    type: str  # "Concat" | "Slice"
    axis: int
    whole: str  # the Concat top, or the Slice bottom
    slices: list[SliceInfo]


@dataclass(frozen=True)
class SplitView:
    layer: str
    bottom: str
    contributions: list[tuple[str, BlobStats | None]]  # each top's diff
    sum_stats: BlobStats | None  # of the sum of the tops' diffs
    bottom_diff_stats: BlobStats | None
    max_abs_mismatch: float | None  # max |bottom diff - sum of top diffs|


@dataclass(frozen=True)
class DropoutView:
    layer: str
    phase: str
    ratio: float
    scale: float
    kept_fraction: float | None  # None in TEST (no mask: identity)
    plane: np.ndarray | None  # mask of item n as (C, H*W) or (1, C)
    n: int


@dataclass(frozen=True)
class SoftmaxView:
    layer: str
    top: list[list[tuple[int, float]]]  # per batch item: (class, prob), most probable first


def _internal(layer: Any, name: str) -> Array | None:
    return layer.internals().get(name)


def _pair(values: Any, h: int, w: int, default: int, *single: Any) -> tuple[int, int]:
    if h or w:
        return int(h), int(w)
    vals = list(values) if values is not None else []
    if len(vals) >= 2:
        return int(vals[0]), int(vals[1])
    if len(vals) == 1:
        return int(vals[0]), int(vals[0])
    for s in single:
        if s:
            return int(s), int(s)
    return default, default


def _pooling_geometry(layer: Any, bottom_shape: tuple[int, ...]) -> tuple[
        str, tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Kernel, stride, pad as the layer holds them (else read from pooling_param)."""
    p = layer.param.pooling_param
    method = p.PoolMethod.Name(p.pool)
    attrs = [getattr(layer, a, None) for a in ("kh", "kw", "sh", "sw", "ph", "pw")]
    if all(isinstance(a, int) for a in attrs):  # as the layer set them up
        kh, kw, sh, sw, ph, pw = (int(a) for a in attrs)
        return method, (kh, kw), (sh, sw), (ph, pw)
    if p.global_pooling:
        return method, (bottom_shape[2], bottom_shape[3]), (1, 1), (0, 0)
    kernel = _pair(None, p.kernel_h, p.kernel_w, 0, p.kernel_size)
    stride = _pair(None, p.stride_h, p.stride_w, 1, p.stride)
    pad = _pair(None, p.pad_h, p.pad_w, 0, p.pad)
    return method, kernel, stride, pad


def lrn_view(layer: Any, n: int, c: int) -> LRNView:
    scale = _internal(layer, "scale")
    if scale is None:
        raise BpinspectError(f"layer {layer.name!r}: no LRN scale cache (it has not run forward)")
    shape = tuple(int(d) for d in scale.shape)
    _check_index(layer.name, "item", n, shape[0])
    _check_index(layer.name, "channel", c, shape[1])
    xp = get_array_module(scale)
    p = layer.param.lrn_param
    plane = scale[n, c]
    return LRNView(
        layer=layer.name,
        shape=shape,
        n=n,
        c=c,
        plane=to_host(plane).astype(np.float64),
        plane_stats=compute_stats(plane),
        stats=compute_stats(scale),
        channel_mean=to_host(xp.mean(scale[n].reshape(shape[1], -1), axis=1, dtype=xp.float64)),
        local_size=int(p.local_size),
        alpha=float(p.alpha),
        beta=float(p.beta),
        k=float(p.k),
        region=p.NormRegion.Name(p.norm_region),
    )


def pooling_view(layer: Any, bottom_shape: tuple[int, ...], n: int, c: int) -> PoolingView:
    method, kernel, stride, pad = _pooling_geometry(layer, bottom_shape)
    _check_index(layer.name, "item", n, bottom_shape[0])
    _check_index(layer.name, "channel", c, bottom_shape[1])
    argmax = _internal(layer, "argmax")
    h, w = bottom_shape[2], bottom_shape[3]
    top_shape: tuple[int, ...] = ()
    wins = None
    never_won = 0.0
    max_wins = 0
    if argmax is not None:
        top_shape = tuple(int(d) for d in argmax.shape)
        xp = get_array_module(argmax)
        idx = argmax[n, c].ravel().astype(xp.int64)
        idx = idx[idx >= 0]  # -1: a window where nothing beat -FLT_MAX (NaN, -inf)
        counts = xp.bincount(idx, minlength=h * w)[: h * w]
        wins = to_host(counts).reshape(h, w).astype(np.int64)
        never_won = float((wins == 0).mean())
        max_wins = int(wins.max())
    return PoolingView(layer.name, method, kernel, stride, pad, tuple(bottom_shape), top_shape,
                       n, c, wins, never_won, max_wins)


def pooling_cell(layer: Any, bottom_shape: tuple[int, ...], top_data: Array,
                 top_diff: Array | None, n: int, c: int, y: int, x: int) -> PoolCell:
    """The input window of output cell (n, c, y, x) and, for MAX, its winner."""
    method, (kh, kw), (sh, sw), (ph, pw) = _pooling_geometry(layer, bottom_shape)
    shape = tuple(int(d) for d in top_data.shape)
    for what, v, size in (("item", n, shape[0]), ("channel", c, shape[1]),
                          ("row", y, shape[2]), ("column", x, shape[3])):
        _check_index(layer.name, what, v, size)
    h, w = bottom_shape[2], bottom_shape[3]
    h0, w0 = y * sh - ph, x * sw - pw
    h1, w1 = min(h0 + kh, h), min(w0 + kw, w)
    h0, w0 = max(h0, 0), max(w0, 0)
    winner = None
    argmax = _internal(layer, "argmax")
    if argmax is not None:
        flat = int(argmax[n, c, y, x])
        winner = (flat // w, flat % w) if flat >= 0 else None
    diff = None if top_diff is None else float(top_diff[n, c, y, x])
    return PoolCell(n, c, y, x, (h0, h1, w0, w1), winner, float(top_data[n, c, y, x]), diff)


def _concat_axis(layer: Any) -> int:
    if layer.type == "Concat":
        p = layer.param.concat_param
        return int(p.concat_dim) if p.HasField("concat_dim") and not p.HasField("axis") else int(
            p.axis)
    p = layer.param.slice_param
    return int(p.slice_dim) if p.HasField("slice_dim") and not p.HasField("axis") else int(p.axis)


def concat_view(layer_name: str, layer: Any, whole: str, parts: list[str],
                shapes: list[tuple[int, ...]], data: Array | None,
                diff: Array | None) -> ConcatView:
    """Each bottom of a Concat (top of a Slice): its slice of the whole blob."""
    axis = _concat_axis(layer)
    ndim = len(shapes[0])
    if axis < 0:
        axis += ndim
    offsets = _internal(layer, "offsets")
    if offsets is not None:
        starts = [int(o) for o in to_host(offsets)][: len(parts)]
    else:
        starts = list(np.cumsum([0] + [s[axis] for s in shapes[:-1]]))
    slices = []
    for blob, shape, start in zip(parts, shapes, starts, strict=True):
        end = int(start) + shape[axis]
        index = (slice(None),) * axis + (slice(int(start), end),)
        slices.append(SliceInfo(
            blob, int(start), end, shape,
            None if data is None else compute_stats(data[index]),
            None if diff is None else compute_stats(diff[index]),
        ))
    return ConcatView(layer_name, layer.type, axis, whole, slices)


def split_view(layer_name: str, bottom: str, top_diffs: list[tuple[str, Array | None]],
               bottom_diff: Array | None) -> SplitView:
    """A blob used twice: each consumer's gradient, their sum, and the bottom diff."""
    contributions = [(t, None if d is None else compute_stats(d)) for t, d in top_diffs]
    present = [d for _, d in top_diffs if d is not None]
    total = None
    if present:
        total = present[0].astype(present[0].dtype, copy=True)
        for d in present[1:]:
            total += d
    mismatch = None
    if total is not None and bottom_diff is not None and len(present) == len(top_diffs):
        xp = get_array_module(total)
        mismatch = float(xp.abs(bottom_diff - total).max()) if total.size else 0.0
    return SplitView(
        layer_name, bottom, contributions,
        None if total is None else compute_stats(total),
        None if bottom_diff is None else compute_stats(bottom_diff),
        mismatch,
    )


def dropout_view(layer: Any, n: int) -> DropoutView:
    ratio = float(layer.param.dropout_param.dropout_ratio)
    scale = 1.0 / (1.0 - ratio) if ratio < 1 else float("inf")
    mask = _internal(layer, "mask")
    if mask is None or layer.phase != "train":
        return DropoutView(layer.name, layer.phase, ratio, scale, None, None, n)
    _check_index(layer.name, "item", n, int(mask.shape[0]))
    xp = get_array_module(mask)
    kept = float(xp.count_nonzero(mask)) / max(int(mask.size), 1)
    item = mask[n]
    plane = item.reshape(1, -1) if item.ndim <= 1 else item.reshape(item.shape[0], -1)
    return DropoutView(layer.name, layer.phase, ratio, scale, kept,
                       to_host(plane).astype(np.float32), n)


def softmax_view(layer_name: str, layer: Any, top: Array | None, k: int) -> SoftmaxView:
    """The ``k`` most probable classes of each item (SoftmaxWithLoss keeps ``prob``;
    a Softmax layer's top is its probabilities)."""
    prob = _internal(layer, "prob")
    if prob is None:
        prob = top
    if prob is None:
        raise BpinspectError(f"layer {layer_name!r}: no probabilities yet")
    xp = get_array_module(prob)
    if prob.ndim < 2:
        raise BpinspectError(f"layer {layer_name!r}: prob has shape {tuple(prob.shape)}")
    p = prob.reshape(prob.shape[0], prob.shape[1], -1)[:, :, 0]  # first spatial position
    k = min(k, int(p.shape[1]))
    order = to_host(xp.argsort(-p, axis=1)[:, :k])
    values = to_host(p)
    return SoftmaxView(layer_name, [
        [(int(cls), float(values[i, cls])) for cls in order[i]] for i in range(order.shape[0])
    ])


# What each recurrent state is, and the asymptotes where it passes little gradient.
RECURRENT_STATES: dict[str, tuple[str, tuple[float, float] | None]] = {
    "i": ("input gate, sigmoid", (0.0, 1.0)),
    "f": ("forget gate, sigmoid (before cont)", (0.0, 1.0)),
    "o": ("output gate, sigmoid", (0.0, 1.0)),
    "g": ("cell input, tanh", (-1.0, 1.0)),
    "c": ("cell state", None),
    "h": ("hidden state", None),
}
RNN_STATES: dict[str, tuple[str, tuple[float, float] | None]] = {
    "h": ("hidden state, tanh", (-1.0, 1.0)),
    "o": ("output, tanh", (-1.0, 1.0)),
}
SATURATION_MARGIN = 0.01  # as session.units: within 1% of an asymptote


@dataclass(frozen=True)
class RecurrentView:
    """One item's gates or states of an LSTM, RNN or LSTMUnit over its time steps."""

    layer: str
    type: str  # "LSTM" | "RNN" | "LSTMUnit"
    names: tuple[str, ...]  # the gates / states, in the layer's order
    descriptions: tuple[str, ...]
    shape: tuple[int, int, int]  # (T, N, H) of each
    n: int
    index: int  # the one shown: names[index]
    plane: np.ndarray  # (T, H): names[index] of item n, time down, units across
    stats: BlobStats  # of names[index] over every step and item
    time_mean: dict[str, np.ndarray]  # per name: (T,) mean over the units of item n
    saturated: dict[str, float]  # per bounded name: fraction of all values saturated
    resets: tuple[int, ...]  # time steps where item n's cont is 0 (a new sequence starts)


def recurrent_view(layer: Any, n: int, index: int, cont: Array | None) -> RecurrentView:
    """The gates (LSTM, LSTMUnit: i, f, o, g; LSTM also c, h) or states (RNN: h, o) the
    layer's forward kept for its backward; ``cont`` (T, N) marks the sequence starts."""
    kept = layer.internals() if hasattr(layer, "internals") else {}
    table = RNN_STATES if layer.type == "RNN" else RECURRENT_STATES
    names = tuple(name for name in table if name in kept)
    if not names:
        raise BpinspectError(f"layer {layer.name!r}: no gates kept (it has not run forward)")
    first = kept[names[0]]
    shape = tuple(int(d) for d in first.shape)
    if len(shape) != 3:
        raise BpinspectError(f"layer {layer.name!r}: gates of shape {shape}, not (T, N, H)")
    # The plane views share one item and channel: keep both within this layer's.
    n, index = min(max(n, 0), shape[1] - 1), min(max(index, 0), len(names) - 1)
    xp = get_array_module(first)
    time_mean, saturated = {}, {}
    for name in names:
        values = kept[name]
        time_mean[name] = to_host(xp.mean(values[:, n], axis=1, dtype=xp.float64))
        bounds = table[name][1]
        if bounds is not None:
            low, high = bounds
            span = (high - low) * SATURATION_MARGIN
            near = (values < low + span) | (values > high - span)
            saturated[name] = float(xp.count_nonzero(near)) / max(int(values.size), 1)
    resets: tuple[int, ...] = ()
    if cont is not None and tuple(cont.shape[:2]) == shape[:2]:
        resets = tuple(int(t) for t in np.flatnonzero(to_host(cont[:, n]) == 0))
    shown = kept[names[index]]
    return RecurrentView(
        layer=layer.name, type=layer.type, names=names,
        descriptions=tuple(table[name][0] for name in names), shape=shape,  # type: ignore[arg-type]
        n=n, index=index, plane=to_host(shown[:, n]).astype(np.float64),
        stats=compute_stats(shown), time_mean=time_mean, saturated=saturated, resets=resets)


def _check_index(layer: str, what: str, value: int, size: int) -> None:
    if not 0 <= value < size:
        raise BpinspectError(f"layer {layer!r}: {what} {value} is outside 0..{size - 1}")
