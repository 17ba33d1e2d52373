"""Flatten and Reshape: Caffe's shape rules, zero-copy views, diffs reshaped back."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

FLATTEN_CASES = [
    ("", (2, 3, 4, 5), (2, 60)),
    ("flatten_param { axis: 2 }", (2, 3, 4, 5), (2, 3, 20)),
    ("flatten_param { axis: 1 end_axis: 2 }", (2, 3, 4, 5), (2, 12, 5)),
    ("flatten_param { axis: -3 end_axis: -2 }", (2, 3, 4, 5), (2, 12, 5)),
    ("flatten_param { axis: 0 }", (2, 3, 4), (24,)),
    ("flatten_param { axis: 2 end_axis: 2 }", (2, 3, 4), (2, 3, 4)),
]

RESHAPE_CASES = [  # Caffe's test_reshape_layer.cpp cases, and axis / num_axes
    ("shape { dim: 0 dim: -1 }", (2, 3, 6, 5), (2, 90)),
    ("shape { dim: 6 dim: 0 dim: 5 dim: -1 }", (2, 3, 6, 5), (6, 3, 5, 2)),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 1 }", (2, 3, 6, 5), (2, 3, 6, 5, 1)),
    ("shape { dim: 2 dim: 9 dim: -1 }", (2, 3, 6, 5), (2, 9, 10)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 3, 6, 5), (2, 18, 5)),
    ("axis: 0 num_axes: 1 shape { dim: 1 dim: 2 }", (2, 3, 6, 5), (1, 2, 3, 6, 5)),
    ("axis: -1 num_axes: 0 shape { dim: 1 }", (2, 3, 6, 5), (2, 3, 6, 5, 1)),
    ("axis: 3 num_axes: 0 shape { dim: 1 dim: 1 }", (2, 3, 6, 5), (2, 3, 6, 1, 1, 5)),
    ("axis: 1 shape { dim: 3 dim: -1 }", (2, 3, 6, 5), (2, 3, 30)),
]


@pytest.mark.parametrize(("text", "shape", "expected"), FLATTEN_CASES)
def test_flatten_shapes(xp, text, shape, expected):
    assert make_layer("Flatten", text).setup([shape]) == [expected]


@pytest.mark.parametrize(("text", "shape", "expected"), RESHAPE_CASES)
def test_reshape_shapes(xp, text, shape, expected):
    assert make_layer("Reshape", f"reshape_param {{ {text} }}").setup([shape]) == [expected]


def cases():
    for text, shape, expected in FLATTEN_CASES:
        yield "Flatten", text, shape, expected
    for text, shape, expected in RESHAPE_CASES:
        yield "Reshape", f"reshape_param {{ {text} }}", shape, expected


@pytest.mark.parametrize(("type_name", "text", "shape", "expected"), list(cases()))
def test_values_in_order_and_gradients(xp, type_name, text, shape, expected):
    x = np.random.default_rng(0).standard_normal(shape)
    bottoms, tops = run_forward(make_layer(type_name, text), xp, [x])
    top = to_host(tops[0].data)
    assert top.shape == expected
    np.testing.assert_array_equal(top.ravel(), x.ravel())  # row-major order kept
    assert_passed(check_layer(make_layer(type_name, text), [xp.asarray(x)]))


@pytest.mark.parametrize("type_name", ["Flatten", "Reshape"])
def test_views_share_memory(xp, type_name):
    text = "reshape_param { shape { dim: 0 dim: -1 } }" if type_name == "Reshape" else ""
    layer = make_layer(type_name, text)
    bottoms, tops = run_forward(layer, xp, [np.zeros((2, 3, 4))])
    bottoms[0].data[1, 2, 3] = 5.0  # written through the bottom, seen in the top
    assert float(tops[0].data[1, 11]) == 5.0
    dy = np.arange(24.0).reshape(2, 12)
    tops[0].diff = xp.asarray(dy)
    layer.backward(tops, [True], bottoms)
    np.testing.assert_array_equal(to_host(bottoms[0].diff), dy.reshape(2, 3, 4))
    tops[0].diff[0, 0] = -1.0  # the bottom diff is a view of the top diff
    assert float(bottoms[0].diff[0, 0, 0]) == -1.0


@pytest.mark.parametrize(("type_name", "text", "match"), [
    ("Flatten", "flatten_param { axis: 4 }", "axis 4 is out of range"),
    ("Flatten", "flatten_param { axis: 2 end_axis: 1 }", "end_axis"),
    ("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }", "more than one -1"),
    ("Reshape", "reshape_param { shape { dim: 7 dim: -1 } }", "divisible"),
    ("Reshape", "reshape_param { shape { dim: 5 dim: 5 } }", "values"),
    ("Reshape", "reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 } }", "no axis 3"),
    ("Reshape", "reshape_param { axis: 4 shape { dim: 1 } }", "axis 4 is out of range"),
    ("Reshape", "reshape_param { axis: 2 num_axes: 2 shape { dim: 1 } }", "out of range"),
])
def test_errors(xp, type_name, text, match):
    with pytest.raises(BpinspectError, match=match):
        make_layer(type_name, text).setup([(2, 3, 4)])


@pytest.mark.parametrize("type_name", ["Flatten", "Reshape"])
def test_in_place_is_refused(xp, type_name):
    with pytest.raises(BpinspectError, match="in-place"):
        make_layer(type_name, bottoms=("x",), tops=("x",)).setup([(2, 3)])
