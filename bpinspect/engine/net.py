"""The Net: a Caffe net built the way Caffe builds it, run one layer at a time.

Follows ``src/caffe/net.cpp`` (``Net::Init``, ``FilterNet``,
``StateMeetsRule``, ``AppendTop``/``AppendBottom``/``AppendParam``,
``ForwardFromTo``/``BackwardFromTo``, ``CopyTrainedLayersFrom``) and
``src/caffe/util/insert_splits.cpp`` (``insert_splits.py``), and pycaffe's
``Net.forward``/``Net.backward`` (``python/caffe/pycaffe.py``):

1. **Phase filtering**: a layer is kept when the ``NetState`` (phase, level,
   stages) meets one of its ``include`` rules, or, without ``include`` rules,
   none of its ``exclude`` rules.
2. **Split insertion** where one top feeds several bottoms (Caffe's names:
   layer ``{blob}_{layer}_{i}_split``, tops ``{blob}_{layer}_{i}_split_{k}``);
   the Split layer sums its tops' diffs in backward.
3. **Blobs**: each top is a :class:`Blob` shaped by the layer's ``setup``;
   an in-place layer (``top == bottom`` at the same index) gets the very
   Blob object of its bottom.
4. **Params** from ``layer.param_shapes``, filled by the layer's fillers
   (Caffe's default filler is constant 0). Without ``weights``, a weight
   (2+ axes) with no filler gets a seeded MSRA filler instead, and a note
   says so; with ``weights``, the ``.caffemodel``'s blobs are copied in by
   layer name. Params named alike in ``param { name: ... }`` are shared
   (the same Blob object, data and diff, as Caffe's ``ShareWeights``).
5. **Loss weights**: ``loss_weight`` per top, or 1 on top 0 of a loss layer.
6. **Needs-backward**: Caffe's two passes, then ``force_backward``; each
   layer also gets a sentence saying why it does or does not run backward.

The Net never runs a pass behind the caller's back: ``forward_layer(i)`` and
``backward_layer(i)`` run exactly one layer; ``forward``/``backward`` are the
pycaffe loops over them, for scripts and tests.

Two deliberate differences from Caffe, both about layers whose backward
would compute nothing: a layer without bottoms and params (Input,
DummyData, Data) is marked as needing no backward even under
``force_backward`` (Caffe marks it, but its Backward is empty), and a layer
whose bottoms all have ``propagate_down`` false and that has no learnable
params is marked off (Caffe calls its Backward, which then does nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from bpinspect.backend import CPU, Array, Device, to_host
from bpinspect.engine.blob import Blob
from bpinspect.engine.insert_splits import insert_splits
from bpinspect.engine.memory import MemoryPlan, plan_net
from bpinspect.errors import BpinspectError
from bpinspect.io.net_hdf5 import copy_hdf5_layers, is_hdf5, read_net_hdf5, write_net_hdf5
from bpinspect.layers.base import Layer
from bpinspect.proto import caffe_pb2

__all__ = ["Net", "filter_net", "state_meets_rule"]

Shape = tuple[int, ...]
# progress(what, done, total): building a big net takes seconds (reading a
# caffemodel, filling 60M weights); total None where there is nothing to count.
Progress = Callable[[str, int, "int | None"], None]

_PHASES = {"train": caffe_pb2.TRAIN, "test": caffe_pb2.TEST}
_PHASE_NAMES = {caffe_pb2.TRAIN: "train", caffe_pb2.TEST: "test"}

HINT_FORCE_BACKWARD = "add force_backward: true to backprop an injected diff"


# ---- phase filtering ------------------------------------------------------------


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """StateMeetsRule: phase, min/max level, all ``stage``s and no ``not_stage``."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def filter_net(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """FilterNet: a copy of ``param`` holding the layers that ``param.state`` keeps."""
    state = param.state
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for layer in param.layer:
        if len(layer.include) and len(layer.exclude):
            raise BpinspectError(
                f"layer {layer.name!r}: specify either include rules or exclude rules, not both"
            )
        included = len(layer.include) == 0
        if included and any(state_meets_rule(state, rule) for rule in layer.exclude):
            included = False
        if not included and any(state_meets_rule(state, rule) for rule in layer.include):
            included = True
        if included:
            out.layer.add().CopyFrom(layer)
    return out


# ---- loading --------------------------------------------------------------------


def _load_model(model: Any, notes: list[str]) -> tuple[caffe_pb2.NetParameter, str]:
    """The NetParameter (a private, upgraded copy) and a name for messages."""
    if isinstance(model, caffe_pb2.NetParameter):
        from bpinspect.io.upgrade import net_needs_upgrade, upgrade_net

        param = caffe_pb2.NetParameter()
        param.CopyFrom(model)
        source = f"net {param.name!r}" if param.name else "<NetParameter>"
        if net_needs_upgrade(param):
            upgrade_net(param, source, notes)
        return param, source
    if isinstance(model, (str, os.PathLike)):
        from bpinspect.io.prototxt import load_net

        path = os.fspath(model)
        return load_net(path, notes), path
    raise BpinspectError(
        f"Net: expected a .prototxt path or a NetParameter, got {type(model).__name__}"
    )


def _phase_value(phase: Any) -> int:
    if isinstance(phase, str) and phase.lower() in _PHASES:
        return _PHASES[phase.lower()]
    if phase in (caffe_pb2.TRAIN, caffe_pb2.TEST) and not isinstance(phase, bool):
        return int(phase)
    raise BpinspectError(f"phase {phase!r}: expected 'train' or 'test'")


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _tops_may_change(layer: Layer) -> bool:
    """The layer's forward may give its tops other shapes than its setup did."""
    return bool(getattr(layer, "top_shapes_vary", False)) or layer.type == "Python"


def _fit(blob: Blob, shape: Shape) -> bool:
    """Give ``blob`` data and diff of ``shape``, zeroed where reallocated (the data
    is kept when its shape is right: an in-place layer's bottom); True if the diff
    was reallocated."""
    xp, dtype = blob.xp, blob.dtype
    if tuple(blob.data.shape) != shape:
        blob.data = xp.zeros(shape, dtype=dtype)
    if tuple(blob.diff.shape) != shape:
        blob.diff = xp.zeros(shape, dtype=dtype)
        return True
    return False


class _Planned(Blob):
    """A blob's name and shape while the net is set up, before anything is allocated."""

    def __init__(self, name: str, shape: Shape) -> None:  # no super(): no arrays
        self.name = name
        self._shape = shape

    @property
    def shape(self) -> Shape:
        return self._shape


# ---- the net --------------------------------------------------------------------


class Net:
    """A Caffe net on one device, in one dtype; see the module docstring."""

    def __init__(
        self,
        model: Any,
        weights: str | os.PathLike | None = None,
        phase: str = "test",
        *,
        device: Device | None = None,
        seed: int = 0,
        dtype: Any = np.float32,
        level: int | None = None,
        stages: tuple[str, ...] | list[str] = (),
        progress: Progress | None = None,
        feeds: dict[str, Shape] | None = None,
        base_dir: str | os.PathLike | None = None,
    ) -> None:
        self.device: Device = device if device is not None else CPU
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise BpinspectError(f"dtype {self.dtype}: expected float32 or float64")
        self.seed = int(seed)
        self.notes: list[str] = []

        param, self.source = _load_model(model, self.notes)
        # Relative paths in the net (data sources, mean files) are Caffe's: from the
        # working directory; failing that, from here (the net file's directory).
        if base_dir is not None:
            self.base_dir: str | None = os.fspath(base_dir)
        elif isinstance(model, (str, os.PathLike)):
            self.base_dir = os.path.dirname(os.path.abspath(os.fspath(model)))
        else:
            self.base_dir = None
        # Blobs the caller feeds (--input data=FILE): a data layer whose tops are fed
        # becomes an input and does not open its source.
        self.feeds: dict[str, Shape] = {k: tuple(int(d) for d in v)
                                        for k, v in (feeds or {}).items()}
        # Net(param_file, phase, level, stages): the phase always, level and
        # stages on top of the file's own state.
        phase_value = _phase_value(phase)
        param.state.phase = phase_value
        if level is not None:
            param.state.level = int(level)
        param.state.stage.extend([stages] if isinstance(stages, str) else stages)
        self.phase: str = _PHASE_NAMES[phase_value]
        self.name: str = param.name
        self.force_backward: bool = bool(param.force_backward)
        self.state = caffe_pb2.NetState()
        self.state.CopyFrom(param.state)

        self.param: caffe_pb2.NetParameter = insert_splits(filter_net(param))
        if not self.param.layer:
            kept = f" in phase {self.phase} (include/exclude keep none)" if len(param.layer) else ""
            raise BpinspectError(f"{self.source}: the net has no layers{kept}")
        self._init_layers()
        self._init_backward()
        # Every shape is known and nothing is allocated yet: plan, then allocate.
        self.memory: MemoryPlan = plan_net(self)
        self._allocate_blobs()
        self._progress = progress
        self._init_params(weights)
        self._progress = None
        for i, layer in enumerate(self.layers):
            layer.reset_rng(self.seed + 1 + i)

    # ---- construction (Net::Init) -------------------------------------------

    def _make_layer(self, lp: caffe_pb2.LayerParameter) -> Layer:
        """The layer object for ``lp``; a data layer whose tops are fed, as an input."""
        from bpinspect.layers.data import Fed
        from bpinspect.layers.registry import DATA_SOURCE_TYPES, layer_class

        phase = _PHASE_NAMES[lp.phase]
        fed = [t for t in lp.top if t in self.feeds]
        if fed and lp.type in DATA_SOURCE_TYPES and not lp.bottom:
            layer: Layer = Fed(lp, phase, self.feeds)
            self.notes.append(
                f"layer {lp.name!r} ({lp.type}): {', '.join(fed)} fed by --input; "
                "its source is not read"
            )
        else:
            layer = layer_class(lp.type, lp.name)(lp, phase)
        layer.base_dir = self.base_dir
        return layer

    def _init_layers(self) -> None:
        from bpinspect.layers.data import Input

        self.layers: list[Layer] = []
        self.layer_names: list[str] = []
        self.bottom_names: dict[str, list[str]] = {}
        self.top_names: dict[str, list[str]] = {}
        self.blobs: dict[str, Blob] = {}
        self.inputs: list[str] = []
        self.loss_weights: dict[str, float] = {}
        self.layer_need_backward: list[bool] = []
        self.bottom_need_backward: list[list[bool]] = []
        self._bottom_vecs: list[list[Blob]] = []
        self._top_vecs: list[list[Blob]] = []
        # The bottom shapes each layer was last set up with (see forward_layer).
        self._setup_bottoms: list[list[Shape]] = []
        self._top_loss: list[list[float]] = []  # Layer::loss(top_id)
        self._layer_index: dict[str, int] = {}
        self._producers: dict[str, list[int]] = {}
        self._blob_need_backward: dict[str, bool] = {}
        self._param_lr: list[list[bool]] = []  # ParamSpec lr_mult != 0, per param
        # For backward_reason: what the first pass saw.
        self._grad_bottoms: list[list[str]] = []
        self._learnable: list[bool] = []
        available: set[str] = set()

        for i, lp in enumerate(self.param.layer):
            if lp.name in self._layer_index:
                raise BpinspectError(
                    f"layer {lp.name!r}: the name is used by two layers "
                    f"(#{self._layer_index[lp.name]} and #{i}); layer names must be unique"
                )
            if not lp.HasField("phase"):
                lp.phase = self.state.phase
            if len(lp.propagate_down) and len(lp.propagate_down) != len(lp.bottom):
                raise BpinspectError(
                    f"layer {lp.name!r}: propagate_down must be given 0 or {len(lp.bottom)} "
                    f"times (once per bottom), got {len(lp.propagate_down)}"
                )
            layer = self._make_layer(lp)
            layer.check_blob_counts(len(lp.bottom), len(lp.top))
            self._layer_index[lp.name] = i
            self.layers.append(layer)
            self.layer_names.append(lp.name)
            self.bottom_names[lp.name] = list(lp.bottom)
            self.top_names[lp.name] = list(lp.top)

            # AppendBottom
            bottoms: list[Blob] = []
            need_backward_of_bottoms: list[bool] = []
            grad_bottoms: list[str] = []
            need_backward = False
            for j, name in enumerate(lp.bottom):
                if name not in available:
                    if name in self.blobs:
                        raise BpinspectError(
                            f"layer {lp.name!r}: bottom blob {name!r} was already read by an "
                            "earlier layer and not produced again"
                        )
                    raise BpinspectError(f"layer {lp.name!r}: unknown bottom blob {name!r}")
                bottoms.append(self.blobs[name])
                available.discard(name)
                blob_needs = self._blob_need_backward[name]
                if blob_needs:
                    grad_bottoms.append(name)
                need_backward |= blob_needs
                if len(lp.propagate_down):
                    need_backward_of_bottoms.append(bool(lp.propagate_down[j]))
                else:
                    need_backward_of_bottoms.append(blob_needs)

            # Layer::SetUp: top shapes from the bottom shapes.
            top_shapes = [tuple(int(d) for d in s) for s in layer.setup([b.shape for b in bottoms])]
            if len(top_shapes) != len(lp.top):
                raise BpinspectError(
                    f"layer {lp.name!r} ({lp.type}): setup gave {len(top_shapes)} top shape(s) "
                    f"for {len(lp.top)} top blob(s)"
                )

            # AppendTop
            tops: list[Blob] = []
            for j, name in enumerate(lp.top):
                shape = top_shapes[j]
                if j < len(lp.bottom) and name == lp.bottom[j]:  # in-place
                    blob = self.blobs[name]
                    if blob.shape != shape:
                        raise BpinspectError(
                            f"layer {lp.name!r}: in-place top {name!r} would change shape from "
                            f"{_shape_text(blob.shape)} to {_shape_text(shape)}"
                        )
                elif name in self.blobs:
                    first = self._producers[name][0]
                    raise BpinspectError(
                        f"layer {lp.name!r}: top blob {name!r} is already produced by layer "
                        f"{self.layer_names[first]!r} (only an in-place layer, with the same "
                        "name as bottom and top at the same index, may write it again)"
                    )
                else:
                    blob = _Planned(name, shape)  # allocated once the memory is planned
                    self.blobs[name] = blob
                    self._blob_need_backward[name] = False
                    if isinstance(layer, Input):
                        self.inputs.append(name)
                tops.append(blob)
                self._producers.setdefault(name, []).append(i)
                available.add(name)

            # Layer::SetLossWeights (LossLayer::LayerSetUp gives top 0 weight 1).
            if len(lp.loss_weight):
                if len(lp.loss_weight) != len(lp.top):
                    raise BpinspectError(
                        f"layer {lp.name!r}: loss_weight must be unspecified or given once per "
                        f"top blob ({len(lp.top)} top(s), {len(lp.loss_weight)} loss_weight)"
                    )
                top_loss = [float(w) for w in lp.loss_weight]
            else:
                top_loss = [0.0] * len(lp.top)
                if layer.is_loss and len(top_loss) > 1:
                    # LossLayer::LayerSetUp adds one loss_weight 1, then SetLossWeights
                    # checks there is one per top: Caffe refuses this layer.
                    raise BpinspectError(
                        f"layer {lp.name!r} ({lp.type}): a loss layer with {len(lp.top)} tops "
                        f"needs loss_weight once per top (e.g. loss_weight: 1 loss_weight: 0), "
                        "as Caffe requires"
                    )
                if layer.is_loss and top_loss:
                    top_loss[0] = 1.0
            for name, w in zip(lp.top, top_loss, strict=True):
                if w:
                    self.loss_weights[name] = w

            # param_propagate_down from lr_mult (ParamSpec default lr_mult 1).
            num_params = len(layer.param_shapes)
            if len(lp.param) > num_params:
                raise BpinspectError(
                    f"layer {lp.name!r}: {len(lp.param)} param {{ }} blocks given, but the "
                    f"layer has {num_params} param blob(s)"
                )
            lr = [
                (lp.param[j].lr_mult if j < len(lp.param) else 1.0) != 0 for j in range(num_params)
            ]
            layer.param_propagate_down = list(lr)
            need_backward |= any(lr)

            self._bottom_vecs.append(bottoms)
            self._setup_bottoms.append([b.shape for b in bottoms])
            self._top_vecs.append(tops)
            self._top_loss.append(top_loss)
            self.bottom_need_backward.append(need_backward_of_bottoms)
            self.layer_need_backward.append(need_backward)
            self._param_lr.append(lr)
            self._grad_bottoms.append(grad_bottoms)
            self._learnable.append(any(lr))
            if need_backward:
                for name in lp.top:
                    self._blob_need_backward[name] = True

        # A layer whose forward may change its tops' shapes (Filter; a Python layer, whose
        # reshape runs every forward): only then does forward_layer compare shapes.
        self._shapes_vary: bool = any(_tops_may_change(layer) for layer in self.layers)
        # Caffe keeps the remaining blobs in a std::set: outputs come sorted by name.
        self.outputs: list[str] = sorted(available)
        for layer in self.layers:  # what data layers found at setup (rand_skip ignored, ...)
            self.notes.extend(getattr(layer, "notes", []))

    def _allocate_blobs(self) -> None:
        """Replace the planned blobs by Blobs holding data and diff."""
        xp = self.device.xp
        made = {name: Blob(name, p.shape, xp, self.dtype) for name, p in self.blobs.items()}
        self.blobs = made
        for vecs in (self._bottom_vecs, self._top_vecs):
            for blobs in vecs:
                blobs[:] = [made[b.name] for b in blobs]

    def _init_backward(self) -> None:
        """The second pass (which blobs lead to a loss) and force_backward."""
        n = len(self.layers)
        first_pass = list(self.layer_need_backward)
        contributes = [False] * n
        loss_top: list[str | None] = [None] * n
        skipped = [False] * n
        blobs_under_loss: set[str] = set()
        blobs_skip_backp: set[str] = set()
        for i in range(n - 1, -1, -1):
            layer_contributes_loss = False
            layer_skip_propagate_down = True
            for j, name in enumerate(self.top_names[self.layer_names[i]]):
                if self._top_loss[i][j] or name in blobs_under_loss:
                    if not layer_contributes_loss:
                        loss_top[i] = name
                    layer_contributes_loss = True
                if name not in blobs_skip_backp:
                    layer_skip_propagate_down = False
                if layer_contributes_loss and not layer_skip_propagate_down:
                    break
            if self.layer_need_backward[i] and layer_skip_propagate_down:
                self.layer_need_backward[i] = False
                skipped[i] = True
                self.bottom_need_backward[i] = [False] * len(self.bottom_need_backward[i])
            if not layer_contributes_loss:
                self.layer_need_backward[i] = False
            contributes[i] = layer_contributes_loss
            for j, name in enumerate(self.bottom_names[self.layer_names[i]]):
                if layer_contributes_loss:
                    blobs_under_loss.add(name)
                else:
                    self.bottom_need_backward[i][j] = False
                if not self.bottom_need_backward[i][j]:
                    blobs_skip_backp.add(name)

        natural = list(self.layer_need_backward)
        natural_bottoms = [list(b) for b in self.bottom_need_backward]
        if self.force_backward:
            for i, layer in enumerate(self.layers):
                self.layer_need_backward[i] = True
                for j, name in enumerate(self.bottom_names[self.layer_names[i]]):
                    self.bottom_need_backward[i][j] = (
                        self.bottom_need_backward[i][j] or layer.allow_force_backward(j)
                    )
                    self._blob_need_backward[name] = (
                        self._blob_need_backward[name] or self.bottom_need_backward[i][j]
                    )
                layer.param_propagate_down = [True] * len(layer.param_shapes)

        self.backward_reason: list[str] = []
        for i, layer in enumerate(self.layers):
            lp = self.param.layer[i]
            has_params = len(layer.param_shapes) > 0
            if not lp.bottom and not has_params:
                self.layer_need_backward[i] = False
                self.backward_reason.append("no backward: input layer")
                continue
            if (
                self.layer_need_backward[i]
                and not any(self.bottom_need_backward[i])
                and not any(layer.param_propagate_down)
            ):
                self.layer_need_backward[i] = False
                if len(lp.propagate_down) and not any(lp.propagate_down):
                    self.backward_reason.append(
                        "no backward: propagate_down is false for every bottom"
                    )
                else:
                    self.backward_reason.append(
                        "no backward: none of its bottoms takes a gradient and it has no "
                        "learnable params"
                    )
                continue
            if natural[i]:
                reason = self._why(i, loss_top[i], natural_bottoms[i])
            else:
                why_not = self._why_not(i, first_pass[i], contributes[i], skipped[i], has_params)
                if self.force_backward:
                    reason = f"needs backward: force_backward: true (without it: {why_not})"
                else:
                    if not contributes[i] and first_pass[i]:
                        why_not += f" ({HINT_FORCE_BACKWARD})"
                    reason = f"no backward: {why_not}"
            self.backward_reason.append(reason)

    def _why(self, i: int, top: str | None, bottoms_need: list[bool]) -> str:
        """The sentence for a layer that needs backward without force_backward."""
        j = self.top_names[self.layer_names[i]].index(top) if top is not None else -1
        if j >= 0 and self._top_loss[i][j]:
            weight = self._top_loss[i][j]
            reason = f"needs backward: its top {top} is a loss (loss_weight {weight:g})"
        else:
            reason = f"needs backward: its top {top} leads to a loss"
        bottoms = [
            name
            for name, need in zip(self.bottom_names[self.layer_names[i]], bottoms_need, strict=True)
            if need
        ]
        causes = []
        if len(bottoms) == 1:
            causes.append(f"its bottom {bottoms[0]} needs a gradient")
        elif bottoms:
            causes.append(f"its bottoms {', '.join(bottoms)} need a gradient")
        if self._learnable[i]:
            causes.append("it has learnable params")
        return "; ".join([reason, *causes])

    def _why_not(
        self, i: int, first_pass: bool, contributes: bool, skipped: bool, has_params: bool
    ) -> str:
        if not first_pass:
            text = "no bottom needs a gradient and it has no learnable params"
            if has_params:
                text += " (its params have lr_mult: 0)"
            return text
        if not contributes:
            return "no path from its tops to a loss"
        if skipped:
            return "the layers that read its tops have propagate_down: false for them"
        return "propagate_down is false for every bottom"  # pragma: no cover

    def _init_params(self, weights: str | os.PathLike | None) -> None:
        """Create, share and fill the learnable params; copy trained weights."""
        from bpinspect.engine import fillers

        xp = self.device.xp
        host_rng = np.random.default_rng(self.seed)
        trained = None
        covered: set[str] = set()  # layers whose params the weights file holds
        if weights is not None and is_hdf5(weights):  # as CopyTrainedLayersFrom tells them
            trained = read_net_hdf5(weights)
            covered = {name for name, arrays in trained.items() if arrays}
        elif weights is not None:
            from bpinspect.io.caffemodel import read_caffemodel

            path = os.fspath(weights)
            report = self._progress

            def megabytes(done: int, size: int) -> None:
                if report:  # whole MB, a small file counting as one
                    total = max(1, -(-size >> 20))
                    report(f"reading {path} (MB)", total if done >= size else done >> 20, total)

            trained = read_caffemodel(path, self.notes, megabytes if report else None)
            if report:
                report(f"decoding {path}", 0, None)
            covered = {layer.name for layer in trained.layer if len(layer.blobs)}
        self.params: dict[str, list[Blob]] = {}
        owners: dict[str, tuple[int, Blob]] = {}  # ParamSpec name -> (layer, its Blob)
        msra_layers: list[str] = []
        untrained: dict[str, list[str]] = {}  # untrained_fill -> layers filled so
        with_params = sum(1 for layer in self.layers if layer.param_shapes)
        done = 0
        for i, layer in enumerate(self.layers):
            lp = self.param.layer[i]
            if not layer.param_shapes:
                layer.blobs = []
                continue
            if self._progress:
                self._progress(f"filling the params of {lp.name}", done, with_params)
            done += 1
            param_fillers = layer.param_fillers()
            blobs: list[Blob] = []
            for j, shape in enumerate(layer.param_shapes):
                shape = tuple(int(d) for d in shape)
                spec = lp.param[j] if j < len(lp.param) else None
                if spec is not None and spec.name and spec.name in owners:
                    blobs.append(self._shared_param(i, j, shape, spec, owners[spec.name]))
                    continue
                filler = param_fillers[j] if j < len(param_fillers) else None
                if filler is None and len(shape) >= 2 and lp.name not in covered:
                    host = fillers.msra_default(shape, np, host_rng, self.dtype)
                    if lp.name not in msra_layers:
                        msra_layers.append(lp.name)
                else:
                    host = fillers.fill(filler, shape, xp=np, rng=host_rng, dtype=self.dtype)
                blob = Blob(f"{lp.name}#{j}", shape, xp, self.dtype)
                blob.data = xp.asarray(host, dtype=self.dtype).reshape(shape)
                # Written now, not at the first backward: zeros from the allocator are
                # pages not yet mapped, and fc6's first backward would take their faults
                # (its diff is written whole, never cleared first: Blob.zero_diff).
                blob.diff[...] = 0
                blobs.append(blob)
                if spec is not None and spec.name:
                    owners[spec.name] = (i, blob)
            layer.blobs = blobs
            self.params[lp.name] = blobs
            # A layer whose fillers stand in for Caffe's (BatchNorm's identity statistics).
            fill = getattr(layer, "untrained_fill", "")
            if fill and lp.name not in covered:
                untrained.setdefault(fill, []).append(lp.name)

        if weights is not None and trained is not None:
            path = os.fspath(weights)
            if self._progress:
                self._progress(f"copying the weights of {path}", 0, None)
            self._copy_trained(trained, path)
            self.weights_source: str = path
            if msra_layers:
                self.notes.append(
                    f"{path} has no weights for {', '.join(msra_layers)} and the prototxt gives "
                    f"no filler: filled with a seeded MSRA filler (seed {self.seed})"
                )
        elif msra_layers:
            self.weights_source = f"seeded MSRA filler (seed {self.seed}): no --weights given"
            self.notes.append(
                f"no --weights given: weights of {', '.join(msra_layers)} have no filler "
                f"in the prototxt, filled with a seeded MSRA filler (seed {self.seed}); "
                "biases without a filler are 0, Caffe's default"
            )
        else:
            self.weights_source = f"the prototxt's fillers (seed {self.seed}): no --weights given"
        for fill, names in untrained.items():
            if weights is None:
                self.notes.append(f"no --weights given: {', '.join(names)} filled with {fill}")
            else:
                self.notes.append(f"{os.fspath(weights)} has no weights for {', '.join(names)}: "
                                  f"filled with {fill}")

    def _shared_param(
        self, i: int, j: int, shape: Shape, spec: caffe_pb2.ParamSpec, owner: tuple[int, Blob]
    ) -> Blob:
        """AppendParam for a name seen before: the owner's Blob object itself."""
        owner_layer, blob = owner
        if blob.shape != shape:
            mode = "count" if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE else "shape"
            if mode == "count" and int(np.prod(shape)) == blob.count:
                raise BpinspectError(
                    f"layer {self.layer_names[i]!r}: sharing param {spec.name!r} between shapes "
                    f"{_shape_text(blob.shape)} and {_shape_text(shape)} "
                    "(share_mode: PERMISSIVE) is not supported"
                )
            raise BpinspectError(
                f"layer {self.layer_names[i]!r}: cannot share param {spec.name!r} owned by layer "
                f"{self.layer_names[owner_layer]!r}: {mode} mismatch, owner param shape is "
                f"{_shape_text(blob.shape)}, this layer expects {_shape_text(shape)}"
            )
        return blob

    # ---- lookups ---------------------------------------------------------------

    def layer_index(self, name: str) -> int:
        """The index of layer ``name`` in ``layers``."""
        try:
            return self._layer_index[name]
        except KeyError:
            raise BpinspectError(f"unknown layer {name!r}") from None

    def producer_index(self, blob: str) -> int:
        """The last layer that writes ``blob`` as a top (an in-place layer, if any)."""
        try:
            return self._producers[blob][-1]
        except KeyError:
            raise BpinspectError(f"unknown blob {blob!r}") from None

    def bottom_blobs(self, i: int) -> list[Blob]:
        return list(self._bottom_vecs[i])

    def top_blobs(self, i: int) -> list[Blob]:
        return list(self._top_vecs[i])

    def top_loss_weights(self, i: int) -> list[float]:
        """Layer::loss(top_id) for each top of layer ``i`` (0 for non-loss tops)."""
        return list(self._top_loss[i])

    def _blob(self, name: str, what: str) -> Blob:
        try:
            return self.blobs[name]
        except KeyError:
            raise BpinspectError(f"{what}: unknown blob {name!r}") from None

    def _unique_params(self) -> list[Blob]:
        seen: dict[int, Blob] = {}
        for blobs in self.params.values():
            for blob in blobs:
                seen.setdefault(id(blob), blob)
        return list(seen.values())

    # ---- one layer at a time ---------------------------------------------------

    def forward_layer(self, i: int) -> float:
        """Run layer ``i`` forward; return its loss contribution (sum of weight * top)."""
        layer = self.layers[i]
        tops = self._top_vecs[i]
        if self._shapes_vary:
            self._fit_to_bottoms(i)
        layer.forward(self._bottom_vecs[i], tops)
        loss = 0.0
        for blob, weight in zip(tops, self._top_loss[i], strict=True):
            if weight:
                loss += weight * float(blob.data.sum())
        return loss

    def undo_forward(self, i: int) -> None:
        """Layer ``i``'s last forward was undone (a debugger stepped back over it): its
        next forward is that one again, not a second. Only a layer with an effect
        outside the net cares (HDF5Output rewrites its file rather than refuse)."""
        hook = getattr(self.layers[i], "undo_forward", None)
        if hook is not None:
            hook()

    def backward_layer(self, i: int) -> None:
        """Run layer ``i`` backward, if it needs backward (else nothing)."""
        if self.layer_need_backward[i]:
            self.layers[i].backward(
                self._top_vecs[i], list(self.bottom_need_backward[i]), self._bottom_vecs[i]
            )

    def seed_loss_diffs(self) -> None:
        """Set each loss top's diff to its loss weight, as Caffe's SetLossWeights does."""
        for tops, weights in zip(self._top_vecs, self._top_loss, strict=True):
            for blob, weight in zip(tops, weights, strict=True):
                if weight:
                    blob.diff[...] = weight

    def clear_param_diffs(self, at_once: bool = False) -> None:
        """Zero every param diff: lazily (``Blob.zero_diff``), or ``at_once`` for code
        that holds the arrays themselves (pycaffe's views)."""
        for blob in self._unique_params():
            blob.zero_diff(at_once)

    def clear_blob_diffs(self) -> None:
        """Zero every blob's diff (not the params'; lazily: ``Blob.zero_diff``)."""
        for blob in self.blobs.values():
            blob.zero_diff()

    def clear_diffs(self) -> None:
        """Zero every blob's diff and every param diff."""
        self.clear_blob_diffs()
        self.clear_param_diffs()

    @property
    def loss(self) -> float:
        """The loss from the current top data: sum of weight * top.data.sum()."""
        total = 0.0
        for tops, weights in zip(self._top_vecs, self._top_loss, strict=True):
            for blob, weight in zip(tops, weights, strict=True):
                if weight:
                    total += weight * float(blob.data.sum())
        return total

    def reshape(self) -> None:
        """Re-run every layer's setup after an input blob changed shape (Net::Reshape).

        Layers without bottoms keep their tops' current shapes (Caffe's Input
        and DummyData layers do nothing on Reshape), so reshape an input blob
        with ``net.blobs[name].reshape(shape)`` first.
        """
        for i in range(len(self.layers)):
            if not self._bottom_vecs[i]:
                continue
            self._reshape_layer(i)
            for blob, weight in zip(self._top_vecs[i], self._top_loss[i], strict=True):
                if weight:
                    blob.diff[...] = weight

    def _fit_to_bottoms(self, i: int) -> None:
        """Caffe's Reshape before each Forward, where it can matter: layer ``i``'s
        setup again when its bottoms' shapes differ from those it was set up with
        (a Filter before it kept another number of items, or a step back put back
        arrays of another pass)."""
        bottoms = self._bottom_vecs[i]
        if bottoms and [b.shape for b in bottoms] != self._setup_bottoms[i]:
            self._reshape_layer(i)

    def _reshape_layer(self, i: int) -> None:
        """Layer ``i``'s setup from its bottoms' current shapes; its tops reshaped (a
        loss top that is reallocated gets its loss weight back as its diff)."""
        layer, bottoms = self.layers[i], self._bottom_vecs[i]
        shapes = [b.shape for b in bottoms]
        old_params = [tuple(int(d) for d in s) for s in layer.param_shapes]
        top_shapes = layer.setup(shapes)
        new_params = [tuple(int(d) for d in s) for s in layer.param_shapes]
        if new_params != old_params:
            layer.param_shapes = old_params
            raise BpinspectError(
                f"layer {self.layer_names[i]!r}: the new input shapes would change its "
                f"params from {', '.join(map(_shape_text, old_params))} to "
                f"{', '.join(map(_shape_text, new_params))}"
            )
        tops, weights = self._top_vecs[i], self._top_loss[i]
        for j, (blob, shape) in enumerate(zip(tops, top_shapes, strict=True)):
            shape = tuple(int(d) for d in shape)
            if j < len(bottoms) and blob is bottoms[j] and blob.shape != shape:
                raise BpinspectError(
                    f"layer {self.layer_names[i]!r}: in-place top {blob.name!r} would "
                    f"change shape from {_shape_text(blob.shape)} to {_shape_text(shape)}"
                )
            if _fit(blob, shape) and weights[j]:
                blob.diff[...] = weights[j]
        self._setup_bottoms[i] = shapes

    # ---- pycaffe ---------------------------------------------------------------

    def _checked(self, what: str, arrays: dict[str, Any], noun: str) -> list[tuple[Blob, Array]]:
        """Each (blob, array on the device) pair, after checking every name and shape."""
        checked: list[tuple[Blob, Array]] = []
        for name, value in arrays.items():
            blob = self._blob(name, what)
            array = self.device.asarray(value, dtype=self.dtype)
            if tuple(array.shape) != blob.shape:
                raise BpinspectError(
                    f"{what}: blob {name!r} has shape {_shape_text(blob.shape)}, the {noun} "
                    f"given for it has shape {_shape_text(tuple(int(d) for d in array.shape))}"
                )
            checked.append((blob, array))
        return checked

    def forward(self, start: str | None = None, end: str | None = None, **inputs: Any) -> dict:
        """pycaffe's Net.forward: set ``inputs`` (blob -> array), run layers start..end.

        Returns ``{blob: data}`` for the net outputs, or for ``end``'s tops.
        """
        for blob, array in self._checked("forward", inputs, "array"):
            blob.data[...] = array
        start_ind = self.layer_index(start) if start is not None else 0
        end_ind = self.layer_index(end) if end is not None else len(self.layers) - 1
        for i in range(start_ind, end_ind + 1):
            self.forward_layer(i)
        outputs = self.top_names[end] if end is not None else self.outputs
        return {name: self.blobs[name].data for name in outputs}

    def backward(self, start: str | None = None, end: str | None = None, **diffs: Any) -> dict:
        """pycaffe's Net.backward: inject ``diffs`` (blob -> array), run layers start..end down.

        Without ``start``, the pass starts at the last producer of the
        injected blobs (the last layer when none is given), every blob's
        diff is zeroed first and the loss tops get their loss weights, so the
        result is the gradient of ``loss + sum(<diff, blob>)``. With ``start``
        it goes on from the diffs already there (pycaffe's partial backward).
        Param diffs accumulate, as in Caffe; ``clear_param_diffs`` zeroes them.

        Returns ``{blob: diff}`` for the net inputs, or for ``end``'s bottoms.
        """
        checked = self._checked("backward", diffs, "diff")
        if start is not None:
            start_ind = self.layer_index(start)
        elif diffs:
            start_ind = max(self.producer_index(name) for name in diffs)
        else:
            start_ind = len(self.layers) - 1
        end_ind = self.layer_index(end) if end is not None else 0
        if start is None:
            self.clear_blob_diffs()
        self.seed_loss_diffs()
        for blob, array in checked:
            blob.diff[...] = array
        for i in range(start_ind, end_ind - 1, -1):
            self.backward_layer(i)
        outputs = self.bottom_names[end] if end is not None else self.inputs
        return {name: self.blobs[name].diff for name in outputs}

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """pycaffe's ``Net.set_input_arrays``: the arrays a MemoryData first layer serves."""
        layer = self.layers[0] if self.layers else None
        if layer is None or layer.type != "MemoryData" or not hasattr(layer, "set_input_arrays"):
            raise BpinspectError("set_input_arrays may only be called if the first layer is a "
                                 "MemoryData layer")
        layer.set_input_arrays(data, labels)

    def copy_from(self, weights: str | os.PathLike) -> None:
        """pycaffe's ``Net.copy_from``: trained params from a .caffemodel, by layer name
        (Caffe's CopyTrainedLayersFrom); notes say what was ignored or not covered."""
        from bpinspect.io.caffemodel import copy_trained_layers, read_caffemodel

        path = os.fspath(weights)
        if is_hdf5(path):
            self._copy_trained(read_net_hdf5(path), path)
            return
        trained = read_caffemodel(path, self.notes)
        self.notes.extend(copy_trained_layers(trained, self.params, path, self.layer_names))

    def _copy_trained(self, trained: Any, path: str) -> None:
        """Trained params into the net's Blobs: a .caffemodel's NetParameter, or what
        read_net_hdf5 read from an HDF5 weights file."""
        from bpinspect.io.caffemodel import copy_trained_layers

        if isinstance(trained, dict):
            self.notes.extend(copy_hdf5_layers(trained, self.params, path, self.layer_names,
                                               self._owns_param))
        else:
            self.notes.extend(copy_trained_layers(trained, self.params, path,
                                                  self.layer_names))

    def _owns_param(self, layer: str, j: int) -> bool:
        """Param ``j`` of ``layer`` is its own, not shared from an earlier layer
        (Caffe's ``param_owners_[id] == -1``)."""
        blob = self.params[layer][j]
        for name in self.layer_names:
            if name == layer:
                return True
            if any(b is blob for b in self.params.get(name, ())):
                return False
        return True

    # ---- saving ----------------------------------------------------------------

    def save(self, path: str | os.PathLike, write_diff: bool = False) -> None:
        """Write the params to a binary .caffemodel (atomically), as Net::ToProto; a
        float64 net's in ``double_data``; with ``write_diff`` the diffs too."""
        from bpinspect.io.caffemodel import write_caffemodel

        layers = [
            (name, self.layers[self._layer_index[name]].type, [to_host(b.data) for b in blobs])
            for name, blobs in self.params.items()
        ]
        diffs = [[to_host(b.diff) for b in blobs] for blobs in self.params.values()] \
            if write_diff else None
        write_caffemodel(os.fspath(path), layers, self.name, diffs)

    def save_hdf5(self, path: str | os.PathLike, write_diff: bool = False) -> None:
        """Write the params to an HDF5 weights file (atomically), as Net::ToHDF5."""
        layers = [(name, self.params.get(name, [])) for name in self.layer_names]
        write_net_hdf5(path, layers, self._owns_param, write_diff)

    def __repr__(self) -> str:
        return (
            f"Net({self.name!r}, phase={self.phase!r}, {len(self.layers)} layers, "
            f"device={self.device.name!r}, dtype={self.dtype})"
        )
