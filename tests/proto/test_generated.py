"""bpinspect/proto/caffe_pb2.py is what protoc makes of caffe.proto, and the
schema keeps BVLC Caffe's field numbers (so real files parse)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from bpinspect.proto import caffe_pb2

PROTO_DIR = Path(caffe_pb2.__file__).parent


def embedded_descriptor(generated: Path) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto bytes that a generated module passes to AddSerializedFile.

    Read from the source text, not by importing: importing a second caffe_pb2
    would register "caffe.proto" twice in protobuf's default descriptor pool.
    """
    tree = ast.parse(generated.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
        ):
            data = ast.literal_eval(node.args[0])
            return descriptor_pb2.FileDescriptorProto.FromString(data)
    raise AssertionError(f"{generated}: no AddSerializedFile(...) call")


def test_committed_module_matches_a_fresh_protoc_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
         f"--python_out={tmp_path}", str(PROTO_DIR / "caffe.proto")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fresh = embedded_descriptor(tmp_path / "caffe_pb2.py")
    committed = embedded_descriptor(PROTO_DIR / "caffe_pb2.py")
    if fresh != committed:
        fresh_names = {m.name for m in fresh.message_type}
        committed_names = {m.name for m in committed.message_type}
        pytest.fail(
            "bpinspect/proto/caffe_pb2.py is stale; regenerate it (see caffe.proto's header). "
            f"messages only in caffe.proto: {sorted(fresh_names - committed_names)}; "
            f"only in caffe_pb2.py: {sorted(committed_names - fresh_names)}"
        )
    assert fresh.SerializeToString() == committed.SerializeToString()


def test_loaded_module_is_the_committed_descriptor():
    loaded = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(loaded)
    committed = embedded_descriptor(PROTO_DIR / "caffe_pb2.py")
    assert loaded.name == committed.name == "caffe.proto"
    assert loaded.package == "caffe"
    assert [m.name for m in loaded.message_type] == [m.name for m in committed.message_type]


# Field numbers read from BVLC Caffe's src/caffe/proto/caffe.proto.
BVLC_FIELD_NUMBERS = [
    ("NetParameter", "name", 1),
    ("NetParameter", "layers", 2),
    ("NetParameter", "input", 3),
    ("NetParameter", "input_dim", 4),
    ("NetParameter", "force_backward", 5),
    ("NetParameter", "input_shape", 8),
    ("NetParameter", "layer", 100),
    ("BlobProto", "num", 1),
    ("BlobProto", "width", 4),
    ("BlobProto", "data", 5),
    ("BlobProto", "shape", 7),
    ("BlobProto", "double_data", 8),
    ("LayerParameter", "name", 1),
    ("LayerParameter", "type", 2),
    ("LayerParameter", "blobs", 7),
    ("LayerParameter", "propagate_down", 11),
    ("LayerParameter", "transform_param", 100),
    ("LayerParameter", "concat_param", 104),
    ("LayerParameter", "convolution_param", 106),
    ("LayerParameter", "inner_product_param", 117),
    ("LayerParameter", "lrn_param", 118),
    ("LayerParameter", "pooling_param", 121),
    ("LayerParameter", "input_param", 143),
    ("LayerParameter", "swish_param", 147),
    ("V1LayerParameter", "layer", 1),
    ("V1LayerParameter", "name", 4),
    ("V1LayerParameter", "type", 5),
    ("V1LayerParameter", "blobs", 6),
    ("V1LayerParameter", "blobs_lr", 7),
    ("V1LayerParameter", "convolution_param", 10),
    ("V1LayerParameter", "include", 32),
    ("V1LayerParameter", "param", 1001),
    ("ConvolutionParameter", "dilation", 18),
    ("ConcatParameter", "concat_dim", 1),
    ("ConcatParameter", "axis", 2),
    ("V0LayerParameter", "hdf5_output_param", 1001),
]


@pytest.mark.parametrize(("message", "field", "number"), BVLC_FIELD_NUMBERS)
def test_bvlc_field_numbers(message, field, number):
    assert getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field].number == number


def test_bvlc_enum_values():
    v1 = caffe_pb2.V1LayerParameter
    assert (v1.CONVOLUTION, v1.SOFTMAX_LOSS, v1.DECONVOLUTION, v1.ABSVAL) == (4, 21, 39, 35)
    assert (caffe_pb2.TRAIN, caffe_pb2.TEST) == (0, 1)
    assert caffe_pb2.PoolingParameter.STOCHASTIC == 2
