"""``bpinspect check``: every layer of a net, gradient-checked at its real shapes.

The net runs forward in its own dtype; just before layer ``i`` runs, its
bottoms and params are copied to float64 and a fresh instance of the layer
(same LayerParameter, same phase) is checked on them, as
``gradcheck.check_layer`` does, with two differences that real data needs:

- the objective's difference is taken on the tops, ``<top(x+h) - top(x-h), R>``,
  not between two large sums, so rounding does not swamp it;
- half the sampled coordinates are where the analytic gradient is not zero
  (else a max pooling's routing would go unchecked among its zeros);
- a coordinate at a kink is left out, found the way a person would: the
  one-sided slopes ``(L(x+h) - L(x)) / h`` and ``(L(x) - L(x-h)) / h``
  disagree (ReLU at 0, a max-pooling window of tied zeros, ...). Caffe's
  checker does this for ReLU only, with ``kink``/``kink_range``.

The step is ``h = eps * max(1, |x|)``. A ``cancel`` callable is asked before
each sampled coordinate (the TUI's escape): a big layer's check stops within
two forwards of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.session.gradcheck import GradCheck, _summarize, sample_coords

DEFAULT_EPS = 1e-6
DEFAULT_THRESHOLD = 1e-4
KINK_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LayerCheck:
    layer: str
    type: str
    results: list[GradCheck] = field(default_factory=list)
    kinks: int = 0  # coordinates left out at a kink
    note: str = ""  # why nothing was checked
    cancelled: bool = False  # stopped by ``cancel``: ``results`` hold what was checked

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.results), default=0.0)

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.results)


def check_net(
    net: Any,
    *,
    max_coords: int = 8,
    eps: float = DEFAULT_EPS,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    progress: Callable[[int, int, LayerCheck], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[LayerCheck]:
    """A LayerCheck per layer of ``net`` (a forward pass runs to supply the inputs)."""
    out = []
    n = len(net.layers)
    for i, layer in enumerate(net.layers):
        if cancel is not None and cancel():
            break
        result = check_layer_in_net(net, i, max_coords=max_coords, eps=eps,
                                    threshold=threshold, seed=seed + i, cancel=cancel)
        if result.cancelled:
            break
        layer.reset_rng(net.seed + 1 + i)
        net.forward_layer(i)
        out.append(result)
        if progress is not None:
            progress(i + 1, n, result)
    return out


def check_layer_in_net(net: Any, i: int, *, max_coords: int = 8, eps: float = DEFAULT_EPS,
                       threshold: float = DEFAULT_THRESHOLD, seed: int = 0,
                       cancel: Callable[[], bool] | None = None) -> LayerCheck:
    """Check layer ``i`` on the net's current bottoms and params, in float64; when
    ``cancel()`` turns true, what was checked so far, marked ``cancelled``."""
    layer = net.layers[i]
    name = net.layer_names[i]
    xp = net.device.xp
    f64 = np.float64
    bottoms = [_copy(f"bottom{j}", b.data, xp) for j, b in enumerate(net.bottom_blobs(i))]
    down = [layer.has_gradient(j) for j in range(len(bottoms))]
    params = [_copy(f"param{j}", p.data, xp) for j, p in enumerate(layer.blobs)]
    if not any(down) and not params:
        note = "no bottoms or params" if not bottoms else "no gradient flows through it"
        return LayerCheck(name, layer.type, note=note)

    fresh = type(layer)(layer.param, layer.phase)
    top_shapes = fresh.setup([b.shape for b in bottoms])
    fresh.blobs = params
    fresh.param_propagate_down = [True] * len(params)
    tops = [Blob(f"top{j}", tuple(s), xp, f64) for j, s in enumerate(top_shapes)]
    projections: list[Any] = []

    def forward() -> list[Any]:
        fresh.reset_rng(seed)
        fresh.forward(bottoms, tops)
        return [t.data.copy() for t in tops]

    def project(a: list[Any], b: list[Any]) -> float:
        triples = zip(a, b, projections, strict=True)
        return float(sum(float(((x - y) * r).sum()) for x, y, r in triples))

    base = forward()
    # Drawn for the tops the forward made: a Filter's are smaller than its setup said.
    gen = np.random.default_rng(seed)
    projections += [xp.asarray(gen.standard_normal(tuple(t.shape))) for t in base]
    for t, r in zip(tops, projections, strict=True):
        t.diff = r.copy()
    for b, d in zip(bottoms, down, strict=True):
        if d:
            b.diff = xp.full(b.shape, np.nan, dtype=f64)
    for p in params:
        p.diff = xp.zeros(p.shape, dtype=f64)
    fresh.backward(tops, list(down), bottoms)

    targets = [(f"bottom[{j}]", b) for j, b in enumerate(bottoms) if down[j]]
    targets += [(f"param[{j}]", p) for j, p in enumerate(params)]
    results = []
    kinks = 0
    cancelled = False
    for k, (what, blob) in enumerate(targets):
        analytic_all = to_host(blob.diff)
        kept, analytic, numeric = [], [], []
        for c in _coords(analytic_all, max_coords, seed + k):
            if cancel is not None and cancel():
                cancelled = True
                break
            x = blob.data
            saved = float(x[c])
            h = eps * max(1.0, abs(saved))
            x[c] = saved + h
            plus = forward()
            x[c] = saved - h
            minus = forward()
            x[c] = saved
            up = project(plus, base) / h
            down_slope = project(base, minus) / h
            if abs(up - down_slope) > KINK_TOLERANCE * max(1.0, abs(up), abs(down_slope)):
                kinks += 1
                continue
            kept.append(c)
            analytic.append(float(analytic_all[c]))
            numeric.append((up + down_slope) / 2)
        if kept or not cancelled:
            results.append(_summarize(what, kept, np.array(analytic, f64),
                                      np.array(numeric, f64), threshold))
        if cancelled:
            break
    return LayerCheck(name, layer.type, results, kinks, cancelled=cancelled)


def _coords(analytic: np.ndarray, max_coords: int, seed: int) -> list[tuple[int, ...]]:
    """Half the coordinates where the analytic gradient is not zero, half anywhere:
    a max pooling's or ReLU's gradient is mostly zeros, and a check of zeros alone
    would not see its routing."""
    nonzero = np.flatnonzero(analytic)
    if nonzero.size == 0 or analytic.size <= max_coords:
        return sample_coords(analytic.shape, max_coords, seed)
    gen = np.random.default_rng(seed)
    picked = gen.choice(nonzero, min(max_coords // 2, nonzero.size), replace=False)
    rest = [np.ravel_multi_index(c, analytic.shape)
            for c in sample_coords(analytic.shape, max_coords - len(picked), seed + 1)]
    flat = np.unique(np.concatenate([picked, np.asarray(rest, dtype=np.int64)]))
    return [tuple(int(i) for i in np.unravel_index(f, analytic.shape)) for f in flat]


def _copy(name: str, a: Any, xp: Any) -> Blob:
    data = xp.asarray(a, dtype=np.float64).copy()
    blob = Blob(name, tuple(int(d) for d in data.shape), xp, np.float64)
    blob.data = data
    return blob
