"""The layer contract, as Caffe's Layer (include/caffe/layer.hpp) and pycaffe's
Python layer (setup / forward / backward(top, propagate_down, bottom)) have it.

Life of a layer:

1. ``__init__(param, phase)`` only reads the LayerParameter into fields.
2. ``setup(bottom_shapes) -> top_shapes`` validates, computes the top shapes
   and ``param_shapes`` (Caffe's LayerSetUp + Reshape). It may be called
   again when the input shapes change; it must not touch ``blobs``.
3. The Net creates ``blobs`` (the learnable params, data + diff) from
   ``param_shapes`` and fills them, then calls ``forward`` and ``backward``.

``forward(bottom, top)`` writes ``top[i].data``. ``backward(top,
propagate_down, bottom)`` *assigns* ``bottom[i].diff`` where
``propagate_down[i]`` holds, and *adds* to ``blobs[j].diff`` where
``param_propagate_down[j]`` holds (Caffe accumulates param diffs; the
solver clears them). A layer computes with ``xp = get_array_module(...)``
of its inputs and never imports cupy.

``internals()`` returns the very arrays that backward reads (LRN ``scale``,
pooling ``argmax``, dropout ``mask``, softmax ``prob``, ...), never
recomputations: the debugger shows what the math used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from bpinspect import backend
from bpinspect.backend import Array
from bpinspect.errors import BpinspectError

if TYPE_CHECKING:
    from bpinspect.engine.blob import Blob

Shape = tuple[int, ...]
Phase = str  # "train" | "test"


class Layer(ABC):
    type: ClassVar[str] = ""
    # Blob counts, checked once in check_blob_counts (Caffe's ExactNumBottomBlobs...).
    exact_num_bottoms: ClassVar[int | None] = None
    min_num_bottoms: ClassVar[int | None] = None
    max_num_bottoms: ClassVar[int | None] = None
    exact_num_tops: ClassVar[int | None] = None
    min_num_tops: ClassVar[int | None] = None
    max_num_tops: ClassVar[int | None] = None
    # Caffe gives top[0] of a "*Loss" layer loss_weight 1 unless set.
    is_loss: ClassVar[bool] = False

    def __init__(self, param: Any, phase: Phase = "test") -> None:
        self.param = param  # caffe_pb2.LayerParameter (V2, upgraded)
        self.name: str = param.name
        self.phase: Phase = phase
        self.blobs: list[Blob] = []
        self.param_shapes: list[Shape] = []
        self.param_propagate_down: list[bool] = []
        # Where relative paths in the layer (data sources, mean files) are looked up
        # when the working directory has no such file: the net file's directory.
        self.base_dir: str | None = None

    # -- contract -------------------------------------------------------
    @abstractmethod
    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        """Validate, set ``param_shapes``, return the top shapes."""

    @abstractmethod
    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Write ``top[i].data`` from ``bottom`` and the params."""

    @abstractmethod
    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """Assign bottom diffs, accumulate param diffs."""

    def internals(self) -> dict[str, Array]:
        """Named arrays that backward reuses; empty for layers that keep none."""
        return {}

    def param_fillers(self) -> list[Any]:
        """A FillerParameter (or None for Caffe's default) per param blob."""
        return [None] * len(self.param_shapes)

    def allow_force_backward(self, bottom_index: int) -> bool:
        """False for bottoms no gradient can flow to (labels); Caffe's hook."""
        return True

    def has_gradient(self, bottom_index: int) -> bool:
        """Whether the top depends smoothly on this bottom, for a gradient check: as
        ``allow_force_backward``, except where Caffe lets force_backward ask for a
        gradient the layer then refuses (Filter's selector)."""
        return self.allow_force_backward(bottom_index)

    def reset_rng(self, seed: int) -> None:  # noqa: B027 (a hook: most layers draw nothing)
        """Re-seed a stochastic layer (Dropout), so a replay draws the same mask."""

    # -- helpers ---------------------------------------------------------
    def check_blob_counts(self, num_bottoms: int, num_tops: int) -> None:
        def check(what: str, n: int, exact: int | None, lo: int | None, hi: int | None) -> None:
            if exact is not None and n != exact:
                self.fail(f"takes {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                self.fail(f"takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                self.fail(f"takes at most {hi} {what} blob(s), got {n}")

        check("bottom", num_bottoms, self.exact_num_bottoms, self.min_num_bottoms,
              self.max_num_bottoms)
        check("top", num_tops, self.exact_num_tops, self.min_num_tops, self.max_num_tops)

    def fail(self, message: str) -> None:
        """Raise a one-line error naming this layer and its type."""
        raise BpinspectError(f"layer {self.name!r} ({self.type}): {message}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DrawsRandom:
    """Mixin for a layer that draws random numbers (Dropout's mask, DummyData's
    gaussian fill): one generator, re-made by ``reset_rng``, so that a replayed
    pass draws the same values. List it before the Layer base."""

    _seed: int = 0
    _rng: Any = None

    def reset_rng(self, seed: int) -> None:
        self._seed = int(seed)
        self._rng = None

    def _generator(self) -> Any:
        if self._rng is None:
            self._rng = backend.rng(self._seed)
        return self._rng
