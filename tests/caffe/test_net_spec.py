"""caffe.NetSpec / layers / params / to_proto as pycaffe's test_net_spec.py checks them,
re-expressed, and the prototxt they write loaded back into a Net that runs."""

from __future__ import annotations

import numpy as np
import pytest

import bpinspect.caffe as caffe
from bpinspect.caffe import layers as L
from bpinspect.caffe import params as P


def lenet(batch_size: int):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                         dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(batch_size: int):
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    loss = L.SoftmaxWithLoss(ip2, label)
    return loss.to_proto()


def load(tmp_path, proto) -> caffe.Net:
    path = tmp_path / "spec.prototxt"
    path.write_text(str(proto))
    return caffe.Net(str(path), caffe.TEST)


def test_lenet_named_and_anonymous(tmp_path) -> None:
    proto = lenet(4)
    assert proto.layer[6].bottom == proto.layer[6].top  # relu1 in place
    assert [layer.name for layer in proto.layer] == [
        "data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    conv1 = proto.layer[1]
    assert conv1.convolution_param.num_output == 20
    assert list(conv1.convolution_param.kernel_size) == [5]  # one value, a repeated field
    assert conv1.convolution_param.weight_filler.type == "xavier"
    assert proto.layer[2].pooling_param.pool == P.Pooling.MAX == 0
    assert proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
    net = load(tmp_path, proto)
    assert len(net.layers) == 9
    assert net.blobs["ip2"].data.shape == (4, 10)
    assert np.isfinite(float(net.forward()["loss"]))

    anon = anon_lenet(4)
    assert anon.layer[6].bottom == anon.layer[6].top
    assert [layer.name for layer in anon.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2",
        "InnerProduct1", "ReLU1", "InnerProduct2", "SoftmaxWithLoss1"]
    assert list(anon.layer[0].top) == ["DummyData1", "DummyData2"]
    assert len(load(tmp_path, anon).layers) == 9


def test_zero_tops(tmp_path) -> None:
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    proto = n.to_proto()
    assert [layer.name for layer in proto.layer] == ["data", "silence_data", "silence_data2"]
    assert len(load(tmp_path, proto).forward()) == 0


def test_type_error_for_a_non_top_input() -> None:
    data = L.DummyData(ntop=2)
    message = r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"
    with pytest.raises(TypeError, match=message):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


def test_fields_of_the_layer_and_of_the_type() -> None:
    n = caffe.NetSpec()
    n.x = L.Input(shape=dict(dim=[2, 3]))
    n.y = L.InnerProduct(n.x, num_output=2, param=[dict(lr_mult=1), dict(lr_mult=2)],
                         loss_weight=0.5, include=dict(phase=caffe.TEST))
    layer = n.to_proto().layer[1]
    assert [p.lr_mult for p in layer.param] == [1, 2]
    assert list(layer.loss_weight) == [0.5] and layer.include[0].phase == caffe.TEST
    assert layer.inner_product_param.num_output == 2
    assert n.y is n["y"] and n.tops["x"] is n.x
