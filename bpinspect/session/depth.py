"""Histograms across depth: every layer's top data (or diff) over one shared range, so an
exploding or vanishing gradient is seen across the net in one picture.

For each layer in forward order, its first top: the data right after the layer's
forward step (an in-place layer's own output, before a later in-place layer changes
it), or the diff as it is now (None until backward has computed it). The shared
range is the smallest and largest finite value over all of them
(``stats.compute_stats``); each histogram is ``stats.compute_histogram`` over it,
on the device, so only the counts cross to the host.
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
    """One layer's top: its histogram over the shared range (None: no value yet)."""

    layer: str
    blob: str
    histogram: Histogram | None
    note: str = ""  # why there is no histogram


@dataclass(frozen=True)
class DepthHistograms:
    kind: str  # "data" | "diff"
    value_range: tuple[float, float] | None  # shared by every strip (None: nothing yet)
    strips: tuple[DepthStrip, ...]


def depth_histograms(session: Session, kind: str = "data",
                     bins: int = DEFAULT_DEPTH_BINS) -> DepthHistograms:
    """A strip per layer (forward order) of its first top's ``kind``, over one range."""
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
        arrays.append((name, top, a, note))
    lo, hi = np.inf, -np.inf
    for _, _, a, _ in arrays:
        if a is not None and a.size:
            s = compute_stats(a)
            if s.count > s.nan + s.inf:
                lo, hi = min(lo, s.min), max(hi, s.max)
    value_range = (float(lo), float(hi)) if lo <= hi else None
    strips = []
    for name, top, a, note in arrays:
        if a is None or value_range is None:
            strips.append(DepthStrip(name, top, None, note or "no finite value"))
            continue
        strips.append(DepthStrip(name, top, compute_histogram(a, bins, log=True,
                                                              value_range=value_range)))
    return DepthHistograms(kind, value_range, tuple(strips))
