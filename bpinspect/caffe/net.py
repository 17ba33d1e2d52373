"""pycaffe's ``caffe.Net`` over bpinspect's engine Net.

Follows ``python/caffe/pycaffe.py`` and ``python/caffe/_caffe.cpp``:
the constructor forms, the OrderedDict views (``blobs``, ``params``,
``layer_dict``, ``top_names``, ``bottom_names``, ``blob_loss_weights``),
``forward``/``backward`` with ``start``/``end``/``blobs=``/``diffs=`` and the
input or output arrays as keywords, the batched ``forward_all`` and
``forward_backward_all``, and Caffe's ``Net`` methods (``reshape``,
``copy_from``, ``share_with``, ``save``, ``save_hdf5``, ``load_hdf5``,
``clear_param_diffs``, ``set_input_arrays``).

As in Caffe, ``forward`` reshapes the net when an input blob changed shape
(Caffe's every ``Layer::Forward`` calls ``Reshape``), and the loss tops'
diffs hold their loss weights from construction on, so ``backward()`` right
after ``forward()`` computes the loss gradient. Blob ``data``/``diff`` are
NumPy arrays written in place; on a GPU they are host copies, written back
before the net next runs (Caffe's SyncedMemory, roughly).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from itertools import zip_longest
from typing import Any

import numpy as np

from bpinspect.caffe import _mode
from bpinspect.engine.net import Net as EngineNet
from bpinspect.errors import BpinspectError
from bpinspect.io.net_hdf5 import is_hdf5
from bpinspect.layers.python_layer import Blob, PythonLayer, Staging

__all__ = ["Net"]


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, bytes, os.PathLike))


def _constructor_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The three forms: Net(file, phase), Net(file, weights, phase) and
    Net(file, phase, level=0, stages=None, weights=None)."""
    known = {"phase", "level", "stages", "weights"}
    unknown = set(kwargs) - known
    if unknown:
        raise TypeError(f"Net() got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {"phase": None, "level": 0, "stages": None, "weights": None}
    if len(args) >= 2 and _is_path(args[0]):  # legacy Net(file, weights, phase)
        if len(args) > 2:
            raise TypeError("Net(network_file, pretrained_file, phase) takes 3 arguments")
        out["weights"], out["phase"] = args
    else:
        for name, value in zip(("phase", "level", "stages", "weights"), args, strict=False):
            out[name] = value
        if len(args) > 4:
            raise TypeError("Net() takes at most 5 positional arguments")
    for name, value in kwargs.items():
        out[name] = value
    if out["phase"] is None:
        raise TypeError("Net() needs a phase: caffe.TRAIN or caffe.TEST")
    return out


class _LayerView:
    """pycaffe's view of a (C++) layer: ``type``, ``blobs`` and ``reshape``."""

    def __init__(self, net: Net, index: int) -> None:
        self._net = net
        self._index = index

    @property
    def type(self) -> str:
        return self._net._net.layers[self._index].type

    @property
    def name(self) -> str:
        return self._net._net.layer_names[self._index]

    @property
    def blobs(self) -> list[Blob]:
        return [Blob(b, self._net._staging) for b in self._net._net.layers[self._index].blobs]

    def reshape(self, bottom: list[Any] | None = None, top: list[Any] | None = None) -> None:
        """Layer::Reshape: the tops' shapes from the bottoms' (the net's own by default)."""
        engine = self._net._net
        self._net._staging.flush()
        bottoms = engine.bottom_blobs(self._index) if bottom is None else bottom
        tops = engine.top_blobs(self._index) if top is None else top
        shapes = engine.layers[self._index].setup([tuple(b.shape) for b in bottoms])
        for blob, shape in zip(tops, shapes, strict=True):
            if isinstance(blob, Blob):
                blob.reshape(*shape)
            else:
                blob.reshape(tuple(shape))

    def __repr__(self) -> str:
        return f"<caffe Layer {self.name!r} ({self.type})>"


class Net:
    """pycaffe's Net; the engine Net it runs on is ``engine``."""

    def __init__(self, network_file: Any, *args: Any, **kwargs: Any) -> None:
        options = _constructor_args(args, kwargs)
        weights = options["weights"]
        if weights is not None and not os.path.exists(os.fspath(weights)):
            raise BpinspectError(f"Could not open file {os.fspath(weights)}")
        stages = options["stages"]
        engine = EngineNet(  # a .caffemodel or an HDF5 weights file, as Caffe tells them
            network_file,
            weights,
            phase=options["phase"],
            level=int(options["level"] or 0),
            stages=tuple(stages) if stages is not None else (),
            device=_mode.current_device(),
            seed=_mode.current_seed(),
        )
        self._attach(engine)

    @classmethod
    def wrap(cls, engine: EngineNet) -> Net:
        """The pycaffe view of an engine Net built elsewhere (a solver's)."""
        net = cls.__new__(cls)
        net._attach(engine)
        return net

    def _attach(self, engine: EngineNet) -> None:
        self._net = engine
        self._staging = Staging(engine.device.is_gpu)
        self._blob_views = OrderedDict((n, Blob(b, self._staging)) for n, b in engine.blobs.items())
        self._layer_views: list[Any] = [
            layer.user_layer if isinstance(layer, PythonLayer) else _LayerView(self, i)
            for i, layer in enumerate(engine.layers)
        ]
        self._hooks: dict[str, list[Any]] = {k: [] for k in ("bf", "af", "bb", "ab")}
        engine.seed_loss_diffs()  # SetLossWeights: from construction on, as in Caffe
        for i, layer in enumerate(engine.layers):
            if layer.type == "DummyData":  # Caffe fills its constant tops at setup, so a
                engine.forward_layer(i)   # script may overwrite them before forward
        self._input_shapes = self._source_shapes()

    @property
    def engine(self) -> EngineNet:
        return self._net

    # ---- names and views -------------------------------------------------------

    @property
    def _layer_names(self) -> list[str]:
        return list(self._net.layer_names)

    @property
    def _blob_names(self) -> list[str]:
        return list(self._net.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self._blob_views.values())

    @property
    def blobs(self) -> OrderedDict[str, Blob]:
        """Every blob, input to output (the Split layers' too), by name."""
        return OrderedDict(self._blob_views)

    @property
    def layers(self) -> list[Any]:
        """The layers; a Python layer is the user's own object, as in pycaffe."""
        return list(self._layer_views)

    @property
    def layer_dict(self) -> OrderedDict[str, Any]:
        return OrderedDict(zip(self._net.layer_names, self._layer_views, strict=True))

    @property
    def params(self) -> OrderedDict[str, list[Blob]]:
        """The learnable blobs of each layer that has some, by layer name."""
        return OrderedDict(
            (name, [Blob(b, self._staging) for b in self._net.layers[i].blobs])
            for i, name in enumerate(self._net.layer_names)
            if len(self._net.layers[i].blobs)
        )

    @property
    def _blob_loss_weights(self) -> list[float]:
        return [float(self._net.loss_weights.get(name, 0.0)) for name in self._net.blobs]

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        return OrderedDict(zip(self._net.blobs, self._blob_loss_weights, strict=True))

    @property
    def inputs(self) -> list[str]:
        return list(self._net.inputs)

    @property
    def outputs(self) -> list[str]:
        return list(self._net.outputs)

    @property
    def _inputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self._net.inputs]

    @property
    def _outputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self._net.outputs]

    def _top_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(n) for n in self._net.top_names[self._net.layer_names[i]]]

    def _bottom_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(n) for n in self._net.bottom_names[self._net.layer_names[i]]]

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((n, list(self._net.top_names[n])) for n in self._net.layer_names)

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((n, list(self._net.bottom_names[n])) for n in self._net.layer_names)

    # ---- running ---------------------------------------------------------------

    def _source_shapes(self) -> list[tuple[int, ...]]:
        engine = self._net
        return [b.shape for i in range(len(engine.layers)) if not engine.bottom_names[
            engine.layer_names[i]] for b in engine.top_blobs(i)]

    def _index(self, layer: str) -> int:
        return self._net.layer_index(layer)

    def _forward(self, start: int, end: int) -> float:
        """Net::ForwardFromTo by layer index; the loss."""
        self._staging.flush()
        if self._source_shapes() != self._input_shapes:
            self.reshape()
        loss = 0.0
        for i in range(start, end + 1):
            for hook in self._hooks["bf"]:
                hook(i)
            loss += self._net.forward_layer(i)
            for hook in self._hooks["af"]:
                hook(i)
        return loss

    def _backward(self, start: int, end: int) -> None:
        """Net::BackwardFromTo by layer index (start >= end)."""
        self._staging.flush()
        for i in range(start, end - 1, -1):
            for hook in self._hooks["bb"]:
                hook(i)
            self._net.backward_layer(i)
            for hook in self._hooks["ab"]:
                hook(i)

    def before_forward(self, run: Any) -> None:
        self._hooks["bf"].append(run)

    def after_forward(self, run: Any) -> None:
        self._hooks["af"].append(run)

    def before_backward(self, run: Any) -> None:
        self._hooks["bb"].append(run)

    def after_backward(self, run: Any) -> None:
        self._hooks["ab"].append(run)

    def forward(self, blobs: list[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Set the input blobs from ``kwargs``, run layers start..end (inclusive).

        Returns ``{blob: data}`` for the outputs (``end``'s tops when given) and ``blobs``.
        """
        blobs = list(blobs or [])
        start_ind = self._index(start) if start is not None else 0
        if end is not None:
            end_ind = self._index(end)
            outputs = set(self._net.top_names[end] + blobs)
        else:
            end_ind = len(self._net.layers) - 1
            outputs = set(self.outputs + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise BpinspectError(
                    f"Input blob arguments do not match net inputs: got "
                    f"{', '.join(sorted(kwargs))}, the net's inputs are {', '.join(self.inputs)}"
                )
            for name, array in kwargs.items():
                self._set_batch(name, array, "data", "Input is not batch sized")
        self._forward(start_ind, end_ind)
        return {out: self._blob_views[out].data for out in outputs}

    def backward(self, diffs: list[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Set the output diffs from ``kwargs``, run layers start..end down (inclusive).

        Returns ``{blob: diff}`` for the inputs (``end``'s bottoms when given) and ``diffs``.
        """
        diffs = list(diffs or [])
        start_ind = self._index(start) if start is not None else len(self._net.layers) - 1
        if end is not None:
            end_ind = self._index(end)
            outputs = set(self._net.bottom_names[end] + diffs)
        else:
            end_ind = 0
            outputs = set(self.inputs + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise BpinspectError(
                    f"Top diff arguments do not match net outputs: got "
                    f"{', '.join(sorted(kwargs))}, the net's outputs are {', '.join(self.outputs)}"
                )
            for name, array in kwargs.items():
                self._set_batch(name, array, "diff", "Diff is not batch sized")
        self._backward(start_ind, end_ind)
        return {out: self._blob_views[out].diff for out in outputs}

    def _set_batch(self, name: str, array: Any, kind: str, what: str) -> None:
        view = self._blob_views[name]
        array = np.asarray(array)
        if array.ndim == 0 or array.shape[0] != view.shape[0]:
            raise BpinspectError(
                f"{what}: blob {name!r} holds a batch of {view.shape[0]}, the array given has "
                f"shape {tuple(array.shape)}"
            )
        getattr(view, kind)[...] = array

    def _batch(self, arrays: dict[str, Any]):  # noqa: ANN202 (a generator of dicts)
        """The arrays cut into batches of the net's batch size, the last one zero-padded."""
        if not arrays:
            return
        num = len(next(iter(arrays.values())))
        batch_size = next(iter(self._blob_views.values())).shape[0]
        for i in range(0, num - num % batch_size, batch_size):
            yield {name: a[i:i + batch_size] for name, a in arrays.items()}
        remainder = num % batch_size
        if remainder:
            padded = {}
            for name, a in arrays.items():
                a = np.asarray(a)
                padding = np.zeros((batch_size - remainder,) + a.shape[1:], dtype=a.dtype)
                padded[name] = np.concatenate([a[-remainder:], padding])
            yield padded

    def forward_all(self, blobs: list[str] | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """``forward`` over the inputs in batches; outputs (and ``blobs``) stacked."""
        all_outs: dict[str, list[Any]] = {out: [] for out in set(self.outputs + (blobs or []))}
        for batch in self._batch(kwargs):
            for out, data in self.forward(blobs=blobs, **batch).items():
                all_outs[out].extend(np.array(data, copy=True))
        result = {out: np.asarray(values) for out, values in all_outs.items()}
        return _unpad(result, kwargs)

    def forward_backward_all(self, blobs: list[str] | None = None,
                             diffs: list[str] | None = None, **kwargs: Any) -> tuple[dict, dict]:
        """``forward`` and ``backward`` in batches: inputs and output diffs from ``kwargs``."""
        all_outs: dict[str, list[Any]] = {out: [] for out in set(self.outputs + (blobs or []))}
        all_diffs: dict[str, list[Any]] = {d: [] for d in set(self.inputs + (diffs or []))}
        forward_batches = self._batch({k: kwargs[k] for k in self.inputs if k in kwargs})
        backward_batches = self._batch({k: kwargs[k] for k in self.outputs if k in kwargs})
        for fb, bb in zip_longest(forward_batches, backward_batches, fillvalue={}):
            for out, data in self.forward(blobs=blobs, **fb).items():
                all_outs[out].extend(np.array(data, copy=True))
            for name, diff in self.backward(diffs=diffs, **bb).items():
                all_diffs[name].extend(np.array(diff, copy=True))
        outs = _unpad({k: np.asarray(v) for k, v in all_outs.items()}, kwargs)
        grads = _unpad({k: np.asarray(v) for k, v in all_diffs.items()}, kwargs)
        return outs, grads

    def reshape(self) -> None:
        """Net::Reshape: every layer's tops from its bottoms' (new) shapes."""
        self._staging.flush()
        self._net.reshape()
        self._input_shapes = self._source_shapes()

    def clear_param_diffs(self) -> None:
        self._staging.flush()
        self._net.clear_param_diffs(at_once=True)  # a caller may hold the diff arrays

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """The arrays a MemoryData first layer serves; labels ``(N,)`` or ``(N, 1, 1, 1)``."""
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, np.newaxis, np.newaxis, np.newaxis]
        self._net.set_input_arrays(np.ascontiguousarray(data), np.ascontiguousarray(labels))

    # ---- weights ---------------------------------------------------------------

    def copy_from(self, weights: Any) -> None:
        """CopyTrainedLayersFrom: a .caffemodel (or a save_hdf5 file), by layer name."""
        self._staging.flush()
        self._net.copy_from(weights)

    def share_with(self, other: Any) -> None:
        """ShareTrainedLayersWith: the params' data (not their diffs) of ``other``'s
        layers of the same name become this net's; the diffs stay this net's own."""
        source = other._net if isinstance(other, Net) else other
        self._staging.flush()
        for i, name in enumerate(source.layer_names):
            if name not in self._net.layer_names:
                continue
            theirs = source.layers[i].blobs
            mine = self._net.layers[self._net.layer_index(name)].blobs
            if len(theirs) != len(mine):
                raise BpinspectError(f"share_with: incompatible number of blobs for layer "
                                     f"{name!r} ({len(theirs)} and {len(mine)})")
            for j, (src, dst) in enumerate(zip(theirs, mine, strict=True)):
                if src.shape != dst.shape:
                    raise BpinspectError(
                        f"share_with: cannot share param {j} weights from layer {name!r}; "
                        f"shape mismatch. Source param shape is {src.shape}; target param "
                        f"shape is {dst.shape}"
                    )
                dst.data = src.data

    def save(self, filename: Any) -> None:
        """The params as a binary .caffemodel (Net::ToProto)."""
        self._staging.flush()
        self._net.save(filename)

    def save_hdf5(self, filename: Any) -> None:
        """Net::ToHDF5: group ``data/<layer>/<j>`` per param (shared ones once)."""
        self._staging.flush()
        self._net.save_hdf5(os.fspath(filename))

    def load_hdf5(self, filename: Any) -> None:
        """CopyTrainedLayersFromHDF5: the params of a ``save_hdf5`` file, by layer name."""
        path = os.fspath(filename)
        if not is_hdf5(path):
            raise BpinspectError(f"{path}: not an HDF5 file (load_hdf5 reads Net.save_hdf5's)")
        self._staging.flush()
        self._net.copy_from(path)

    def __repr__(self) -> str:
        return f"<caffe Net {self._net.name!r} ({len(self._net.layers)} layers)>"


def _unpad(arrays: dict[str, np.ndarray], given: dict[str, Any]) -> dict[str, np.ndarray]:
    """Drop the zero padding of the last batch (beyond the number of items given)."""
    if not arrays or not given:
        return arrays
    num = len(next(iter(given.values())))
    return {name: a[:num] for name, a in arrays.items()}
