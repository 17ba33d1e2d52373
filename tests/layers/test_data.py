"""Input and DummyData: shapes per top, fillers, refilling, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.errors import BpinspectError
from bpinspect.layers import layer_class
from bpinspect.proto import caffe_pb2


def make_layer(type_name, text="", *, phase="test", bottoms=("x",), tops=("y",)):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    param.name, param.type = "layer", type_name
    param.bottom.extend(bottoms)
    param.top.extend(tops)
    return layer_class(type_name)(param, phase)


def set_up(layer, xp, dtype=np.float32):
    shapes = layer.setup([])
    return [Blob(f"top{i}", s, xp, dtype) for i, s in enumerate(shapes)]


# ---- Input ---------------------------------------------------------------------------


def test_input_one_shape_per_top(xp):
    layer = make_layer("Input", "input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }",
                       bottoms=(), tops=("data", "label"))
    assert layer.setup([]) == [(2, 3), (4,)]


def test_input_one_shape_for_all_tops(xp):
    layer = make_layer("Input", "input_param { shape { dim: 1 dim: 3 dim: 5 dim: 5 } }",
                       bottoms=(), tops=("a", "b"))
    assert layer.setup([]) == [(1, 3, 5, 5), (1, 3, 5, 5)]


def test_input_forward_keeps_the_data_and_backward_does_nothing(xp):
    layer = make_layer("Input", "input_param { shape { dim: 2 dim: 2 } }", bottoms=())
    tops = set_up(layer, xp)
    tops[0].data = xp.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    tops[0].diff = xp.ones((2, 2), dtype=np.float32)
    layer.forward([], tops)
    layer.backward(tops, [], [])
    np.testing.assert_array_equal(to_host(tops[0].data), [[1, 2], [3, 4]])
    assert (to_host(tops[0].diff) == 1).all()
    assert layer.internals() == {}


@pytest.mark.parametrize("text", ["input_param { }",
                                  "input_param { shape { dim: 1 } shape { dim: 2 } }"])
def test_input_shape_count_errors(xp, text):
    layer = make_layer("Input", text, bottoms=(), tops=("a", "b", "c"))
    with pytest.raises(BpinspectError, match="input_param.shape"):
        layer.setup([])


# ---- DummyData -----------------------------------------------------------------------


def dummy(text, tops=("y",), phase="test"):
    return make_layer("DummyData", f"dummy_data_param {{ {text} }}", bottoms=(), tops=tops,
                      phase=phase)


def test_dummy_default_is_constant_zero(xp):
    layer = dummy("shape { dim: 2 dim: 3 }")
    tops = set_up(layer, xp)
    tops[0].data[...] = 5
    layer.forward([], tops)
    assert (to_host(tops[0].data) == 0).all()


def test_dummy_legacy_dims(xp):
    layer = dummy("num: 2 channels: 3 height: 4 width: 5 num: 1", tops=("a", "b"))
    assert layer.setup([]) == [(2, 3, 4, 5), (1, 3, 4, 5)]


def test_dummy_constant_is_filled_once(xp):
    layer = dummy('shape { dim: 3 } data_filler { type: "constant" value: 2 }')
    tops = set_up(layer, xp)
    layer.forward([], tops)
    assert (to_host(tops[0].data) == 2).all()
    tops[0].data[0] = 9  # what a user put in the blob stays, as in Caffe
    layer.forward([], tops)
    np.testing.assert_array_equal(to_host(tops[0].data), [9, 2, 2])
    tops[0].reshape((4,))  # a new array is filled again
    layer.forward([], tops)
    np.testing.assert_array_equal(to_host(tops[0].data), [2, 2, 2, 2])


def test_dummy_random_filler_refills_every_forward_and_replays(xp):
    layer = dummy('shape { dim: 200 dim: 300 } data_filler { type: "gaussian" std: 2 }')
    layer.reset_rng(5)
    tops = set_up(layer, xp)
    layer.forward([], tops)
    first = to_host(tops[0].data).copy()
    assert first.dtype == np.float32
    assert first.std() == pytest.approx(2.0, rel=0.02)
    assert abs(first.mean()) < 5 * 2 / math.sqrt(first.size)
    layer.forward([], tops)
    assert not np.array_equal(to_host(tops[0].data), first)
    layer.reset_rng(5)
    layer.forward([], tops)
    np.testing.assert_array_equal(to_host(tops[0].data), first)


def test_dummy_fillers_per_top(xp):
    layer = dummy('shape { dim: 4 } shape { dim: 2 dim: 2 } '
                  'data_filler { type: "constant" value: 1 } '
                  'data_filler { type: "uniform" min: 3 max: 4 }', tops=("a", "b"))
    tops = set_up(layer, xp, np.float64)
    layer.forward([], tops)
    assert (to_host(tops[0].data) == 1).all()
    b = to_host(tops[1].data)
    assert b.shape == (2, 2) and ((b >= 3) & (b <= 4)).all()


def test_dummy_one_filler_for_all_tops(xp):
    layer = dummy('shape { dim: 3 } data_filler { type: "constant" value: -1 }', tops=("a", "b"))
    tops = set_up(layer, xp)
    layer.forward([], tops)
    assert all((to_host(t.data) == -1).all() for t in tops)


@pytest.mark.parametrize(("text", "match"), [
    ("shape { dim: 2 } shape { dim: 3 }", "shape"),
    ("shape { dim: 2 } data_filler { } data_filler { }", "data_filler"),
    ("num: 1 channels: 1 height: 1 width: 1 shape { dim: 2 }", "legacy"),
    ("num: 1 num: 2 channels: 1 height: 1 width: 1", "num"),
])
def test_dummy_errors(xp, text, match):
    with pytest.raises(BpinspectError, match=match):
        dummy(text, tops=("a", "b", "c")).setup([])


def test_dummy_unknown_filler(xp):
    layer = dummy('shape { dim: 2 } data_filler { type: "nope" }')
    tops = set_up(layer, xp)
    with pytest.raises(BpinspectError, match="'nope'"):
        layer.forward([], tops)


def test_data_layers_take_no_bottoms(xp):
    for type_name in ("Input", "DummyData"):
        with pytest.raises(BpinspectError, match="takes 0 bottom"):
            make_layer(type_name).check_blob_counts(1, 1)


def test_dummy_values_are_the_same_on_every_device(xp):
    values = []
    for module in (np, xp):
        layer = dummy('shape { dim: 3 dim: 4 } data_filler { type: "uniform" }')
        layer.reset_rng(8)
        tops = set_up(layer, module)
        layer.forward([], tops)
        values.append(to_host(tops[0].data))
    np.testing.assert_array_equal(values[0], values[1])
