"""The registry: every family registered once; unknown types name layer and type."""

from __future__ import annotations

import pytest

from bpinspect.errors import BpinspectError
from bpinspect.layers.registry import layer_class, register, supported_types


def test_the_caffe_types_of_the_design_are_registered():
    wanted = {"Input", "DummyData", "Convolution", "Pooling", "LRN", "InnerProduct", "ReLU",
              "Sigmoid", "TanH", "Dropout", "Concat", "Slice", "Split", "Eltwise", "Flatten",
              "Reshape", "Softmax", "SoftmaxWithLoss", "EuclideanLoss", "BatchNorm", "Scale"}
    assert wanted <= set(supported_types())


def test_unknown_type_names_layer_and_type():
    with pytest.raises(BpinspectError, match=r"layer 'x': layer type 'Frobnicate' is not "
                                             r"supported \(supported: .*Convolution"):
        layer_class("Frobnicate", "x")


def test_data_source_layers_get_a_hint():
    with pytest.raises(BpinspectError, match="use the deploy net, or an Input layer"):
        layer_class("HDF5Data", "data")


def test_a_type_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        register("ReLU")(type("Again", (), {}))
