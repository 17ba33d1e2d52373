"""Weights: round trips, legacy blobs, V1 caffemodels, bad files, copying into a net."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.errors import BpinspectError
from bpinspect.io.caffemodel import (
    array_to_blob,
    blob_shape,
    blob_to_array,
    copy_trained_layers,
    read_binaryproto,
    read_caffemodel,
    shape_equals,
    write_caffemodel,
)
from bpinspect.proto import caffe_pb2


def arrays(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "conv1": [rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
                  rng.standard_normal(4).astype(np.float32)],
        "fc": [rng.standard_normal((10, 48)).astype(np.float32)],
    }


def legacy_blob(dims: tuple[int, int, int, int], values) -> caffe_pb2.BlobProto:
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = dims
    blob.data.extend(np.asarray(values, dtype=np.float32).ravel().tolist())
    return blob


# ---- write / read ---------------------------------------------------------------


def test_round_trip(tmp_path):
    path = tmp_path / "w.caffemodel"
    a = arrays()
    write_caffemodel(
        path,
        [
            ("conv1", "Convolution", a["conv1"]),
            ("relu1", "ReLU", []),
            ("fc", "InnerProduct", a["fc"]),
        ],
        net_name="tiny",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel"]  # no temp file left
    net = read_caffemodel(path)
    assert net.name == "tiny"
    assert [(layer.name, layer.type, len(layer.blobs)) for layer in net.layer] == [
        ("conv1", "Convolution", 2),
        ("relu1", "ReLU", 0),
        ("fc", "InnerProduct", 1),
    ]
    for name, layer_index in (("conv1", 0), ("fc", 2)):
        for j, expected in enumerate(a[name]):
            got = blob_to_array(net.layer[layer_index].blobs[j], "x")
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_write_replaces_atomically_and_leaves_no_temp_on_failure(tmp_path):
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [("fc", "InnerProduct", [np.ones((2, 2))])])
    before = path.read_bytes()

    def layers():
        yield ("fc", "InnerProduct", [np.zeros((2, 2))])
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_caffemodel(path, layers())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel"]


def test_failed_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [("fc", "InnerProduct", [np.ones((2, 2))])])
    before = path.read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("os.replace", refuse)
    with pytest.raises(BpinspectError) as e:
        write_caffemodel(path, [("fc", "InnerProduct", [np.zeros((2, 2))])])
    assert str(e.value) == f"{path}: cannot write: Permission denied"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel"]


def test_written_bytes_are_protobufs_own_serialization(tmp_path):
    a = arrays()
    path = tmp_path / "w.caffemodel"
    layers = [("conv1", "Convolution", a["conv1"]), ("relu", "ReLU", []), ("fc", "", a["fc"])]
    write_caffemodel(path, layers, net_name="n")
    plain = caffe_pb2.NetParameter(name="n")
    for name, type_name, blobs in layers:
        layer = plain.layer.add(name=name, type=type_name)
        for x in blobs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(x.shape)
            blob.data.extend(np.asarray(x, np.float32).ravel().tolist())
    assert path.read_bytes() == plain.SerializeToString()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_diffs_and_float64_are_written_as_blob_to_proto_does(tmp_path, dtype):
    """Blob<float>::ToProto(write_diff): data, diff; Blob<double>: double_data,
    double_diff; the bytes equal protobuf's own serialization, and read back exactly."""
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal(3).astype(dtype)]
    grads = [rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal(3).astype(dtype)]
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [("fc", "InnerProduct", weights)], diffs=[grads])
    plain = caffe_pb2.NetParameter()
    layer = plain.layer.add(name="fc", type="InnerProduct")
    for w, g in zip(weights, grads, strict=True):
        blob = layer.blobs.add()
        blob.shape.dim.extend(w.shape)
        values, diffs = (blob.double_data, blob.double_diff) if dtype == np.float64 else \
            (blob.data, blob.diff)
        values.extend(w.ravel().tolist())
        diffs.extend(g.ravel().tolist())
    assert path.read_bytes() == plain.SerializeToString()
    back = read_caffemodel(path).layer[0].blobs
    for proto, w in zip(back, weights, strict=True):
        got = blob_to_array(proto, "x")
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, w)


def test_write_into_missing_directory(tmp_path):
    path = tmp_path / "nope" / "w.caffemodel"
    with pytest.raises(BpinspectError, match=r"does not exist$"):
        write_caffemodel(path, [])


def test_written_file_has_ordinary_permissions(tmp_path):
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [])
    assert path.stat().st_mode & 0o044  # readable by group/others under a usual umask


# ---- blobs --------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 3, 4, 5), (1, 2, 1, 3, 2)])
def test_array_to_blob_matches_the_plain_protobuf_encoding(shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 3.5
    fast = array_to_blob(a)
    plain = caffe_pb2.BlobProto()
    plain.shape.dim.extend(shape)
    plain.data.extend(a.ravel().tolist())
    assert fast.SerializeToString() == plain.SerializeToString()
    back = blob_to_array(fast, "b")
    assert back.shape == shape
    np.testing.assert_array_equal(back, a)


def test_array_to_blob_keeps_every_float32_bit():
    bits = np.array([0, 0x80000000, 1, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x3F800001], np.uint32)
    a = bits.view(np.float32)
    back = blob_to_array(array_to_blob(a), "b")
    np.testing.assert_array_equal(back.view(np.uint32), bits)


def test_legacy_dims():
    blob = legacy_blob((2, 3, 4, 5), np.arange(120))
    assert blob_shape(blob) == (2, 3, 4, 5)
    np.testing.assert_array_equal(blob_to_array(blob, "b"), np.arange(120).reshape(2, 3, 4, 5))


def test_legacy_dims_win_over_shape_as_in_blob_from_proto():
    blob = legacy_blob((1, 1, 2, 3), np.arange(6))
    blob.shape.dim.extend([6])
    assert blob_to_array(blob, "b").shape == (1, 1, 2, 3)


def test_shape_equals_pads_legacy_shapes_with_ones():
    blob = legacy_blob((1, 1, 1, 4), np.zeros(4))
    assert shape_equals((4,), blob)
    assert shape_equals((1, 4), blob)
    assert shape_equals((1, 1, 1, 4), blob)
    assert not shape_equals((4, 1), blob)
    assert not shape_equals((1, 1, 1, 1, 4), blob)  # more than 4 axes never equal
    conv = legacy_blob((96, 3, 11, 11), np.zeros(96 * 3 * 11 * 11))
    assert shape_equals((96, 3, 11, 11), conv)
    assert not shape_equals((3, 96, 11, 11), conv)
    modern = array_to_blob(np.zeros((4,)))
    assert shape_equals((4,), modern)
    assert not shape_equals((1, 4), modern)  # modern shapes compare exactly


def test_double_data_is_used():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([3])
    blob.double_data.extend([0.5, 1e-50, 3.0])
    blob.data.extend([9.0, 9.0, 9.0])
    got = blob_to_array(blob, "b")
    assert got.dtype == np.float64  # kept for a float64 net; a float32 one rounds it
    np.testing.assert_array_equal(got, np.array([0.5, 1e-50, 3.0]))


def test_count_mismatch_names_where():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1.0] * 5)
    with pytest.raises(BpinspectError) as e:
        blob_to_array(blob, "w.caffemodel: layer 'fc' param 0")
    assert (
        str(e.value)
        == "w.caffemodel: layer 'fc' param 0: holds 5 values but its shape (2, 3) needs 6"
    )


def test_read_binaryproto_mean(tmp_path):
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(legacy_blob((1, 3, 2, 2), np.arange(12)).SerializeToString())
    assert read_binaryproto(path).shape == (1, 3, 2, 2)


# ---- V1 caffemodels -------------------------------------------------------------


def v1_caffemodel(path, conv_w, conv_b) -> None:
    """A caffemodel as Caffe wrote them before 2015 (bvlc_reference_caffenet's format)."""
    net = caffe_pb2.NetParameter(name="CaffeNet")
    net.input.append("data")  # old caffemodels name the input without dims
    data = net.layers.add(name="data", type=caffe_pb2.V1LayerParameter.DATA, top=["data", "label"])
    data.include.add(phase=caffe_pb2.TRAIN)
    conv = net.layers.add(name="conv1", type=caffe_pb2.V1LayerParameter.CONVOLUTION)
    conv.bottom.append("data")
    conv.top.append("conv1")
    conv.blobs.append(legacy_blob(conv_w.shape, conv_w))
    conv.blobs.append(legacy_blob((1, 1, 1, conv_b.size), conv_b))
    conv.blobs_lr.extend([1, 2])
    conv.weight_decay.extend([1, 0])
    conv.convolution_param.num_output = conv_w.shape[0]
    net.layers.add(
        name="relu1", type=caffe_pb2.V1LayerParameter.RELU, bottom=["conv1"], top=["conv1"]
    )
    net.layers.add(
        name="loss", type=caffe_pb2.V1LayerParameter.SOFTMAX_LOSS, bottom=["conv1", "label"]
    )
    path.write_bytes(net.SerializeToString())


def test_v1_caffemodel_reads_upgraded(tmp_path):
    path = tmp_path / "old.caffemodel"
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4)
    v1_caffemodel(path, w, b)
    notes: list[str] = []
    net = read_caffemodel(path, notes)
    assert len(net.layers) == 0 and len(net.input) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("data", "Data"),
        ("conv1", "Convolution"),
        ("relu1", "ReLU"),
        ("loss", "SoftmaxWithLoss"),
    ]
    conv = net.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert blob_shape(conv.blobs[0]) == (4, 3, 2, 2)
    assert blob_shape(conv.blobs[1]) == (1, 1, 1, 4)
    assert f"{path}: upgraded from the V1 net format (layers {{ type: ENUM }})" in notes

    params = {"conv1": [Blob("conv1_w", (4, 3, 2, 2)), Blob("conv1_b", (4,))]}
    copy_notes = copy_trained_layers(
        net, params, str(path), layer_names=["data", "conv1", "relu1", "prob"]
    )
    np.testing.assert_array_equal(params["conv1"][0].data, w.astype(np.float32))
    np.testing.assert_array_equal(params["conv1"][1].data, b.astype(np.float32))
    assert copy_notes == [f"ignored layer 'loss' from {path}: not in the net"]


# ---- bad files --------------------------------------------------------------------


def test_truncated_file(tmp_path):
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [("fc", "InnerProduct", [np.ones((64, 64))])])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BpinspectError) as e:
        read_caffemodel(path)
    message = str(e.value)
    assert message.startswith(f"{path}: truncated or corrupt .caffemodel (a binary NetParameter)")
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(BpinspectError, match=r": no such file$"):
        read_caffemodel(tmp_path / "nope.caffemodel")


def test_empty_file(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(BpinspectError) as e:
        read_caffemodel(path)
    assert str(e.value) == f"{path}: empty file; expected a binary .caffemodel"


def test_prototxt_given_as_weights(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text('name: "CaffeNet"\nlayer {\n  name: "data"\n  type: "Input"\n}\n')
    with pytest.raises(BpinspectError) as e:
        read_caffemodel(path)
    assert "looks like" in str(e.value) and "text" in str(e.value)
    assert str(e.value).startswith(f"{path}: ")


def test_hdf5_snapshot(tmp_path):
    path = tmp_path / "w.caffemodel.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(BpinspectError, match="HDF5"):
        read_caffemodel(path)


# ---- copy_trained_layers ------------------------------------------------------------


def weights_net(a: dict[str, list[np.ndarray]]) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter()
    for name, blobs in a.items():
        layer = net.layer.add(name=name)
        for x in blobs:
            layer.blobs.append(array_to_blob(x))
    net.layer.add(name="loss", type="SoftmaxWithLoss")
    return net


def test_copy_into_blobs(xp):
    a = arrays()
    params = {
        "conv1": [Blob("w", (4, 3, 2, 2), xp=xp), Blob("b", (4,), xp=xp)],
        "fc": [Blob("w", (10, 48), xp=xp, dtype=np.float64)],
    }
    conv_w = params["conv1"][0].data
    notes = copy_trained_layers(weights_net(a), params, "w.caffemodel")
    assert notes == []  # "loss" has no blobs: nothing to ignore without layer_names
    assert params["conv1"][0].data is conv_w  # written in place
    assert params["fc"][0].dtype == np.float64
    for name in ("conv1", "fc"):
        for blob, expected in zip(params[name], a[name], strict=True):
            np.testing.assert_array_equal(
                to_host(blob.data), expected.astype(np.float32).astype(blob.dtype)
            )


def test_shape_mismatch_names_layer_index_and_both_shapes():
    params = {"conv1": [Blob("w", (8, 3, 2, 2)), Blob("b", (8,))], "fc": [Blob("w", (10, 48))]}
    with pytest.raises(BpinspectError) as e:
        copy_trained_layers(weights_net(arrays()), params, "w.caffemodel")
    assert str(e.value) == (
        "w.caffemodel: cannot copy param 0 of layer 'conv1': shape mismatch: the file has "
        "(4, 3, 2, 2), the net has (8, 3, 2, 2) (rename the layer to learn it from scratch)"
    )


def test_blob_count_mismatch():
    params = {"conv1": [Blob("w", (4, 3, 2, 2))]}
    with pytest.raises(BpinspectError) as e:
        copy_trained_layers(weights_net(arrays()), params, "w.caffemodel")
    assert str(e.value) == "w.caffemodel: layer 'conv1' has 2 blob(s) in the file but 1 in the net"


def test_layer_in_the_net_without_params_but_with_blobs_in_the_file():
    params = {"conv1": [Blob("w", (4, 3, 2, 2)), Blob("b", (4,))]}
    with pytest.raises(
        BpinspectError, match=r"layer 'fc' has 1 blob\(s\) in the file but 0 in the net"
    ):
        copy_trained_layers(weights_net(arrays()), params, "w", layer_names=["conv1", "fc", "loss"])


def test_notes_for_ignored_and_uncovered_layers():
    params = {
        "conv1": [Blob("w", (4, 3, 2, 2)), Blob("b", (4,))],
        "fc8_new": [Blob("w", (2, 2))],
    }
    notes = copy_trained_layers(
        weights_net(arrays()), params, "w.caffemodel", layer_names=["conv1", "fc8_new"]
    )
    assert notes == [
        "ignored layer 'fc' from w.caffemodel: not in the net",
        "ignored layer 'loss' from w.caffemodel: not in the net",
        "layer 'fc8_new' has no weights in w.caffemodel: it keeps its filled values",
    ]
    assert not params["fc8_new"][0].data.any()


def test_legacy_shaped_bias_copies_into_a_1d_blob():
    weights = caffe_pb2.NetParameter()
    layer = weights.layer.add(name="fc")
    layer.blobs.append(legacy_blob((1, 1, 3, 2), np.arange(6)))
    layer.blobs.append(legacy_blob((1, 1, 1, 3), [7, 8, 9]))
    params = {"fc": [Blob("w", (3, 2)), Blob("b", (3,))]}
    copy_trained_layers(weights, params, "w")
    np.testing.assert_array_equal(params["fc"][0].data, np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(params["fc"][1].data, [7, 8, 9])
