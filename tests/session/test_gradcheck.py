"""The gradient checker is itself checked on layers with known derivatives."""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from bpinspect.layers.base import Layer
from bpinspect.proto import caffe_pb2
from bpinspect.session.gradcheck import check_layer, numerical_gradient, sample_coords


class Cube(Layer):
    """top = w * x^3; d/dx = 3 w x^2, d/dw = sum x^3 * top_diff. ``wrong`` breaks it."""

    def __init__(self, wrong: str = "") -> None:
        super().__init__(text_format.Parse('name: "cube"', caffe_pb2.LayerParameter()))
        self.wrong = wrong

    def setup(self, bottom_shapes):
        self.param_shapes = [()]
        return [bottom_shapes[0]]

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data * bottom[0].data ** 3

    def backward(self, top, propagate_down, bottom):
        x, w, g = bottom[0].data, self.blobs[0].data, top[0].diff
        if propagate_down[0] and self.wrong != "skip-bottom":
            factor = 2.0 if self.wrong == "bottom" else 3.0
            bottom[0].diff = factor * w * x**2 * g
        if self.param_propagate_down[0]:
            self.blobs[0].diff += (x**3 * g).sum() * (1.01 if self.wrong == "param" else 1.0)


def test_numerical_gradient_of_known_function():
    x = np.array([0.5, -2.0, 3.0])
    grads = numerical_gradient(lambda: float(np.sin(x).sum()), x, [(0,), (1,), (2,)], 1e-6)
    np.testing.assert_allclose(grads, np.cos([0.5, -2.0, 3.0]), rtol=1e-8)
    np.testing.assert_array_equal(x, [0.5, -2.0, 3.0])  # restored


def test_correct_layer_passes():
    x = np.random.default_rng(1).standard_normal((2, 3))
    results = check_layer(Cube(), [x])
    assert [r.what for r in results] == ["bottom[0]", "param[0]"]
    assert all(r.passed for r in results), results
    assert results[0].checked == 6


def test_wrong_bottom_gradient_fails():
    x = np.random.default_rng(1).standard_normal((2, 3))
    results = check_layer(Cube(wrong="bottom"), [x])
    assert not results[0].passed and results[1].passed


def test_wrong_param_gradient_fails():
    x = np.random.default_rng(1).standard_normal((2, 3))
    results = check_layer(Cube(wrong="param"), [x])
    assert results[0].passed and not results[1].passed


def test_unassigned_bottom_diff_fails():
    x = np.random.default_rng(1).standard_normal((4,))
    results = check_layer(Cube(wrong="skip-bottom"), [x])
    assert not results[0].passed


def test_sample_coords_is_seeded_and_bounded():
    a = sample_coords((10, 10), 7, seed=3)
    assert a == sample_coords((10, 10), 7, seed=3)
    assert len(set(a)) == 7
    assert len(sample_coords((2, 3), 100, seed=0)) == 6
