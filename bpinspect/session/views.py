"""What the debugger shows beyond a blob's values: the state a layer keeps for its
backward (LRN scale, pooling argmax, concat and split offsets, dropout mask,
softmax), the saliency of an image input, and the gradient flow of the pass.

A mixin of :class:`~bpinspect.session.session.Session`: every view reads values
through the session's history (``_layer_value``, ``array``), so it shows them as
they were at the step that made them, and hands back small host results built by
:mod:`bpinspect.session.internals_view`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bpinspect.backend import get_array_module, to_host
from bpinspect.errors import BpinspectError
from bpinspect.session import internals_view as iv
from bpinspect.session.schedule import BACKWARD, FORWARD
from bpinspect.session.stats import l2_norm

if TYPE_CHECKING:
    from bpinspect.backend import Array
    from bpinspect.session.schedule import Step


@dataclass(frozen=True)
class FlowRow:
    layer: str
    blob: str
    data_l2: float | None
    diff_l2: float | None


class LayerViews:
    """The session's views; see the module docstring."""

    # What the views read of the session (set by Session).
    net: Any
    cursor: int
    _flow_norms: dict[tuple[Any, ...], float]

    if TYPE_CHECKING:
        def step_of(self, layer: str, direction: str) -> Step: ...
        def array(self, blob: str, kind: str = "data", step: int | None = None,
                  param: int | None = None) -> Array | None: ...
        def _layer_value(self, blob: str, kind: str, layer: str, direction: str,
                         when: str) -> Array | None: ...

    def saliency(self, blob: str | None = None, n: int = 0,
                 step: int | None = None) -> np.ndarray | None:
        """max |diff| over channels of item ``n`` of an image input blob: (H, W)."""
        if blob is None:
            images = [b for b in self.net.inputs if len(self.net.blobs[b].shape) == 4]
            if not images:
                raise BpinspectError("saliency: the net has no 4-axis input blob")
            blob = images[0]
        diff = self.array(blob, "diff", step)
        if diff is None:
            return None
        if diff.ndim != 4:
            raise BpinspectError(f"saliency: blob {blob!r} has shape {tuple(diff.shape)}, "
                                 "not (N, C, H, W)")
        if not 0 <= n < diff.shape[0]:
            raise BpinspectError(f"saliency: item {n} is outside the batch of {diff.shape[0]}")
        xp = get_array_module(diff)
        return to_host(xp.abs(diff[n]).max(axis=0)).astype(np.float32)

    def gradient_flow(self) -> list[FlowRow]:
        """Per layer top: the L2 norm of the data the layer produced and of the diff it
        received in backward (None where the pass has not got there)."""
        rows = []
        for name in self.net.layer_names:
            for top in self.net.top_names[name]:
                rows.append(FlowRow(name, top, self._flow_norm(top, "data", name, FORWARD),
                                    self._flow_norm(top, "diff", name, BACKWARD)))
        return rows

    def _flow_norm(self, top: str, kind: str, layer: str, direction: str) -> float | None:
        """L2 of ``top``'s data after ``layer``'s forward, or of its diff before the
        layer's backward; remembered once that step has run (it cannot change until
        a new generation), so a step recomputes only what it produced."""
        ran = self.step_of(layer, direction).index < self.cursor
        key = (top, kind, layer)
        if ran and key in self._flow_norms:
            return self._flow_norms[key]
        when = "after" if direction == FORWARD else "before"
        a = self._layer_value(top, kind, layer, direction, when)
        if a is None:
            return None
        norm = l2_norm(a)
        if ran:  # (until its backward step runs, a top's diff may yet be seeded)
            self._flow_norms[key] = norm
        return norm

    # ------------------------------------------------------------------ internals
    def _layer_for_view(self, layer: str, types: tuple[str, ...]) -> tuple[int, Any]:
        i = self.net.layer_index(layer)
        obj = self.net.layers[i]
        if obj.type not in types:
            raise BpinspectError(f"layer {layer!r} is a {obj.type} layer, not "
                                 f"{' or '.join(types)}")
        return i, obj

    def _forward_done(self, i: int) -> bool:
        return self.cursor > i

    def recurrent_view(self, layer: str, n: int = 0,
                       index: int = 0) -> iv.RecurrentView | None:
        """An LSTM's, RNN's or LSTMUnit's gates over time for item ``n`` (None before its
        forward); the sequence starts come from its ``cont`` bottom."""
        i, obj = self._layer_for_view(layer, ("LSTM", "RNN", "LSTMUnit"))
        if not self._forward_done(i):
            return None
        bottoms = self.net.bottom_names[layer]
        at = 2 if obj.type == "LSTMUnit" else 1
        cont = self.net.blobs[bottoms[at]].data if len(bottoms) > at else None
        return iv.recurrent_view(obj, n, index, cont)

    def lrn_view(self, layer: str, n: int = 0, c: int = 0) -> iv.LRNView | None:
        i, obj = self._layer_for_view(layer, ("LRN",))
        if not self._forward_done(i):
            return None
        return iv.lrn_view(obj, n, c)

    def pooling_view(self, layer: str, n: int = 0, c: int = 0) -> iv.PoolingView | None:
        i, obj = self._layer_for_view(layer, ("Pooling",))
        if not self._forward_done(i):
            return None
        bottom = self.net.blobs[self.net.bottom_names[layer][0]]
        return iv.pooling_view(obj, bottom.shape, n, c)

    def pooling_cell(self, layer: str, n: int, c: int, y: int, x: int) -> iv.PoolCell | None:
        i, obj = self._layer_for_view(layer, ("Pooling",))
        if not self._forward_done(i):
            return None
        bottom = self.net.blobs[self.net.bottom_names[layer][0]]
        top = self.net.top_names[layer][0]
        return iv.pooling_cell(
            obj, bottom.shape, self._layer_value(top, "data", layer, FORWARD, "after"),
            self._layer_value(top, "diff", layer, BACKWARD, "before"), n, c, y, x,
        )

    def concat_view(self, layer: str) -> iv.ConcatView | None:
        """The whole blob (Concat top, Slice bottom) cut into its parts: its data as the
        layer's forward saw it, its diff as the layer's backward saw (or made) it."""
        i, obj = self._layer_for_view(layer, ("Concat", "Slice"))
        if not self._forward_done(i):
            return None
        bottoms = self.net.bottom_names[layer]
        tops = self.net.top_names[layer]
        if obj.type == "Concat":
            whole, parts = tops[0], list(bottoms)
            data = self._layer_value(whole, "data", layer, FORWARD, "after")
            diff = self._layer_value(whole, "diff", layer, BACKWARD, "before")
        else:
            whole, parts = bottoms[0], list(tops)
            data = self._layer_value(whole, "data", layer, FORWARD, "before")
            diff = self._layer_value(whole, "diff", layer, BACKWARD, "after")
        shapes = [self.net.blobs[p].shape for p in parts]
        return iv.concat_view(layer, obj, whole, parts, shapes, data, diff)

    def split_view(self, layer: str) -> iv.SplitView | None:
        """A blob read by several layers: the diff each gave back, and their sum, which
        the Split's backward wrote as the blob's diff."""
        i, obj = self._layer_for_view(layer, ("Split",))
        if not self._forward_done(i):
            return None
        bottom = self.net.bottom_names[layer][0]
        tops = self.net.top_names[layer]
        return iv.split_view(
            layer, bottom,
            [(t, self._layer_value(t, "diff", layer, BACKWARD, "before")) for t in tops],
            self._layer_value(bottom, "diff", layer, BACKWARD, "after"),
        )

    def dropout_view(self, layer: str, n: int = 0) -> iv.DropoutView | None:
        i, obj = self._layer_for_view(layer, ("Dropout",))
        if not self._forward_done(i):
            return None
        return iv.dropout_view(obj, n)

    def softmax_view(self, layer: str, k: int = 5) -> iv.SoftmaxView | None:
        i, obj = self._layer_for_view(layer, ("Softmax", "SoftmaxWithLoss"))
        if not self._forward_done(i):
            return None
        top = self._layer_value(self.net.top_names[layer][0], "data", layer, FORWARD, "after")
        return iv.softmax_view(layer, obj, top, k)
