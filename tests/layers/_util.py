"""Helpers shared by the layer tests: build a layer from prototxt text, run it."""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from bpinspect.engine.blob import Blob
from bpinspect.layers.registry import layer_class
from bpinspect.proto import caffe_pb2


def make_layer(text: str, phase: str = "test"):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    return layer_class(param.type, param.name)(param, phase)


def run_forward(layer, bottoms, params=None, xp=np):
    """Set up ``layer`` on host arrays ``bottoms`` and return (top arrays, bottom blobs, tops)."""
    bottom_blobs = []
    for i, b in enumerate(bottoms):
        blob = Blob(f"b{i}", b.shape, xp, b.dtype)
        blob.data = xp.asarray(b)
        bottom_blobs.append(blob)
    shapes = layer.setup([b.shape for b in bottom_blobs])
    tops = [Blob(f"t{i}", s, xp, bottoms[0].dtype) for i, s in enumerate(shapes)]
    params = params or []
    layer.blobs = []
    for i, p in enumerate(params):
        blob = Blob(f"p{i}", p.shape, xp, p.dtype)
        blob.data = xp.asarray(p)
        layer.blobs.append(blob)
    layer.param_propagate_down = [True] * len(params)
    layer.forward(bottom_blobs, tops)
    return [np.asarray(t.data.get() if hasattr(t.data, "get") else t.data) for t in tops], \
        bottom_blobs, tops


def distinct_values(shape, seed=0):
    """Values with no ties (a shuffled ramp), so max pooling has no kinks."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n - 0.5).astype(np.float64)
