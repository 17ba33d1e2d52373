"""Text nets: real BVLC files parse; errors say FILE:LINE:COL on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import load_net, load_text_message, parse_net, parse_text_message
from bpinspect.proto import caffe_pb2

DATA = Path(__file__).parents[1] / "data"


def error_of(text: str, source: str = "net.prototxt") -> str:
    with pytest.raises(BpinspectError) as e:
        parse_net(text, source)
    message = str(e.value)
    assert "\n" not in message
    return message


# ---- real nets ------------------------------------------------------------------


def test_caffenet_deploy():
    net = load_net(DATA / "bvlc" / "bvlc_reference_caffenet.deploy.prototxt")
    assert net.name == "CaffeNet"
    assert len(net.layer) == 24
    data = net.layer[0]
    assert (data.name, data.type, list(data.top)) == ("data", "Input", ["data"])
    assert list(data.input_param.shape[0].dim) == [10, 3, 227, 227]
    conv1 = net.layer[1]
    p = conv1.convolution_param
    assert (conv1.type, p.num_output, list(p.kernel_size), list(p.stride)) == (
        "Convolution",
        96,
        [11],
        [4],
    )
    norm1 = next(layer for layer in net.layer if layer.name == "norm1")
    assert (norm1.type, norm1.lrn_param.local_size) == ("LRN", 5)
    assert norm1.lrn_param.alpha == pytest.approx(1e-4)
    assert net.layer[-1].type == "Softmax"


def test_googlenet_deploy():
    net = load_net(DATA / "bvlc" / "bvlc_googlenet.deploy.prototxt")
    assert net.name == "GoogleNet"
    assert len(net.layer) == 143
    types = {layer.type for layer in net.layer}
    assert {"Input", "Convolution", "ReLU", "Pooling", "LRN", "Concat", "Dropout",
            "InnerProduct", "Softmax"} == types  # fmt: skip
    concat = next(layer for layer in net.layer if layer.name == "inception_3a/output")
    assert list(concat.bottom) == [
        "inception_3a/1x1",
        "inception_3a/3x3",
        "inception_3a/5x5",
        "inception_3a/pool_proj",
    ]


def test_lenet_train_test_has_phases():
    net = load_net(DATA / "bvlc" / "lenet_train_test.prototxt")
    assert net.name == "LeNet"
    assert len(net.layer) == 11
    train, test = net.layer[0], net.layer[1]
    assert (train.type, train.include[0].phase) == ("Data", caffe_pb2.TRAIN)
    assert (test.type, test.include[0].phase) == ("Data", caffe_pb2.TEST)
    assert train.transform_param.scale == pytest.approx(0.00390625)
    conv1 = net.layer[2]
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert net.layer[-1].type == "SoftmaxWithLoss"


def test_v1_file_loads_as_v2():
    notes: list[str] = []
    path = DATA / "bvlc" / "v1.bvlc_reference_caffenet.deploy.prototxt"
    net = load_net(path, notes)
    assert [layer.type for layer in net.layer[:3]] == ["Input", "Convolution", "ReLU"]
    assert f"{path}: upgraded from the V1 net format (layers {{ type: ENUM }})" in notes


# ---- syntax errors ----------------------------------------------------------------


def test_unknown_field_line_and_column():
    text = 'name: "x"\nlayer {\n  name: "a"\n  typo: 3\n}\n'
    assert error_of(text) == (
        'net.prototxt:4:3: Message type "caffe.LayerParameter" has no field named "typo".'
    )


def test_unclosed_brace():
    text = 'layer {\n  name: "a"\n'
    assert error_of(text).startswith("net.prototxt:2:")
    assert error_of(text).endswith('Expected "}".')


def test_duplicate_non_repeated_field_as_caffes_parser():
    message = error_of('name: "x"\nname: "y"\n')
    assert message.startswith("net.prototxt:2:")
    assert 'should not have multiple "name" fields' in message


def test_string_where_an_enum_name_is_written():
    # The offending line is not repeated in the message: the location says where.
    text = 'layer {\n  name: "a"\n  type: Convolution\n}'
    message = error_of(text)
    assert message == "net.prototxt:3:9: Expected string but found: 'Convolution'"


def test_bad_v1_enum_value():
    text = "\n\nlayers {  type: CONVOLUTIONX }"
    message = error_of(text, "old.prototxt")
    assert message.startswith("old.prototxt:3:17: ")
    assert "has no value named CONVOLUTIONX" in message


def test_negative_unsigned_value():
    message = error_of("layer { convolution_param { pad: -1 } }")
    assert message == "net.prototxt:1:34: Value out of range: -1"


def test_solver_text_is_not_a_net():
    message = error_of('net: "train_val.prototxt"\nbase_lr: 0.01\n', "solver.prototxt")
    assert message == (
        "solver.prototxt: a solver definition (SolverParameter), not a net; "
        "its net is in 'train_val.prototxt'"
    )


def test_unknown_field_that_no_solver_has_either():
    message = error_of("base_lr: 0.01\nbogus: 1\n", "x.prototxt")
    assert (
        message == 'x.prototxt:1:1: Message type "caffe.NetParameter" has no field named "base_lr".'
    )


def test_error_from_load_net_names_the_path(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\n  bogus: 1\n')
    with pytest.raises(BpinspectError) as e:
        load_net(path)
    assert str(e.value).startswith(f"{path}:2:3: ")


def test_crlf_line_endings_and_comments_parse():
    text = (
        '# a comment\r\nname: "x"  # trailing\r\nlayer {\r\n  name: "r"\r\n  type: "ReLU"\r\n}\r\n'
    )
    net = parse_net(text)
    assert (net.name, net.layer[0].type) == ("x", "ReLU")


# ---- file errors --------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.prototxt"
    with pytest.raises(BpinspectError) as e:
        load_net(path)
    assert str(e.value) == f"{path}: no such file"


def test_directory(tmp_path):
    with pytest.raises(BpinspectError) as e:
        load_net(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a directory, not a file"


def test_binary_file(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"\x0a\x03abc\x12\xff\xfe\x00")
    with pytest.raises(BpinspectError) as e:
        load_net(path)
    assert (
        str(e.value)
        == f"{path}: not a text file (byte 6 is not UTF-8); is it a binary .caffemodel?"
    )


def test_load_text_message_reads_a_solver_without_upgrading(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: 0.01\nsolver_type: ADAM\n')
    solver = load_text_message(path, caffe_pb2.SolverParameter())
    assert solver.net == "n.prototxt"
    assert solver.base_lr == pytest.approx(0.01)
    assert solver.solver_type == caffe_pb2.SolverParameter.ADAM


def test_parse_text_message_clears_first():
    message = caffe_pb2.NetParameter(name="old", force_backward=True)
    parse_text_message('name: "new"', message)
    assert message.name == "new" and not message.HasField("force_backward")
