"""Dead and saturated units: the activations that pass no gradient.

A *unit* is one index on a top's axis 1 (the channel of a convolution's output
``(N, C, H, W)``, the neuron of an InnerProduct's ``(N, K)``); its values are
every item of the batch and, for a convolution, every position.

- **dead** (ReLU tops): a unit is dead when it is zero for every item of the batch
  (and every position): its values are all ``<= 0``, which for a plain ReLU is all
  exactly 0 (for a leaky ReLU, ``negative_slope > 0``, the unit never fires
  positive, though its slope still passes a gradient). ``frac_values`` is the
  fraction of the top's values that are ``<= 0``.
- **saturated** (Sigmoid and TanH tops): a value is saturated when it is within 1%
  of an asymptote: sigmoid ``y < 0.01`` or ``y > 0.99``; tanh ``y < -0.99`` or
  ``y > 0.99`` (where the derivative, ``y (1 - y)`` or ``1 - y^2``, is below 0.0099
  or 0.0199, 4% and 2% of its peak). A unit is saturated when every one of its values is,
  at either asymptote. ``frac_values`` is the fraction of saturated values, and
  ``frac_low`` / ``frac_high`` split it by asymptote.

Each top is read right after its layer's forward step (before an in-place layer
after it, such as Dropout, changes it). The reductions run with the array's own
module (CuPy on the GPU); only a few integers cross to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bpinspect.backend import Array, get_array_module, to_host
from bpinspect.errors import BpinspectError

if TYPE_CHECKING:
    from bpinspect.session.session import Session

__all__ = [
    "DEAD",
    "SATURATED",
    "UNIT_LAYER_TYPES",
    "SATURATION_MARGIN",
    "UnitRow",
    "UnitTracker",
    "dead_fraction",
    "session_units",
    "unit_row",
    "unit_stats",
]

DEAD = "dead"
SATURATED = "saturated"
SATURATION_MARGIN = 0.01  # within 1% of an asymptote
# layer type -> (what is measured, low asymptote, high asymptote)
UNIT_LAYER_TYPES: dict[str, tuple[str, float, float]] = {
    "ReLU": (DEAD, 0.0, float("inf")),
    "Sigmoid": (SATURATED, 0.0, 1.0),
    "TanH": (SATURATED, -1.0, 1.0),
}


@dataclass(frozen=True)
class UnitRow:
    """One activation layer's top: how many of its units are dead (or saturated)."""

    layer: str
    type: str  # "ReLU" | "Sigmoid" | "TanH"
    blob: str
    kind: str  # DEAD | SATURATED
    shape: tuple[int, ...]
    units: int  # size of axis 1 (1 for a top with fewer than two axes)
    flagged: int  # units dead (ReLU) or saturated (Sigmoid, TanH) for every value
    frac_values: float  # fraction of the values that are zero (dead) / saturated
    frac_low: float  # saturated: fraction of values near the low asymptote (dead: = frac_values)
    frac_high: float  # saturated: near the high one (dead: 0)
    step: int | None = None  # the forward step the values are from
    available: bool = True  # False: the values were not there (not run, or dropped)
    note: str = ""

    @property
    def frac_units(self) -> float:
        """The fraction of units dead / saturated (0 for an empty top)."""
        return self.flagged / self.units if self.units else 0.0


def unit_stats(a: Array, kind: str, low: float = 0.0, high: float = 1.0) -> tuple[int, int, float,
                                                                                 float, float]:
    """``(units, flagged, frac_values, frac_low, frac_high)`` of an activation ``a``.

    ``kind`` DEAD: a value is flagged when ``<= 0``. SATURATED: when it is below
    ``low + SATURATION_MARGIN`` or above ``high - SATURATION_MARGIN``. A unit (index on
    axis 1) is flagged when all its values are.
    """
    xp = get_array_module(a)
    if a.ndim >= 2:
        x = xp.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
    else:
        x = a.reshape(1, -1)
    units, per_unit = int(x.shape[0]), int(x.shape[1])
    if x.size == 0:
        return units, 0, 0.0, 0.0, 0.0
    if kind == DEAD:
        lo_mask = x <= 0
        hi_mask = None
    elif kind == SATURATED:
        lo_mask = x < low + SATURATION_MARGIN
        hi_mask = x > high - SATURATION_MARGIN
    else:
        raise ValueError(f"kind {kind!r}: expected {DEAD!r} or {SATURATED!r}")
    flagged_values = lo_mask if hi_mask is None else lo_mask | hi_mask
    counts = [xp.count_nonzero(flagged_values.all(axis=1)), xp.count_nonzero(lo_mask),
              xp.count_nonzero(hi_mask) if hi_mask is not None else xp.zeros((), xp.int64)]
    flagged, n_low, n_high = (int(v) for v in to_host(xp.stack(counts)))
    total = units * per_unit
    return units, flagged, (n_low + n_high) / total, n_low / total, n_high / total


def unit_row(layer: str, layer_type: str, blob: str, a: Array, step: int | None = None) -> UnitRow:
    """The :class:`UnitRow` of an activation layer's top ``a``."""
    try:
        kind, low, high = UNIT_LAYER_TYPES[layer_type]
    except KeyError:
        raise BpinspectError(f"layer {layer!r} ({layer_type}): dead and saturated units are "
                             f"measured on {', '.join(UNIT_LAYER_TYPES)} tops") from None
    units, flagged, frac, frac_low, frac_high = unit_stats(a, kind, low, high)
    return UnitRow(layer, layer_type, blob, kind, tuple(int(d) for d in a.shape), units,
                   flagged, frac, frac_low, frac_high, step)


def session_units(session: Session, step: int | None = None) -> list[UnitRow]:
    """A row for every ReLU, Sigmoid and TanH layer of the session's net, in forward
    order, over the whole depth of the net: its top right after its forward step,
    as of ``step`` (None: the current step). A layer whose forward has not run by
    then, or whose value the history dropped, has ``available`` False and a note."""
    net = session.net
    last = session.cursor - 1 if step is None else step
    rows = []
    for name, layer in zip(net.layer_names, net.layers, strict=True):
        if layer.type not in UNIT_LAYER_TYPES:
            continue
        kind = UNIT_LAYER_TYPES[layer.type][0]
        top = net.top_names[name][0]
        fwd = session.step_of(name, "forward").index
        shape = tuple(int(d) for d in net.blobs[top].shape)
        if fwd > last:
            rows.append(_unavailable(name, layer.type, top, kind, shape, fwd, "not run yet"))
            continue
        try:
            a = session.array(top, "data", step=fwd)
        except BpinspectError as exc:  # dropped from the history (memory budget)
            rows.append(_unavailable(name, layer.type, top, kind, shape, fwd, str(exc)))
            continue
        if a is None:
            rows.append(_unavailable(name, layer.type, top, kind, shape, fwd, "not run yet"))
            continue
        rows.append(unit_row(name, layer.type, top, a, step=fwd))
    return rows


def _unavailable(layer: str, layer_type: str, blob: str, kind: str, shape: tuple[int, ...],
                 step: int, note: str) -> UnitRow:
    units = shape[1] if len(shape) >= 2 else 1
    return UnitRow(layer, layer_type, blob, kind, shape, units, 0, 0.0, 0.0, 0.0, step,
                   available=False, note=note)


def dead_fraction(net: Any) -> dict[str, float]:
    """Per ReLU layer of ``net``, the fraction of dead units of its top as it is now
    (after a forward pass; an in-place layer after it may have changed it): a
    per-iteration summary for training."""
    out = {}
    for name, layer in zip(net.layer_names, net.layers, strict=True):
        if layer.type == "ReLU":
            top = net.top_names[name][0]
            out[name] = unit_row(name, layer.type, top, net.blobs[top].data).frac_units
    return out


class UnitTracker:
    """Dead and saturated units over iterations (or passes), without a hook in the session.

    Once attached (:meth:`attach`), every forward of a ReLU, Sigmoid or TanH layer of ``net``
    (a session's step, a solver's pass) records that layer's :class:`UnitRow`, taken
    right after it ran, under the key ``key()`` returns then: for a TrainingSession,
    ``UnitTracker(session.net, lambda: session.iteration)``; the default counts the
    forward passes (a pass begins when the net's first layer runs). With ``iter_size``
    above 1 the last pass of an iteration is kept. ``series(layer)`` gives the
    fraction of dead (saturated) units over the keys, for a plot over iterations.
    """

    def __init__(self, net: Any, key: Callable[[], int] | None = None,
                 limit: int | None = 100_000) -> None:
        self.net = net
        self._key = key
        self._passes = -1
        self.limit = limit  # the most keys kept (the oldest are dropped)
        self.rows: dict[int, dict[str, UnitRow]] = {}
        self._watched = {i: (name, layer.type, net.top_names[name][0])
                         for i, (name, layer) in enumerate(zip(net.layer_names, net.layers,
                                                               strict=True))
                         if layer.type in UNIT_LAYER_TYPES}
        self._restore: Callable[[], None] | None = None

    def attach(self) -> None:
        from bpinspect.session.layer_cost import wrap_net_call

        if self._restore is None:
            self._restore = wrap_net_call(self.net, "forward_layer", self._wrap)

    def detach(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None

    def _wrap(self, run: Callable[[int], Any]) -> Callable[[int], Any]:
        def forward_layer(i: int) -> Any:
            result = run(i)
            if i == 0:
                self._passes += 1
            if i in self._watched:
                name, layer_type, top = self._watched[i]
                key = self._key() if self._key is not None else max(self._passes, 0)
                row = unit_row(name, layer_type, top, self.net.blobs[top].data)
                self.rows.setdefault(key, {})[name] = row
                if self.limit is not None and len(self.rows) > self.limit:
                    del self.rows[min(self.rows)]
            return result

        return forward_layer

    def series(self, layer: str) -> tuple[list[int], list[float]]:
        """(keys, fraction of units dead or saturated) of ``layer``."""
        xs, ys = [], []
        for key in sorted(self.rows):
            row = self.rows[key].get(layer)
            if row is not None:
                xs.append(key)
                ys.append(row.frac_units)
        return xs, ys

    def latest(self) -> dict[str, UnitRow]:
        """The rows of the last key recorded."""
        return dict(self.rows[max(self.rows)]) if self.rows else {}
