"""Layer family: data. Layers with no bottoms that give the net its input blobs.

- Input (src/caffe/layers/input_layer.cpp): ``input_param.shape`` once per
  top, or once for all tops. Forward writes nothing: the data is what the
  user (or the session) put in the blob.
- DummyData (dummy_data_layer.cpp): ``shape`` (or the legacy
  ``num``/``channels``/``height``/``width``) once per top or once for all, and
  ``data_filler`` 0 times (constant 0), once for all tops, or once per top.
  As in Caffe, a top with a constant filler is filled once (Caffe does it in
  SetUp; here on the first forward, and again only if the blob's array was
  replaced), any other filler refills its top on every forward, from
  ``backend.rng(seed)`` on the host (one seed, the same values on the CPU and
  the GPU); ``reset_rng(seed)`` re-seeds it, so a replay draws
  the same values.

Neither has a backward.
"""

from __future__ import annotations

from typing import Any

from bpinspect.engine import fillers
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import DrawsRandom, Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.proto import caffe_pb2


def _blob_shape(layer: Layer, shape: Any, i: int) -> Shape:
    dims = tuple(int(d) for d in shape.dim)
    if any(d < 0 for d in dims):
        layer.fail(f"the shape of top {i} has a negative dim: {dims}")
    return dims


class _NoBottoms(Layer):
    exact_num_bottoms = 0
    min_num_tops = 1

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """No bottoms, no params: nothing to do."""

    def _per_top(self, what: str, n: int, allow_zero: bool) -> None:
        num_tops = len(self.param.top)
        if n == 1 or n == num_tops or (allow_zero and n == 0):
            return
        allowed = "0, 1" if allow_zero else "1"
        self.fail(f"{what} must be given {allowed} or {num_tops} (once per top) times, "
                  f"got {n}")


@register("Input")
class Input(_NoBottoms):
    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shapes = list(self.param.input_param.shape)
        self._per_top("input_param.shape", len(shapes), allow_zero=False)
        return [_blob_shape(self, shapes[0 if len(shapes) == 1 else i], i)
                for i in range(len(self.param.top))]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        """The input blobs hold what the user put there; nothing to compute."""


class Fed(Input):
    """A data layer (Data, ImageData, ...) whose tops the caller feeds, as Input
    blobs: its source is never opened. A fed top has the shape given; an unfed
    label top of a one-top-per-item layer is ``(N,)``, N the fed data's batch,
    as Caffe's label top; any other unfed top is an error."""

    def __init__(self, param: Any, phase: str, feeds: dict[str, Shape]) -> None:
        super().__init__(param, phase)
        self.type = param.type  # show the user the layer's own type
        self.feeds = feeds

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        tops = list(self.param.top)
        fed = [self.feeds[t] for t in tops if t in self.feeds]
        shapes: list[Shape] = []
        for i, name in enumerate(tops):
            if name in self.feeds:
                shapes.append(tuple(self.feeds[name]))
            elif i == 1 and self.type != "HDF5Data" and fed and len(fed[0]):
                shapes.append((int(fed[0][0]),))
            else:
                missing = [t for t in tops if t not in self.feeds]
                self.fail(f"tops {', '.join(missing)} are not fed: give --input NAME=FILE "
                          "for every top, or for none to read the source")
        return shapes


@register("DummyData")
class DummyData(DrawsRandom, _NoBottoms):
    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.dummy_data_param
        if len(p.data_filler):
            self.data_fillers = list(p.data_filler)
        else:
            self.data_fillers = [caffe_pb2.FillerParameter(type="constant", value=0)]
        self._filled: dict[int, Any] = {}  # top index -> the array a constant filler filled

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        p = self.param.dummy_data_param
        num_tops = len(self.param.top)
        self._per_top("dummy_data_param.data_filler", len(p.data_filler), allow_zero=True)
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        self._filled = {}
        if any(legacy):
            if len(p.shape):
                self.fail("both shape and the legacy num/channels/height/width were given")
            for name, values in zip(("num", "channels", "height", "width"), legacy, strict=True):
                self._per_top(f"dummy_data_param.{name}", len(values), allow_zero=False)
            return [tuple(int(v[0 if len(v) == 1 else i]) for v in legacy)
                    for i in range(num_tops)]
        self._per_top("dummy_data_param.shape", len(p.shape), allow_zero=False)
        return [_blob_shape(self, p.shape[0 if len(p.shape) == 1 else i], i)
                for i in range(num_tops)]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        for i, blob in enumerate(top):
            filler = self.data_fillers[i if len(self.data_fillers) > 1 else 0]
            if filler.type == "constant" and self._filled.get(i) is blob.data:
                continue
            xp = blob.xp
            blob.data = fillers.fill(filler, blob.shape, xp=xp, rng=self._generator(),
                                     dtype=blob.dtype)
            self._filled[i] = blob.data
