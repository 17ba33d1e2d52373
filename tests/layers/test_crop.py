"""Crop: the window of bottom[0] at the offsets, shaped like bottom[1]; the gradient
goes back into that window (0 elsewhere), none to bottom[1]."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward


def crop(text=""):
    return make_layer("Crop", text, bottoms=("x", "ref"), tops=("y",))


def loop_crop(x, top_shape, offsets):
    """Element by element: top[i] = x[i + offsets]."""
    out = np.empty(top_shape)
    for index in itertools.product(*(range(s) for s in top_shape)):
        out[index] = x[tuple(i + o for i, o in zip(index, offsets, strict=True))]
    return out


CASES = [
    # (params, bottom shape, reference shape, expected offsets)
    ("crop_param { offset: 5 }", (1, 3, 12, 11), (1, 7, 4, 6), (0, 0, 5, 5)),  # FCN's
    ("", (2, 3, 6, 5), (9, 9, 4, 3), (0, 0, 0, 0)),
    ("crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }", (2, 4, 6, 5), (2, 2, 3, 5),
     (0, 1, 2, 0)),
    ("crop_param { axis: -1 offset: 2 }", (2, 3, 4, 7), (1, 1, 1, 3), (0, 0, 0, 2)),
    ("crop_param { axis: 0 offset: 1 }", (3, 4, 5), (2, 2, 2), (1, 1, 1)),
]


@pytest.mark.parametrize(("text", "shape", "ref", "offsets"), CASES)
def test_forward_and_offsets(xp, text, shape, ref, offsets):
    x = np.random.default_rng(0).standard_normal(shape)
    layer = crop(text)
    _, tops = run_forward(layer, xp, [x, np.zeros(ref)])
    top_shape = tuple(r if i >= canonical(text, len(shape)) else s
                      for i, (s, r) in enumerate(zip(shape, ref, strict=True)))
    assert tops[0].shape == top_shape
    np.testing.assert_array_equal(to_host(tops[0].data), loop_crop(x, top_shape, offsets))
    assert list(to_host(layer.internals()["offsets"])) == list(offsets)


def canonical(text, n):
    if "axis:" not in text:
        return 2
    axis = int(text.split("axis:")[1].split()[0])
    return axis + n if axis < 0 else axis


@pytest.mark.parametrize(("text", "shape", "ref", "offsets"), CASES)
def test_gradient_and_no_gradient_to_the_reference(xp, text, shape, ref, offsets):
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.standard_normal(shape))
    assert_passed(check_layer(crop(text), [x, xp.zeros(ref)], propagate_down=[True, False]))
    layer = crop(text)
    bottoms, tops = run_forward(layer, xp, [to_host(x), np.zeros(ref)])
    bottoms[1].diff = xp.full(ref, 7.0)
    tops[0].diff = xp.ones(tops[0].shape)
    layer.backward(tops, [True, True], bottoms)
    assert (to_host(bottoms[1].diff) == 7.0).all()  # the reference's diff is left alone
    dx = to_host(bottoms[0].diff)
    assert dx.sum() == tops[0].count  # ones inside the window, zeros outside
    window = tuple(slice(o, o + s) for o, s in zip(offsets, tops[0].shape, strict=True))
    assert (dx[window] == 1).all()
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)


@pytest.mark.parametrize(("text", "shape", "ref", "message"), [
    ("crop_param { offset: 3 }", (1, 1, 6, 6), (1, 1, 4, 4), "does not fit"),
    ("crop_param { offset: 1 offset: 1 offset: 1 }", (1, 1, 6, 6), (1, 1, 4, 4),
     "3 offsets"),
    ("crop_param { axis: 4 }", (1, 1, 6, 6), (1, 1, 4, 4), "axis 4"),
    ("", (1, 1, 6, 6), (1, 1, 4), "fewer axes"),
])
def test_bad_params_are_one_line_errors(text, shape, ref, message):
    with pytest.raises(BpinspectError, match=message) as info:
        crop(text).setup([shape, ref])
    assert "'layer' (Crop)" in str(info.value) and "\n" not in str(info.value)
