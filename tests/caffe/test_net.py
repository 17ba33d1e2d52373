"""caffe.Net as pycaffe's python/caffe/test/test_net.py checks it, re-expressed, and the
rest of its names (forward/backward's start, end, blobs=, diffs=, forward_all,
forward_backward_all, share_with, copy_from, hdf5, blob_loss_weights)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import bpinspect.caffe as caffe
from bpinspect.errors import BpinspectError

SIMPLE = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 }
    data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 }
    bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 2.5 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label'
  top: 'loss' }
"""


@pytest.fixture
def net_file(tmp_path) -> Path:
    path = tmp_path / "simple.prototxt"
    path.write_text(SIMPLE)
    return path


@pytest.fixture
def net(net_file) -> caffe.Net:
    made = caffe.Net(str(net_file), caffe.TRAIN)
    rng = np.random.default_rng(0)
    made.blobs["label"].data[...] = rng.integers(13, size=made.blobs["label"].data.shape)
    return made


def test_layer_dict_and_types(net) -> None:
    assert list(net.layer_dict) == list(net._layer_names) == ["data", "conv", "ip", "loss"]
    for i, name in enumerate(net._layer_names):
        assert net.layer_dict[name].type == net.layers[i].type
    assert [layer.type for layer in net.layers] == [
        "DummyData", "Convolution", "InnerProduct", "SoftmaxWithLoss"]
    assert [b.data.shape for b in net.layers[1].blobs] == [(11, 2, 2, 2), (11,)]


def test_holding_blobs_beyond_the_net(net) -> None:
    params = sum((list(p) for p in net.params.values()), [])
    blobs = list(net.blobs.values())
    del net
    total = sum(float(p.data.sum() + p.diff.sum()) for p in params + blobs)
    assert np.isfinite(total)


def test_forward_backward_and_the_loss_gradient(net) -> None:
    out = net.forward()
    assert set(out) == {"loss"}
    ip = net.blobs["ip_blob"].data.astype(np.float64)
    label = net.blobs["label"].data.ravel().astype(int)
    prob = np.exp(ip - ip.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    assert sorted(set(label)) != [0]  # the labels set above, not DummyData's constant 0
    flt_min = np.finfo(np.float32).tiny  # Caffe's log(max(p, FLT_MIN))
    expected = -np.log(np.maximum(prob[np.arange(5), label], flt_min)).mean()
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-5)
    # From construction on the loss top's diff is its weight: backward() is the gradient.
    assert net.blobs["loss"].diff.ravel().tolist() == [1.0]
    diffs = net.backward()
    assert diffs == {}  # no net inputs (DummyData)
    onehot = np.eye(13)[label]
    np.testing.assert_allclose(net.blobs["ip_blob"].diff, (prob - onehot) / 5, rtol=1e-4,
                               atol=1e-7)


def test_forward_start_end(net) -> None:
    conv, ip = net.blobs["conv"], net.blobs["ip_blob"]
    sample = np.random.default_rng(1).uniform(size=conv.data.shape).astype(np.float32)
    conv.data[:] = sample
    out = net.forward(start="ip", end="ip")
    assert "ip_blob" in out
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    manual = np.array([w @ sample[i].reshape(-1) + b for i in range(sample.shape[0])])
    np.testing.assert_allclose(ip.data, manual, rtol=1e-3, atol=1e-5)
    # blobs= adds blobs to the result
    assert set(net.forward(blobs=["conv"], end="conv")) == {"conv"}
    assert set(net.forward(blobs=["conv"])) == {"conv", "loss"}


def test_backward_start_end(net) -> None:
    conv, ip = net.blobs["conv"], net.blobs["ip_blob"]
    sample = np.random.default_rng(2).uniform(size=ip.data.shape).astype(np.float32)
    ip.diff[:] = sample
    out = net.backward(start="ip", end="ip")
    assert "conv" in out
    w = net.params["ip"][0].data
    manual = np.array([w.T @ sample[i] for i in range(sample.shape[0])]).reshape(conv.shape)
    np.testing.assert_allclose(conv.diff, manual, rtol=1e-3, atol=1e-5)
    assert set(net.backward(diffs=["conv"], start="ip", end="ip")) == {"conv"}


def test_clear_param_diffs(net) -> None:
    net.forward()
    net.backward()
    diff = net.params["conv"][0].diff
    assert diff.max() > 0
    net.clear_param_diffs()
    assert (diff == 0).all()


def test_inputs_outputs_names_and_loss_weights(net) -> None:
    assert net.inputs == [] and net.outputs == ["loss"]
    assert net.top_names == OrderedDict([("data", ["data", "label"]), ("conv", ["conv"]),
                                         ("ip", ["ip_blob"]), ("loss", ["loss"])])
    assert net.bottom_names == OrderedDict([("data", []), ("conv", ["data"]),
                                            ("ip", ["conv"]), ("loss", ["ip_blob", "label"])])
    assert net.blob_loss_weights == OrderedDict(
        [("data", 0.0), ("label", 0.0), ("conv", 0.0), ("ip_blob", 0.0), ("loss", 1.0)])
    assert net._blob_names == list(net.blobs)
    assert net._outputs == [4] and net._inputs == []
    assert net._top_ids(0) == [0, 1] and net._bottom_ids(3) == [3, 1]


def test_save_and_read_with_each_constructor(net, net_file, tmp_path) -> None:
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    legacy = caffe.Net(str(net_file), str(weights), caffe.TRAIN)
    named = caffe.Net(str(net_file), caffe.TRAIN, weights=str(weights))
    for other in (legacy, named):
        for name, blobs in net.params.items():
            for j, blob in enumerate(blobs):
                assert np.abs(blob.data - other.params[name][j].data).sum() == 0
    with pytest.raises(TypeError, match="phase"):
        caffe.Net(str(net_file))


def test_save_hdf5_and_load_hdf5(net, net_file, tmp_path) -> None:
    h5 = tmp_path / "w.h5"
    net.save_hdf5(str(h5))
    import h5py

    with h5py.File(h5) as f:  # Caffe's layout: data/<layer>/<param index>
        assert sorted(f["data"]) == ["conv", "data", "ip", "loss"]
        assert sorted(f["data/conv"]) == ["0", "1"]
        np.testing.assert_array_equal(f["data/ip/0"][()], net.params["ip"][0].data)
    other = caffe.Net(str(net_file), caffe.TRAIN)
    other.params["conv"][0].data[...] = 0
    other.load_hdf5(str(h5))
    for name, blobs in net.params.items():
        for j, blob in enumerate(blobs):
            assert np.abs(blob.data - other.params[name][j].data).sum() == 0
    # copy_from and the weights= argument take an HDF5 file too, as Caffe's do.
    third = caffe.Net(str(net_file), caffe.TRAIN, weights=str(h5))
    np.testing.assert_array_equal(third.params["ip"][0].data, net.params["ip"][0].data)


def test_share_with_shares_data_not_diffs(net, net_file) -> None:
    other = caffe.Net(str(net_file), caffe.TRAIN)
    other.share_with(net)
    net.params["ip"][0].data[...] = 0.25
    assert (other.params["ip"][0].data == 0.25).all()
    other.params["ip"][0].diff[...] = 3
    assert not (net.params["ip"][0].diff == 3).any()


LEVELS = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel"
  inner_product_param { num_output: 1 } }
layer { name: "Level0Only" type: "InnerProduct" bottom: "data" top: "Level0Only"
  include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
  include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "Level>=0" type: "InnerProduct" bottom: "data" top: "Level>=0"
  include { min_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level>=1" type: "InnerProduct" bottom: "data" top: "Level>=1"
  include { min_level: 1 } inner_product_param { num_output: 1 } }
"""

STAGES = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A"
  include { stage: "A" } inner_product_param { num_output: 1 } }
layer { name: "B" type: "InnerProduct" bottom: "data" top: "B"
  include { stage: "B" } inner_product_param { num_output: 1 } }
layer { name: "AorB" type: "InnerProduct" bottom: "data" top: "AorB"
  include { stage: "A" } include { stage: "B" } inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB"
  include { stage: "A" stage: "B" } inner_product_param { num_output: 1 } }
"""

ALL_IN_ONE = """
layer { name: "train_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TRAIN stage: "train" } }
layer { name: "val_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TEST stage: "val" } }
layer { name: "deploy_data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } }
  include { phase: TEST stage: "deploy" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  include: { phase: TRAIN stage: "train" } include: { phase: TEST stage: "val" } }
layer { name: "pred" type: "Softmax" bottom: "ip" top: "pred"
  include: { phase: TEST stage: "deploy" } }
"""


def _non_data_blobs(net: caffe.Net) -> list[str]:
    return [b for b in net.blobs if "data" not in b]


@pytest.mark.parametrize(("kwargs", "blobs"), [
    ({}, ["NoLevel", "Level0Only", "Level>=0"]),
    ({"level": 1}, ["NoLevel", "Level1Only", "Level>=0", "Level>=1"]),
])
def test_levels(tmp_path, kwargs, blobs) -> None:
    path = tmp_path / "levels.prototxt"
    path.write_text(LEVELS)
    assert _non_data_blobs(caffe.Net(str(path), caffe.TEST, **kwargs)) == blobs


@pytest.mark.parametrize(("stages", "blobs"), [
    (["A"], ["A", "AorB"]), (["B"], ["B", "AorB"]), (["A", "B"], ["A", "B", "AorB", "AandB"]),
])
def test_stages(tmp_path, stages, blobs) -> None:
    path = tmp_path / "stages.prototxt"
    path.write_text(STAGES)
    assert _non_data_blobs(caffe.Net(str(path), caffe.TEST, stages=stages)) == blobs


@pytest.mark.parametrize(("phase", "stage", "outputs"), [
    (caffe.TRAIN, "train", ["loss"]), (caffe.TEST, "val", ["loss"]),
    (caffe.TEST, "deploy", ["pred"]),
])
def test_all_in_one(tmp_path, phase, stage, outputs) -> None:
    path = tmp_path / "all.prototxt"
    path.write_text(ALL_IN_ONE)
    net = caffe.Net(str(path), phase, stages=[stage])
    assert list(net.blobs["data"].shape) == [1, 1, 10, 10]
    assert net.outputs == outputs


DEPLOY = """name: 'tiny' force_backward: true
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 4 dim: 3 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 }
  bias_filler { type: 'gaussian' std: 1 } } }
"""


@pytest.fixture
def tiny(tmp_path) -> caffe.Net:
    path = tmp_path / "tiny.prototxt"
    path.write_text(DEPLOY)
    return caffe.Net(str(path), caffe.TEST)


def test_forward_and_backward_with_arrays(tiny) -> None:
    w, b = tiny.params["ip"][0].data, tiny.params["ip"][1].data
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = tiny.forward(data=x)
    np.testing.assert_allclose(out["ip"], x @ w.T + b, rtol=1e-6)
    top = np.ones((4, 2), dtype=np.float32)
    grads = tiny.backward(ip=top)
    np.testing.assert_allclose(grads["data"], top @ w, rtol=1e-6)
    with pytest.raises(BpinspectError, match="do not match net inputs"):
        tiny.forward(nothing=x)
    with pytest.raises(BpinspectError, match="batch"):
        tiny.forward(data=x[:3])
    with pytest.raises(BpinspectError, match="do not match net outputs"):
        tiny.backward(data=top)


def test_forward_all_and_forward_backward_all_pad_the_last_batch(tiny) -> None:
    w, b = tiny.params["ip"][0].data.astype(np.float64), tiny.params["ip"][1].data
    x = np.random.default_rng(3).standard_normal((10, 3)).astype(np.float32)
    out = tiny.forward_all(data=x)
    assert out["ip"].shape == (10, 2)  # 3 batches of 4, the last one padded then cut
    np.testing.assert_allclose(out["ip"], x @ w.T + b, rtol=1e-5, atol=1e-6)
    top = np.random.default_rng(4).standard_normal((10, 2)).astype(np.float32)
    outs, diffs = tiny.forward_backward_all(data=x, ip=top)
    np.testing.assert_allclose(outs["ip"], x @ w.T + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffs["data"], top @ w, rtol=1e-5, atol=1e-6)


def test_reshape_by_forward_and_by_net_reshape(tiny) -> None:
    tiny.blobs["data"].reshape(7, 3)
    out = tiny.forward(data=np.ones((7, 3)))  # forward reshapes, as Caffe's layers do
    assert out["ip"].shape == (7, 2)
    tiny.blobs["data"].reshape(2, 3)
    tiny.reshape()
    assert tiny.blobs["ip"].shape == (2, 2)
    assert tiny.blobs["ip"].num == 2 and tiny.blobs["ip"].channels == 2


def test_layer_view_reshape(tiny) -> None:
    tiny.blobs["data"].reshape(5, 3)
    tiny.layers[1].reshape()
    assert tiny.blobs["ip"].shape == (5, 2)


def test_modes_and_names() -> None:
    caffe.set_mode_cpu()
    caffe.set_device(0)
    caffe.set_random_seed(0)
    assert "Convolution" in caffe.layer_type_list() and "Python" in caffe.layer_type_list()
    assert caffe.TRAIN == 0 and caffe.TEST == 1
    assert caffe.proto.caffe_pb2.TRAIN == caffe.TRAIN
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0 and not caffe.has_nccl()
    timer = caffe.Timer()
    timer.start()
    timer.stop()
    assert timer.ms >= 0 and timer.seconds == timer.ms / 1000
    for name in ("Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
                 "AdaDeltaSolver", "AdamSolver", "get_solver", "Layer", "io", "set_mode_gpu",
                 "NetSpec", "layers", "params", "to_proto", "Classifier", "Timer"):
        assert hasattr(caffe, name), name


def test_set_random_seed_seeds_the_fillers(net_file) -> None:
    caffe.set_random_seed(5)
    a = caffe.Net(str(net_file), caffe.TEST).params["ip"][0].data.copy()
    b = caffe.Net(str(net_file), caffe.TEST).params["ip"][0].data.copy()
    caffe.set_random_seed(6)
    c = caffe.Net(str(net_file), caffe.TEST).params["ip"][0].data.copy()
    caffe._mode._state["seed"] = None
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_host_copies_as_on_a_gpu_are_written_back_before_the_net_runs(tiny) -> None:
    """On a GPU, data/diff are host copies (pycaffe's NumPy view): writes reach the
    device arrays when the net next runs. Exercised here with the CPU's arrays."""
    tiny._staging.active = True
    engine = tiny.engine
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    tiny.blobs["data"].data[...] = x
    assert not np.array_equal(engine.blobs["data"].data, x)  # not yet
    out = tiny.forward()
    np.testing.assert_array_equal(engine.blobs["data"].data, x)
    w, b = engine.params["ip"][0].data, engine.params["ip"][1].data
    np.testing.assert_allclose(out["ip"], x @ w.T + b, rtol=1e-6)
    assert out["ip"] is not engine.blobs["ip"].data
    tiny.params["ip"][1].data[...] = 0
    tiny.forward()
    assert (engine.params["ip"][1].data == 0).all()


def test_set_input_arrays_serves_a_memory_data_net(tmp_path) -> None:
    path = tmp_path / "memory.prototxt"
    path.write_text(
        "layer { name: 'data' type: 'MemoryData' top: 'data' top: 'label'\n"
        "  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }\n"
        "layer { name: 'flat' type: 'Flatten' bottom: 'data' top: 'flat' }\n")
    net = caffe.Net(str(path), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    labels = np.array([3, 1, 4, 1], dtype=np.float32)  # 1-d: pycaffe adds the axes
    net.set_input_arrays(data, labels)
    first = net.forward()["flat"].copy()
    np.testing.assert_array_equal(first, data[:2].reshape(2, 4))
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[:2])
    np.testing.assert_array_equal(net.forward()["flat"], data[2:].reshape(2, 4))
    with pytest.raises(BpinspectError, match="multiple of batch_size"):
        net.set_input_arrays(data[:3], labels[:3])
