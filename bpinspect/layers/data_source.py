"""What every layer that reads a data source shares: the batch it reads next.

Caffe's data layers (``src/caffe/layers/base_data_layer.cpp``) read ahead on
a prefetch thread, moving a cursor; a debugger steps back and replays, so
here a batch is a pure function of its number ``k``, the layer's seed and
the source, and the layer keeps only which batch comes next:

- ``next_batch``: the batch the next ``forward`` reads (0 at first); forward
  reads it, then adds one. The session sets it to replay a batch.
- ``last_batch`` and :meth:`DataSource.describe_batch`: what the last
  forward read, for the header and the dump.
- :meth:`DataSource.internals`: that batch's record indices, crop offsets
  ``(h, w)`` and mirror flags per item (and what else a source adds).
- ``notes``: one-line remarks for the user (a parameter Caffe ignores...).

``reset_rng(seed)`` (called before every forward) sets the seed and leaves
the batch position alone. Random draws come from :meth:`DataSource.rng`,
a generator seeded from ``(seed, stream, k)``, so batch ``k`` crops and
mirrors the same whatever ran before it.

The top shapes are fixed at ``setup``; a batch of another shape (Caffe
reshapes its tops to each batch's first item and lets the net reshape) is
an error here, naming the item.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpinspect.engine.blob import Blob
from bpinspect.layers.base import DrawsRandom, Layer

__all__ = ["Batch", "DataSource", "describe_indices"]

# Independent random streams of one layer: never two draws from one sequence.
STREAM_TRANSFORM = 0  # crop offsets and mirror flags, per batch
STREAM_SHUFFLE = 1    # the order of an epoch (ImageData lines, HDF5 files)
STREAM_SKIP = 2       # ImageData's rand_skip
STREAM_ROWS = 3       # HDF5Data: the order of rows within a file, per visit


@dataclass
class Batch:
    """One batch as read: the top arrays (host), internals and a description."""

    tops: list[np.ndarray]
    internals: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""


class DataSource(DrawsRandom, Layer):
    """Base of Data, ImageData, HDF5Data and MemoryData; see the module docstring."""

    exact_num_bottoms = 0

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self.next_batch: int = 0
        self.last_batch: int | None = None
        self.notes: list[str] = []
        self._last: Batch | None = None

    @property
    def where(self) -> str:
        """How errors name this layer: ``layer 'mnist' (Data)``."""
        return f"layer {self.name!r} ({self.type})"

    def note(self, message: str) -> None:
        line = f"{self.where}: {message}"
        if line not in self.notes:
            self.notes.append(line)

    def rng(self, stream: int, *numbers: int) -> np.random.Generator:
        """A generator for ``stream`` seeded from the layer's seed and ``numbers``
        (the batch, the epoch...): the same draws on every replay."""
        return np.random.default_rng([self._seed % 2**64, stream, *numbers])

    @abstractmethod
    def read_batch(self, k: int, dtype: Any) -> Batch:
        """Batch ``k`` (``k >= 0``), its tops as host arrays of ``dtype``."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        k = int(self.next_batch)
        if k < 0:
            self.fail(f"next_batch is {k}; batches are numbered from 0")
        batch = self.read_batch(k, top[0].dtype)
        for blob, array in zip(top, batch.tops, strict=True):
            if tuple(array.shape) != blob.shape:
                self.fail(f"batch {k} gives top {blob.name!r} the shape "
                          f"{tuple(array.shape)}, but it was set up as {blob.shape} "
                          "(Caffe would reshape the net; bpinspect keeps its shapes)")
            blob.data[...] = blob.xp.asarray(array, dtype=blob.dtype)
        self._last = batch
        self.last_batch = k
        self.next_batch = k + 1

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        """No bottoms, no params: nothing to do (Caffe's data layers have no Backward)."""

    def read_state(self) -> tuple[Batch | None, int | None]:
        """What the last forward read, for a debugger that re-enters an earlier pass."""
        return self._last, self.last_batch

    def restore_read_state(self, state: tuple[Batch | None, int | None]) -> None:
        self._last, self.last_batch = state

    def describe_batch(self) -> str:
        """What the last forward read, e.g. ``records 128–191 of 60000, LMDB path``."""
        if self._last is None:
            return "no batch read yet"
        return self._last.description

    def internals(self) -> dict[str, Any]:
        if self._last is None:
            return {}
        return dict(self._last.internals)

    def check_batch_size(self, batch_size: int, param: str) -> None:
        if batch_size <= 0:
            self.fail(f"{param}.batch_size must be positive, got {batch_size}")


def describe_indices(indices: Any, noun: str, total: int) -> str:
    """``records 128–191 of 60000``; a wrap shows as ``59968–59999, 0–31``; more
    than three runs (a shuffled order) as ``64 records of 60000 (shuffled)``."""
    runs: list[tuple[int, int]] = []
    for i in (int(v) for v in indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    if len(runs) > 3:
        return f"{len(indices)} {noun} of {total} (shuffled)"
    text = ", ".join(f"{a}–{b}" if b > a else f"{a}" for a, b in runs)
    return f"{noun} {text} of {total}"
