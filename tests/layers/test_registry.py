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


def test_data_source_layers_are_registered_but_window_data_says_why_not():
    assert {"Data", "ImageData", "HDF5Data", "MemoryData"} <= set(supported_types())
    with pytest.raises(BpinspectError, match="'WindowData' is not supported; it reads R-CNN "
                                             "window files") as info:
        layer_class("WindowData", "data")
    assert "deploy net" not in str(info.value)


def test_a_type_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        register("ReLU")(type("Again", (), {}))
