"""Histograms across depth: every layer's top data (or diff) over one shared range, so an
exploding or vanishing gradient is seen across the net in one picture; or each over its
own range (``per_layer``), so the shape of a layer whose values are all tiny next to
the others' is seen too.

For each layer in forward order, its first top: the data right after the layer's
forward step (an in-place layer's own output, before a later in-place layer changes
it), or the diff as it is now (None until backward has computed it). The shared
range is the smallest and largest finite value over all of them
(``stats.compute_stats``), a per-layer range that of the layer's own; each histogram
is ``stats.compute_histogram`` over its range, on the device, so only the counts
cross to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.session.stats import Histogram, compute_histogram, compute_stats

if TYPE_CHECKING:
    from bpinspect.session.session import Session

__all__ = ["DepthHistograms", "DepthStrip", "depth_histograms"]

DEFAULT_DEPTH_BINS = 48


@dataclass(frozen=True)
class DepthStrip:
    """One layer's top: its histogram over its range (None: no value yet)."""

    layer: str
    blob: str
    histogram: Histogram | None
    note: str = ""  # why there is no histogram
    value_range: tuple[float, float] | None = None  # what the histogram spans


@dataclass(frozen=True)
class DepthHistograms:
    kind: str  # "data" | "diff"
    value_range: tuple[float, float] | None  # over every strip (None: nothing yet)
    strips: tuple[DepthStrip, ...]
    per_layer: bool = False  # each strip over its own range, not value_range


def depth_histograms(session: Session, kind: str = "data", bins: int = DEFAULT_DEPTH_BINS,
                     per_layer: bool = False) -> DepthHistograms:
    """A strip per layer (forward order) of its first top's ``kind``, over one range
    (or, ``per_layer``, each over its own)."""
    if kind not in ("data", "diff"):
        raise ValueError(f"kind {kind!r}: expected 'data' or 'diff'")
    net = session.net
    arrays = []
    for name in net.layer_names:
        tops = net.top_names[name]
        if not tops:
            continue
        top = tops[0]
        fwd = session.step_of(name, "forward").index
        a, note = None, ""
        if kind == "data" and not session.is_done(fwd):
            note = "not run yet"
        else:
            try:
                a = session.array(top, kind, step=fwd if kind == "data" else None)
            except BpinspectError as exc:  # dropped from the history
                note = str(exc)
            if a is None and not note:
                note = "not computed yet"
        arrays.append((name, top, a, note, _finite_range(a)))
    lo, hi = np.inf, -np.inf
    for *_, own in arrays:
        if own is not None:
            lo, hi = min(lo, own[0]), max(hi, own[1])
    value_range = (float(lo), float(hi)) if lo <= hi else None
    strips = []
    for name, top, a, note, own in arrays:
        span = own if per_layer else value_range
        if a is None or span is None:
            strips.append(DepthStrip(name, top, None, note or "no finite value"))
            continue
        strips.append(DepthStrip(name, top, compute_histogram(a, bins, log=True,
                                                              value_range=span),
                                 value_range=span))
    return DepthHistograms(kind, value_range, tuple(strips), per_layer)


def _finite_range(a: object) -> tuple[float, float] | None:
    """(min, max) of the finite values of ``a`` (None: no array, or none finite)."""
    if a is None or not getattr(a, "size", 0):
        return None
    s = compute_stats(a)
    return (float(s.min), float(s.max)) if s.count > s.nan + s.inf else None
