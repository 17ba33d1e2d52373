"""Numerical gradient checks by central differences, as Caffe's GradientChecker
(include/caffe/test/test_gradient_check_util.hpp) does them.

The objective is a fixed random projection of the layer's tops,
``L = sum_i <top_i, R_i>``, so its analytic gradient is the layer's backward
with ``top_i.diff = R_i``; each checked coordinate ``x`` of a bottom or a
param is compared with ``(L(x + eps) - L(x - eps)) / (2 eps)``. A coordinate
passes when ``|analytic - numeric| <= threshold * max(|analytic|,
|numeric|, 1)``, Caffe's rule. Run it in float64: then eps = 1e-6 and a
threshold of 1e-6 leave room only for real mistakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpinspect.backend import Array, get_array_module, to_host
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer

Coord = tuple[int, ...]


def numerical_gradient(
    objective: Callable[[], float], x: Array, coords: Sequence[Coord], eps: float
) -> np.ndarray:
    """Central differences of ``objective()`` w.r.t. ``x[c]`` for each coord.

    ``x`` is perturbed in place and restored, so ``objective`` must read it.
    """
    grads = np.empty(len(coords))
    for n, c in enumerate(coords):
        saved = x[c].copy()
        x[c] = saved + eps
        plus = objective()
        x[c] = saved - eps
        minus = objective()
        x[c] = saved
        grads[n] = (plus - minus) / (2 * eps)
    return grads


def sample_coords(shape: tuple[int, ...], max_coords: int | None, seed: int) -> list[Coord]:
    """Every coordinate, or ``max_coords`` of them drawn without replacement."""
    size = int(np.prod(shape, dtype=np.int64))
    if max_coords is None or size <= max_coords:
        flat = np.arange(size)
    else:
        flat = np.sort(np.random.default_rng(seed).choice(size, max_coords, replace=False))
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


@dataclass
class GradCheck:
    """The outcome for one bottom or param of a layer."""

    what: str  # "bottom[0]" or "param[1]"
    checked: int
    max_abs_error: float
    max_rel_error: float  # |a - n| / max(|a|, |n|, 1), the quantity Caffe bounds
    worst: Coord | None
    analytic_at_worst: float
    numeric_at_worst: float
    threshold: float
    coords: tuple[Coord, ...] = ()  # every checked coordinate, in the order checked
    analytic: tuple[float, ...] = ()  # per coordinate: backward's value
    numeric: tuple[float, ...] = ()  # per coordinate: the central difference
    rel_errors: tuple[float, ...] = ()  # per coordinate: Caffe's quantity

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.threshold

    def coord_passed(self, k: int) -> bool:
        """Whether the ``k``-th checked coordinate is within the threshold."""
        return self.rel_errors[k] <= self.threshold


def check_layer(
    layer: Layer,
    bottoms: Sequence[Array],
    params: Sequence[Array] | None = None,
    *,
    propagate_down: Sequence[bool] | None = None,
    check_params: bool = True,
    eps: float = 1e-6,
    threshold: float = 1e-6,
    seed: int = 0,
    max_coords: int | None = None,
    skip: Callable[[str, Coord], bool] | None = None,
) -> list[GradCheck]:
    """Check ``layer``'s backward against its forward, numerically.

    ``layer`` is a fresh instance (not yet set up); ``bottoms`` are arrays of
    the dtype to check in (use float64). ``params`` default to seeded
    Gaussian values of the layer's ``param_shapes``. ``skip(what, coord)``
    excludes coordinates at a kink (ReLU at 0, tied maxima), as Caffe's
    ``kink``/``kink_range`` do.
    """
    # CuPy when any bottom or param is (a layer without bottoms, Parameter: its params').
    xp = get_array_module(*bottoms, *(params if params is not None else ()))
    bottom_blobs = [_blob(f"bottom{i}", b, xp) for i, b in enumerate(bottoms)]
    top_shapes = layer.setup([b.shape for b in bottom_blobs])
    dtype = bottoms[0].dtype if bottoms else np.float64
    top_blobs = [Blob(f"top{i}", s, xp, dtype) for i, s in enumerate(top_shapes)]

    gen = np.random.default_rng(seed)
    if params is None:
        params = [gen.standard_normal(s) for s in layer.param_shapes]
    layer.blobs = [_blob(f"param{i}", p, xp, dtype) for i, p in enumerate(params)]
    layer.param_propagate_down = [check_params] * len(layer.blobs)

    projections = [xp.asarray(gen.standard_normal(s), dtype=dtype) for s in top_shapes]

    def objective() -> float:
        layer.reset_rng(seed)
        layer.forward(bottom_blobs, top_blobs)
        return float(sum(float(to_host((t.data * r).sum()))
                         for t, r in zip(top_blobs, projections, strict=True)))

    # The analytic gradient: one forward, then backward from the projection.
    objective()
    for t, r in zip(top_blobs, projections, strict=True):
        t.diff = r.copy()
    down = list(propagate_down) if propagate_down is not None else [True] * len(bottom_blobs)
    for b, d in zip(bottom_blobs, down, strict=True):
        if d:
            b.diff = xp.full(b.shape, np.nan, dtype=dtype)  # a layer must assign, not add
    for p in layer.blobs:
        p.diff = xp.zeros(p.shape, dtype=dtype)
    layer.backward(top_blobs, down, bottom_blobs)

    targets: list[tuple[str, Blob]] = [
        (f"bottom[{i}]", b) for i, (b, d) in enumerate(zip(bottom_blobs, down, strict=True)) if d
    ]
    if check_params:
        targets += [(f"param[{i}]", p) for i, p in enumerate(layer.blobs)]

    results = []
    for n, (what, blob) in enumerate(targets):
        analytic_full = to_host(blob.diff).copy()
        coords = sample_coords(blob.shape, max_coords, seed + n)
        if skip is not None:
            coords = [c for c in coords if not skip(what, c)]
        numeric = numerical_gradient(objective, blob.data, coords, eps)
        analytic = np.array([analytic_full[c] for c in coords], dtype=np.float64)
        results.append(_summarize(what, coords, analytic, numeric, threshold))
    return results


def _blob(name: str, values: Any, xp: Any, dtype: Any = None) -> Blob:
    values = xp.asarray(values, dtype=dtype)
    blob = Blob(name, tuple(values.shape), xp, values.dtype)
    blob.data = values.copy()
    return blob


def _summarize(
    what: str, coords: list[Coord], analytic: np.ndarray, numeric: np.ndarray, threshold: float
) -> GradCheck:
    if not coords:
        return GradCheck(what, 0, 0.0, 0.0, None, 0.0, 0.0, threshold)
    abs_err = np.abs(analytic - numeric)
    abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)
    rel_err = abs_err / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1.0)
    rel_err = np.where(np.isnan(rel_err), np.inf, rel_err)
    k = int(np.argmax(rel_err))
    return GradCheck(
        what, len(coords), float(abs_err.max()), float(rel_err[k]), coords[k],
        float(analytic[k]), float(numeric[k]), threshold, tuple(coords),
        tuple(float(a) for a in analytic), tuple(float(n) for n in numeric),
        tuple(float(e) for e in rel_err),
    )
