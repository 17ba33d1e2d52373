"""Old net formats upgrade as Caffe's upgrade_proto.cpp upgrades them."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from bpinspect.errors import BpinspectError
from bpinspect.io import upgrade
from bpinspect.io.prototxt import load_net, parse_net, parse_text_message
from bpinspect.io.upgrade import (
    V0_LAYER_TYPES,
    V1_LAYER_TYPES,
    net_needs_upgrade,
    upgrade_net,
    upgrade_v0_net,
    upgrade_v0_padding_layers,
    upgrade_v1_net,
)
from bpinspect.proto import caffe_pb2

DATA = Path(__file__).parents[1] / "data"
V1 = caffe_pb2.V1LayerParameter


def caffe_case(name: str) -> caffe_pb2.NetParameter:
    path = DATA / "upgrade" / f"{name}.prototxt"
    return parse_text_message(path.read_text(), caffe_pb2.NetParameter(), str(path))


def bvlc(name: str, upgraded: bool = True) -> caffe_pb2.NetParameter:
    path = DATA / "bvlc" / name
    if upgraded:
        return load_net(path)
    return parse_text_message(path.read_text(), caffe_pb2.NetParameter(), str(path))


def assert_same(actual: caffe_pb2.NetParameter, expected: caffe_pb2.NetParameter) -> None:
    # Comparing the text shows the first difference in the failure message.
    assert text_format.MessageToString(actual) == text_format.MessageToString(expected)
    assert actual == expected


# ---- Caffe's own unit tests (src/caffe/test/test_upgrade_proto.cpp) ------------


@pytest.mark.parametrize("case", ["TestSimple", "TestTwoTops", "TestImageNet"])
def test_caffe_padding_layer_upgrade(case):
    given = caffe_case(f"PaddingLayerUpgradeTest.{case}.input_proto")
    expected = caffe_case(f"PaddingLayerUpgradeTest.{case}.expected_output_proto")
    actual = upgrade_v0_padding_layers(given)
    assert_same(actual, expected)
    assert_same(upgrade_v0_padding_layers(actual), actual)  # idempotent, as Caffe checks


@pytest.mark.parametrize("case", ["TestSimple", "TestImageNet"])
def test_caffe_v0_to_v1_to_v2(case):
    v0 = caffe_case(f"NetUpgradeTest.{case}.v0_proto")
    v1 = caffe_case(f"NetUpgradeTest.{case}.expected_v1_proto")
    v2 = caffe_case(f"NetUpgradeTest.{case}.expected_v2_proto")
    notes: list[str] = []
    assert_same(upgrade_v0_net(v0, "v0", notes), v1)
    assert notes == []
    assert_same(upgrade_v1_net(v1), v2)


def test_caffe_all_v0_params():
    given = caffe_case("NetUpgradeTest.TestAllParams.input_proto")
    expected = caffe_case("NetUpgradeTest.TestAllParams.expected_output_proto")
    notes: list[str] = []
    assert_same(upgrade_v0_net(given, "v0", notes), expected)
    assert notes == []


def test_whole_chain_from_v0_matches_caffes_v2():
    v0 = caffe_case("NetUpgradeTest.TestImageNet.v0_proto")
    v2 = caffe_case("NetUpgradeTest.TestImageNet.expected_v2_proto")
    notes: list[str] = []
    assert_same(upgrade_net(v0, "old.prototxt", notes), v2)
    assert notes == [
        "old.prototxt: upgraded from the V0 net format (layers { layer { ... } })",
        "old.prototxt: upgraded from the V1 net format (layers { type: ENUM })",
    ]


# ---- Caffe's upgrade tools on real nets (git history of BVLC/caffe) -----------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "v1.bvlc_reference_caffenet.train_val.prototxt",
            "v2.bvlc_reference_caffenet.train_val.prototxt",
        ),
        ("v1.lenet_train_test.prototxt", "lenet_train_test.prototxt"),
        ("v0.imagenet_deploy.prototxt", "v1.imagenet_deploy.prototxt"),
        ("v0.lenet_train.prototxt", "v1.lenet_train.prototxt"),
    ],
)
def test_real_nets_upgrade_as_caffes_tools_did(old, new):
    assert_same(bvlc(old), bvlc(new))


def test_v1_caffenet_deploy_with_input_dim_equals_todays_deploy():
    old = bvlc("v1.bvlc_reference_caffenet.deploy.prototxt")
    today = bvlc("bvlc_reference_caffenet.deploy.prototxt")
    # Today's file names its Input layer "data"; the upgrade names it "input".
    assert old.layer[0].name == "input"
    assert today.layer[0].name == "data"
    old.layer[0].name = "data"
    assert_same(old, today)


def test_v1_train_val_fields_carried():
    net = bvlc("v1.bvlc_reference_caffenet.train_val.prototxt")
    data_train, data_test, conv1 = net.layer[0], net.layer[1], net.layer[2]
    assert (data_train.type, data_train.include[0].phase) == ("Data", caffe_pb2.TRAIN)
    assert data_test.include[0].phase == caffe_pb2.TEST
    assert data_train.transform_param.crop_size == 227
    assert conv1.type == "Convolution"
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    assert conv1.convolution_param.weight_filler.type == "gaussian"
    assert net.layer[-1].type == "SoftmaxWithLoss"
    assert len(net.layers) == 0


# ---- V1 -> V2 by hand ----------------------------------------------------------

HAND_V1 = """
name: "hand"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "conv1_w" param: "conv1_b" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } }
  include { phase: TRAIN }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layers {
  name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 }
  exclude { phase: TEST stage: "x" }
}
layers { name: "fc" type: INNER_PRODUCT bottom: "pool1" top: "fc" blobs_lr: 0.5
         inner_product_param { num_output: 10 } }
layers { name: "cat" type: CONCAT bottom: "fc" bottom: "fc" top: "cat"
         concat_param { concat_dim: 1 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "cat" bottom: "label" top: "loss"
         loss_weight: 2 loss_param { ignore_label: 7 } }
"""


def test_hand_written_v1_net():
    notes: list[str] = []
    net = parse_net(HAND_V1, "hand.prototxt", notes)
    assert [layer.name for layer in net.layer] == [
        "input",
        "conv1",
        "relu1",
        "pool1",
        "fc",
        "cat",
        "loss",
    ]
    assert [layer.type for layer in net.layer] == [
        "Input",
        "Convolution",
        "ReLU",
        "Pooling",
        "InnerProduct",
        "Concat",
        "SoftmaxWithLoss",
    ]
    assert len(net.layers) == 0 and len(net.input) == 0 and len(net.input_dim) == 0
    assert list(net.layer[0].top) == ["data"]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 3, 8, 8]

    conv = net.layer[1]
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [
        ("conv1_w", 1.0, 1.0),
        ("conv1_b", 2.0, 0.0),
    ]
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert not conv.param[1].HasField("share_mode")
    assert conv.convolution_param.num_output == 4
    assert list(conv.convolution_param.kernel_size) == [3]
    assert list(conv.convolution_param.pad) == [1]
    assert conv.convolution_param.weight_filler.type == "xavier"
    assert len(conv.include) == 1 and conv.include[0].phase == caffe_pb2.TRAIN

    assert net.layer[2].relu_param.negative_slope == pytest.approx(0.1)
    pool = net.layer[3]
    assert pool.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert (pool.pooling_param.kernel_size, pool.pooling_param.stride) == (2, 2)
    assert pool.exclude[0].phase == caffe_pb2.TEST and list(pool.exclude[0].stage) == ["x"]

    fc = net.layer[4]
    assert [(p.lr_mult, p.HasField("decay_mult")) for p in fc.param] == [(0.5, False)]
    cat = net.layer[5]
    assert cat.concat_param.HasField("concat_dim") and cat.concat_param.concat_dim == 1
    assert not cat.concat_param.HasField("axis")
    loss = net.layer[6]
    assert list(loss.loss_weight) == [2.0]
    assert loss.loss_param.ignore_label == 7
    assert notes == [
        "hand.prototxt: upgraded from the V1 net format (layers { type: ENUM })",
        "hand.prototxt: legacy 'input' field(s) became an Input layer named 'input' (tops: data)",
    ]


def test_every_v1_type_gets_its_v2_string():
    enum = V1.DESCRIPTOR.enum_types_by_name["LayerType"]
    assert set(V1_LAYER_TYPES) == {v.number for v in enum.values}
    net = caffe_pb2.NetParameter()
    for v in enum.values:
        net.layers.add(name=v.name, type=v.number)
    upgrade_net(net)
    types = {layer.name: layer.type for layer in net.layer}
    # Spot checks, read from UpgradeV1LayerType in upgrade_proto.cpp.
    assert types["NONE"] == ""
    assert types["HDF5_DATA"] == "HDF5Data"
    assert types["SOFTMAX_LOSS"] == "SoftmaxWithLoss"
    assert types["IM2COL"] == "Im2col"
    assert types["TANH"] == "TanH"
    assert types["BNLL"] == "BNLL"
    assert types["DECONVOLUTION"] == "Deconvolution"
    assert types["MULTINOMIAL_LOGISTIC_LOSS"] == "MultinomialLogisticLoss"
    assert types["SIGMOID_CROSS_ENTROPY_LOSS"] == "SigmoidCrossEntropyLoss"
    assert types["ABSVAL"] == "AbsVal"
    assert all(t[:1].isupper() for name, t in types.items() if name != "NONE")


def test_every_v1_sub_param_is_carried():
    # The list in UpgradeV1LayerParameter; every one must exist in both messages.
    caffe_list = {
        "accuracy_param", "argmax_param", "concat_param", "contrastive_loss_param",
        "convolution_param", "data_param", "dropout_param", "dummy_data_param",
        "eltwise_param", "exp_param", "hdf5_data_param", "hdf5_output_param",
        "hinge_loss_param", "image_data_param", "infogain_loss_param",
        "inner_product_param", "lrn_param", "memory_data_param", "mvn_param",
        "pooling_param", "power_param", "relu_param", "sigmoid_param", "softmax_param",
        "slice_param", "tanh_param", "threshold_param", "window_data_param",
        "transform_param", "loss_param",
    }  # fmt: skip
    assert set(upgrade._V1_SUB_PARAMS) == caffe_list
    v1 = caffe_pb2.NetParameter()
    layer = v1.layers.add(name="all", type=V1.DUMMY_DATA)
    for name in sorted(caffe_list):
        sub = getattr(layer, name)
        sub.SetInParent()
    layer.dummy_data_param.num.append(3)
    layer.window_data_param.crop_mode = "square"
    net = upgrade_net(v1)
    for name in caffe_list:
        assert net.layer[0].HasField(name), name
    assert list(net.layer[0].dummy_data_param.num) == [3]
    assert net.layer[0].window_data_param.crop_mode == "square"


def test_v1_data_layer_transform_fields_move_to_transform_param():
    net = parse_net(
        """layers { name: "d" type: DATA top: "data"
             data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m.binaryproto"
                          crop_size: 7 mirror: true } }
           layers { name: "i" type: IMAGE_DATA top: "img" image_data_param { scale: 2 } }"""
    )
    d, i = net.layer
    assert (d.data_param.source, d.data_param.batch_size) == ("db", 4)
    for field in ("scale", "mean_file", "crop_size", "mirror"):
        assert not d.data_param.HasField(field)
    t = d.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "m.binaryproto", 7, True)
    assert i.transform_param.scale == 2 and not i.image_data_param.HasField("scale")


def test_mixing_v1_and_v2_layers_is_an_error():
    text = 'layer { name: "a" type: "ReLU" }\nlayers { name: "b" type: RELU }'
    with pytest.raises(BpinspectError) as e:
        parse_net(text, "mixed.prototxt")
    assert str(e.value).startswith("mixed.prototxt: the net mixes V2 'layer")
    assert "\n" not in str(e.value)


def test_unknown_v1_type_number_in_a_binary_net():
    # name "x" (field 4), type 77 (field 5): not a V1 LayerType value.
    layer_bytes = bytes([0x22, 0x01, ord("x"), 0x28, 77])
    net = caffe_pb2.NetParameter.FromString(bytes([0x12, len(layer_bytes)]) + layer_bytes)
    with pytest.raises(BpinspectError, match=r"^w\.caffemodel: V1 layer 'x' has type number 77"):
        upgrade_net(net, "w.caffemodel")


# ---- V0 -------------------------------------------------------------------------


def test_v0_parameter_that_does_not_apply_is_dropped_with_a_note():
    notes: list[str] = []
    net = parse_net(
        'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }'
        ' input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1',
        "v0.prototxt",
        notes,
    )
    assert [layer.type for layer in net.layer] == ["Input", "ReLU"]
    assert (
        "v0.prototxt: V0 layer 'r': parameter 'num_output' does not apply to type 'relu'; "
        "dropped (as Caffe does)"
    ) in notes


def test_unknown_v0_type_is_an_error():
    with pytest.raises(
        BpinspectError, match=r"^v0: V0 layer 'q' has unknown type 'quux' \(V0 types: "
    ):
        parse_net('layers { layer { name: "q" type: "quux" } }', "v0")


def test_v0_padding_layer_feeding_a_relu_is_an_error():
    text = """input: "x"
      layers { layer { name: "p" type: "padding" pad: 2 } bottom: "x" top: "px" }
      layers { layer { name: "r" type: "relu" } bottom: "px" top: "y" }"""
    with pytest.raises(BpinspectError, match="only conv and pool layers can take it"):
        parse_net(text, "v0")


def test_v0_unknown_bottom_is_an_error():
    with pytest.raises(BpinspectError, match="reads blob 'nowhere'"):
        parse_net('layers { layer { name: "r" type: "relu" } bottom: "nowhere" top: "y" }', "v0")


# ---- legacy inputs, BatchNorm, no-ops ------------------------------------------


def test_input_dim_for_two_inputs():
    net = parse_net(
        'input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4 '
        "input_dim: 5 input_dim: 6 input_dim: 7 input_dim: 8 "
        'layer { name: "r" type: "ReLU" bottom: "a" top: "c" }'
    )
    assert [layer.name for layer in net.layer] == ["input", "r"]
    first = net.layer[0]
    assert first.type == "Input" and list(first.top) == ["a", "b"]
    assert [list(s.dim) for s in first.input_param.shape] == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_input_shape():
    net = parse_net(
        'input: "data" input_shape { dim: 10 dim: 3 dim: 227 dim: 227 } '
        'input: "label" input_shape { dim: 10 }'
    )
    first = net.layer[0]
    assert list(first.top) == ["data", "label"]
    assert [list(s.dim) for s in first.input_param.shape] == [[10, 3, 227, 227], [10]]
    assert len(net.input_shape) == 0


def test_input_dim_count_mismatch():
    with pytest.raises(BpinspectError) as e:
        parse_net('input: "a" input_dim: 1 input_dim: 2 input_dim: 3', "n.prototxt")
    assert str(e.value) == (
        "n.prototxt: 1 legacy 'input' blob(s) need 4 'input_dim' values (4 per input), found 3"
    )


def test_input_shape_count_mismatch():
    with pytest.raises(BpinspectError, match="2 legacy 'input' blob"):
        parse_net('input: "a" input: "b" input_shape { dim: 1 }', "n.prototxt")


def test_input_without_dims_is_dropped_as_in_old_caffemodels():
    net = parse_net('input: "data" layer { name: "r" type: "ReLU" }')
    assert [layer.name for layer in net.layer] == ["r"]
    assert len(net.input) == 0


def test_input_shape_wins_over_input_dim():
    notes: list[str] = []
    net = parse_net('input: "a" input_shape { dim: 2 } input_dim: 9', "n", notes)
    assert list(net.layer[0].input_param.shape[0].dim) == [2]
    assert any("used 'input_shape'" in n for n in notes)


def test_batch_norm_with_three_params_gets_zero_rates():
    net = parse_net(
        'layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } '
        "param { lr_mult: 1 decay_mult: 3 } }"
    )
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3


def test_current_net_is_untouched():
    net = bvlc("bvlc_googlenet.deploy.prototxt", upgraded=False)
    before = net.SerializeToString()
    assert not net_needs_upgrade(net)
    notes: list[str] = []
    assert upgrade_net(net, "g", notes) is net
    assert net.SerializeToString() == before
    assert notes == []


def test_v0_type_table_maps_to_v1_values():
    values = {v.number for v in V1.DESCRIPTOR.enum_types_by_name["LayerType"].values}
    assert set(V0_LAYER_TYPES.values()) <= values
    assert V0_LAYER_TYPES["conv"] == V1.CONVOLUTION
    assert V0_LAYER_TYPES["images"] == V1.IMAGE_DATA
    assert len(V0_LAYER_TYPES) == 24
