"""Layer test harness shared by the layer-family tests: build a layer from its Caffe
type and text params, set it up on arrays and run it forward (NumPy or CuPy)."""

from __future__ import annotations

from google.protobuf import text_format

from bpinspect.engine.blob import Blob
from bpinspect.layers import layer_class
from bpinspect.proto import caffe_pb2


def make_layer(type_name, text="", *, phase="test", bottoms=("x",), tops=("y",)):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    param.name, param.type = "layer", type_name
    param.bottom.extend(bottoms)
    param.top.extend(tops)
    return layer_class(type_name)(param, phase)


def blob(xp, values, name="blob"):
    values = xp.asarray(values)
    b = Blob(name, tuple(values.shape), xp, values.dtype)
    b.data = values.copy()
    return b


def run_forward(layer, xp, bottoms, params=()):
    bottom_blobs = [blob(xp, b, f"bottom{i}") for i, b in enumerate(bottoms)]
    shapes = layer.setup([b.shape for b in bottom_blobs])
    dtype = bottom_blobs[0].dtype
    top_blobs = [Blob(f"top{i}", s, xp, dtype) for i, s in enumerate(shapes)]
    layer.blobs = [blob(xp, p, f"param{i}") for i, p in enumerate(params)]
    layer.param_propagate_down = [True] * len(layer.blobs)
    layer.forward(bottom_blobs, top_blobs)
    return bottom_blobs, top_blobs


def assert_passed(results):
    assert results and all(r.passed for r in results), results
