"""Layer ``Data``: Datum records from an LMDB or a LevelDB (``data_layer.cpp``).

- ``data_param``: ``source``, ``backend`` (LEVELDB unless set), ``batch_size``.
- Tops: ``data`` of ``(batch_size, C, H', W')``, the shape the transformer
  infers from the **first record** (``InferBlobShape``), and optionally
  ``label`` of ``(batch_size,)``, each record's ``label``.
- Batch ``k`` is records ``(k * batch_size + m) mod N``, ``m < batch_size``,
  in key order: after the last record Caffe's cursor goes back to the first.
- Each record goes through the DataTransformer (:mod:`.transformer`); an
  encoded record is decoded as ``force_color`` / ``force_gray`` say.
- ``rand_skip`` is ignored, as in Caffe's DataLayer (only ImageData honours
  it); a note says so.

The database is opened in ``setup`` (Caffe opens it in the constructor); a
Data layer whose tops are fed (``--input``) never opens it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError
from bpinspect.io.datum import datum_to_array, parse_datum
from bpinspect.io.db import BACKENDS, Database, open_db
from bpinspect.layers.base import Shape
from bpinspect.layers.data_source import STREAM_TRANSFORM, Batch, DataSource, describe_indices
from bpinspect.layers.registry import register
from bpinspect.layers.transformer import DataTransformer

__all__ = ["Data"]


@register("Data")
class Data(DataSource):
    min_num_tops = 1
    max_num_tops = 2

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.data_param
        self.source: str = p.source
        self.backend: str = BACKENDS.get(p.backend, str(p.backend))
        self.batch_size = int(p.batch_size)
        self.transformer = DataTransformer(param.transform_param, phase, self.where)
        self.db: Database | None = None
        self._item_shape: Shape = ()
        if p.rand_skip:
            self.note(f"rand_skip {p.rand_skip} is ignored: Caffe's Data layer does not use "
                      "it (only ImageData does); batch 0 starts at the first record")

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        self.check_batch_size(self.batch_size, "data_param")
        if not self.source:
            self.fail("data_param.source is not set")
        if self.db is None:
            self.db = open_db(self.source, self.param.data_param.backend, self.where,
                              self.base_dir)
        self.transformer.load_mean(self.base_dir)
        datum, item, what = self._record(0)
        if not datum.encoded and (self.transformer.force_color or self.transformer.force_gray):
            self.note("force_color / force_gray apply to encoded records only; these are raw, "
                      "so Caffe ignores them")
        self._item_shape = self.transformer.infer_shape(item.shape, what)
        tops: list[Shape] = [(self.batch_size, *self._item_shape)]
        if len(self.param.top) > 1:
            tops.append((self.batch_size,))
        return tops

    def _record(self, index: int) -> tuple[Any, np.ndarray, Any]:
        assert self.db is not None
        what = _RecordName(self, self.db.keys[index])
        datum = parse_datum(self.db.value(index), what)
        return datum, datum_to_array(datum, what, self.transformer.decode_mode), what

    def read_batch(self, k: int, dtype: Any) -> Batch:
        if self.db is None:
            self.fail("forward before setup")
        assert self.db is not None
        b, n = self.batch_size, len(self.db)
        indices = (k * b + np.arange(b, dtype=np.int64)) % n
        rng = self.rng(STREAM_TRANSFORM, k)
        data = np.empty((b, *self._item_shape), dtype=dtype)
        labels = np.empty(b, dtype=dtype)
        items, whats, draws = [], [], []
        fits: set[tuple[int, ...]] = set()  # raw shapes that transform to the top's shape
        for m, index in enumerate(indices):
            datum, item, what = self._record(int(index))
            if item.shape not in fits:
                shape = self.transformer.infer_shape(item.shape, what)
                if shape != self._item_shape:
                    raise BpinspectError(f"{what}: gives an item of {shape}, the first record "
                                         f"{self._item_shape}; bpinspect needs one shape for all")
                fits.add(item.shape)
            draws.append(self.transformer.draw(rng, item.shape, what))  # Caffe's draw order
            items.append(item)
            whats.append(what)
            labels[m] = datum.label
        self.transformer.transform_batch(items, draws, dtype, data, whats)
        offsets = np.array([(h, w) for h, w, _ in draws], dtype=np.int64).reshape(b, 2)
        mirrored = np.array([mirror for _, _, mirror in draws], dtype=bool)
        tops = [data, labels][: len(self.param.top)]
        where = f"{self.db.backend} {self.source}"
        return Batch(tops, {"record": indices, "crop_offset": offsets, "mirror": mirrored},
                     f"{describe_indices(indices, 'records', n)}, {where}")


class _RecordName:
    """How errors name a record (``layer 'mnist' (Data): LMDB source 'x': record '42'``),
    made only when an error needs it: a batch reads many records and fails on few."""

    __slots__ = ("key", "layer")

    def __init__(self, layer: Data, key: bytes) -> None:
        self.layer, self.key = layer, key

    def __str__(self) -> str:
        layer = self.layer
        assert layer.db is not None
        return (f"{layer.where}: {layer.db.backend} source {layer.source!r}: record "
                f"{self.key.decode('utf-8', 'backslashreplace')!r}")

    def __format__(self, spec: str) -> str:  # f"{what}: ..." in the readers' errors
        return format(str(self), spec)
