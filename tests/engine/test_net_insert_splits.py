"""insert_splits against Caffe's own cases (src/caffe/test/test_split_layer.cpp,
SplitLayerInsertionTest, BVLC Caffe, BSD 2-Clause): the same input nets and
expected outputs, and idempotence (inserting twice changes nothing)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from bpinspect.engine.insert_splits import insert_splits, split_blob_name, split_layer_name
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

NO_INSERTION_WITH_IN_PLACE_IN = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'innerprod' type: 'InnerProduct' bottom: 'data' top: 'innerprod' } "
    "layer { name: 'relu' type: 'ReLU' bottom: 'innerprod' top: 'innerprod' } "
    "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'innerprod' bottom: 'label' } "
)

LOSS_INSERTION_IN = (
    "name: 'UnsharedWeightsNetwork' force_backward: true "
    "layer { name: 'data' type: 'DummyData' dummy_data_param { num: 5 channels: 2 height: "
    "3 width: 4 data_filler { type: 'gaussian' std: 0.01 } } top: 'data' } "
    "layer { name: 'innerproduct1' type: 'InnerProduct' inner_product_param { num_output: "
    "10 bias_term: false weight_filler { type: 'gaussian' std: 10 } } param { name: "
    "'unsharedweights1' } bottom: 'data' top: 'innerproduct1' loss_weight: 2.5 } "
    "layer { name: 'innerproduct2' type: 'InnerProduct' inner_product_param { num_output: "
    "10 bias_term: false weight_filler { type: 'gaussian' std: 10 } } param { name: "
    "'unsharedweights2' } bottom: 'data' top: 'innerproduct2' } "
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'innerproduct1' bottom: "
    "'innerproduct2' } "
)

LOSS_INSERTION_OUT = (
    "name: 'UnsharedWeightsNetwork' force_backward: true "
    "layer { name: 'data' type: 'DummyData' dummy_data_param { num: 5 channels: 2 height: "
    "3 width: 4 data_filler { type: 'gaussian' std: 0.01 } } top: 'data' } "
    "layer { name: 'data_data_0_split' type: 'Split' bottom: 'data' top: "
    "'data_data_0_split_0' top: 'data_data_0_split_1' } "
    "layer { name: 'innerproduct1' type: 'InnerProduct' inner_product_param { num_output: "
    "10 bias_term: false weight_filler { type: 'gaussian' std: 10 } } param { name: "
    "'unsharedweights1' } bottom: 'data_data_0_split_0' top: 'innerproduct1' } "
    "layer { name: 'innerproduct1_innerproduct1_0_split' type: 'Split' bottom: "
    "'innerproduct1' top: 'innerproduct1_innerproduct1_0_split_0' top: "
    "'innerproduct1_innerproduct1_0_split_1' loss_weight: 2.5 loss_weight: 0 } "
    "layer { name: 'innerproduct2' type: 'InnerProduct' inner_product_param { num_output: "
    "10 bias_term: false weight_filler { type: 'gaussian' std: 10 } } param { name: "
    "'unsharedweights2' } bottom: 'data_data_0_split_1' top: 'innerproduct2' } "
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: "
    "'innerproduct1_innerproduct1_0_split_1' bottom: 'innerproduct2' } "
)

INSERTION_IN = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data' top: 'innerprod1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'data' top: 'innerprod2' } "
    "layer { name: 'innerprod3' type: 'InnerProduct' bottom: 'data' top: 'innerprod3' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'innerprod2' "
    "} "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: 'innerprod3' "
    "} "
)

INSERTION_OUT = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'data_data_0_split' type: 'Split' bottom: 'data' top: "
    "'data_data_0_split_0' top: 'data_data_0_split_1' top: 'data_data_0_split_2' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data_data_0_split_0' top: "
    "'innerprod1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'data_data_0_split_1' top: "
    "'innerprod2' } "
    "layer { name: 'innerprod2_innerprod2_0_split' type: 'Split' bottom: 'innerprod2' top: "
    "'innerprod2_innerprod2_0_split_0' top: 'innerprod2_innerprod2_0_split_1' } "
    "layer { name: 'innerprod3' type: 'InnerProduct' bottom: 'data_data_0_split_2' top: "
    "'innerprod3' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: "
    "'innerprod2_innerprod2_0_split_0' } "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2_innerprod2_0_split_1' "
    "bottom: 'innerprod3' } "
)

INSERTION_TWO_TOP_IN = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data' top: 'innerprod1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'label' top: 'innerprod2' } "
    "layer { name: 'innerprod3' type: 'InnerProduct' bottom: 'data' top: 'innerprod3' } "
    "layer { name: 'innerprod4' type: 'InnerProduct' bottom: 'label' top: 'innerprod4' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'innerprod3' "
    "} "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: 'innerprod4' "
    "} "
)

INSERTION_TWO_TOP_OUT = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'data_data_0_split' type: 'Split' bottom: 'data' top: "
    "'data_data_0_split_0' top: 'data_data_0_split_1' } "
    "layer { name: 'label_data_1_split' type: 'Split' bottom: 'label' top: "
    "'label_data_1_split_0' top: 'label_data_1_split_1' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data_data_0_split_0' top: "
    "'innerprod1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'label_data_1_split_0' top: "
    "'innerprod2' } "
    "layer { name: 'innerprod3' type: 'InnerProduct' bottom: 'data_data_0_split_1' top: "
    "'innerprod3' } "
    "layer { name: 'innerprod4' type: 'InnerProduct' bottom: 'label_data_1_split_1' top: "
    "'innerprod4' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'innerprod3' "
    "} "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: 'innerprod4' "
    "} "
)

WITH_IN_PLACE_IN = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data' top: 'innerprod1' } "
    "layer { name: 'relu1' type: 'ReLU' bottom: 'innerprod1' top: 'innerprod1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'innerprod1' top: "
    "'innerprod2' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'label' } "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: 'data' } "
)

WITH_IN_PLACE_OUT = (
    "name: 'TestNetwork' "
    "layer { name: 'data' type: 'Data' top: 'data' top: 'label' } "
    "layer { name: 'data_data_0_split' type: 'Split' bottom: 'data' top: "
    "'data_data_0_split_0' top: 'data_data_0_split_1' } "
    "layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data_data_0_split_0' top: "
    "'innerprod1' } "
    "layer { name: 'relu1' type: 'ReLU' bottom: 'innerprod1' top: 'innerprod1' } "
    "layer { name: 'innerprod1_relu1_0_split' type: 'Split' bottom: 'innerprod1' top: "
    "'innerprod1_relu1_0_split_0' top: 'innerprod1_relu1_0_split_1' } "
    "layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'innerprod1_relu1_0_split_0' "
    "top: 'innerprod2' } "
    "layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1_relu1_0_split_1' "
    "bottom: 'label' } "
    "layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: "
    "'data_data_0_split_1' } "
)


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(NO_INSERTION_WITH_IN_PLACE_IN, NO_INSERTION_WITH_IN_PLACE_IN,
                     id="no-insertion-with-in-place"),
        pytest.param(LOSS_INSERTION_IN, LOSS_INSERTION_OUT, id="loss-insertion"),
        pytest.param(INSERTION_IN, INSERTION_OUT, id="insertion"),
        pytest.param(INSERTION_TWO_TOP_IN, INSERTION_TWO_TOP_OUT, id="insertion-two-top"),
        pytest.param(WITH_IN_PLACE_IN, WITH_IN_PLACE_OUT, id="with-in-place"),
    ],
)
def test_caffe_insertion_cases(given: str, expected: str) -> None:
    actual = insert_splits(parse(given))
    assert text_format.MessageToString(actual) == text_format.MessageToString(parse(expected))
    again = insert_splits(actual)
    assert text_format.MessageToString(again) == text_format.MessageToString(actual)


def test_input_is_not_modified() -> None:
    given = parse(LOSS_INSERTION_IN)
    before = given.SerializeToString()
    insert_splits(given)
    assert given.SerializeToString() == before


def test_blob_concatenated_with_itself_gets_a_split() -> None:
    net = parse(
        "layer { name: 'in' type: 'Input' top: 'a' } "
        "layer { name: 'cat' type: 'Concat' bottom: 'a' bottom: 'a' top: 'aa' } "
    )
    out = insert_splits(net)
    assert [layer.name for layer in out.layer] == ["in", "a_in_0_split", "cat"]
    assert list(out.layer[1].top) == ["a_in_0_split_0", "a_in_0_split_1"]
    assert list(out.layer[2].bottom) == ["a_in_0_split_0", "a_in_0_split_1"]


def test_unknown_bottom_names_layer_and_blob() -> None:
    net = parse("layer { name: 'ip' type: 'InnerProduct' bottom: 'nowhere' top: 'ip' }")
    with pytest.raises(BpinspectError, match="layer 'ip': unknown bottom blob 'nowhere'"):
        insert_splits(net)


def test_names() -> None:
    assert split_layer_name("conv1", "data", 0) == "data_conv1_0_split"
    assert split_blob_name("conv1", "data", 1, 2) == "data_conv1_1_split_2"
