"""A net of the layers added after CaffeNet (FCN's Crop after a Deconvolution,
PReLU in place, a Parameter feeding Scale as its second bottom, MVN, Tile,
Reduction as the loss, Silence on an unused blob) builds, runs forward, and its
backward matches central differences of the loss through the whole net."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import CPU, select_device, to_host
from bpinspect.engine.net import Net
from bpinspect.io.prototxt import parse_net
from bpinspect.session.gradcheck import numerical_gradient, sample_coords

NET = """
name: "more_layers"
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool1" top: "up"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 bias_term: false } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "score"
        crop_param { axis: 2 offset: 1 } }
layer { name: "gain" type: "Parameter" top: "gain" parameter_param { shape { dim: 4 } } }
layer { name: "mvn" type: "MVN" bottom: "score" top: "norm" }
layer { name: "scale" type: "Scale" bottom: "norm" bottom: "gain" top: "scaled" }
layer { name: "tile" type: "Tile" bottom: "scaled" top: "tiled" tile_param { axis: 1 tiles: 2 } }
layer { name: "red" type: "Reduction" bottom: "tiled" top: "loss" loss_weight: 0.5
        reduction_param { operation: SUMSQ axis: 0 } }
layer { name: "spare" type: "Reduction" bottom: "pool1" top: "spare" }
layer { name: "silence" type: "Silence" bottom: "spare" }
"""
EPS = 1e-6


def device_of(xp):
    return CPU if xp is np else select_device("gpu")


def assert_close(analytic, numeric):
    analytic = np.asarray(analytic, dtype=np.float64)
    error = np.abs(analytic - numeric)
    assert (error <= 1e-6 * np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1)).all()
    assert (error <= 1e-5 * np.maximum(np.abs(analytic), np.abs(numeric)) + 1e-9).all(), (
        analytic, numeric)
    assert np.abs(numeric).max() > 0


def test_builds_and_backward_matches_central_differences(xp):
    net = Net(parse_net(NET, "<test>"), dtype=np.float64, device=device_of(xp))
    assert net.blobs["score"].shape == (2, 4, 9, 9)  # the crop of the 10x10 upsampled map
    assert net.blobs["norm"].shape == (2, 4, 9, 9)
    assert net.blobs["tiled"].shape == (2, 8, 9, 9)
    assert net.blobs["loss"].shape == ()
    assert net.params["prelu1"][0].shape == (4,)
    np.testing.assert_array_equal(to_host(net.params["prelu1"][0].data), 0.25)
    net.params["gain"][0].data[...] = net.device.asarray(np.array([0.5, -1.0, 2.0, 1.5]))

    rng = np.random.default_rng(0)
    x = rng.standard_normal(net.blobs["data"].shape)
    net.forward(data=x)
    # MVN makes every (n, c) plane mean 0, variance 1 (up to eps = 1e-9), the gain scales
    # channel c: the sum of squares is 2 tiles * 2 samples * 81 positions * sum(gain^2).
    expected = 2 * 2 * 81 * (0.25 + 1.0 + 4.0 + 2.25)
    assert float(to_host(net.blobs["loss"].data)) == pytest.approx(expected, rel=1e-7)
    assert net.loss == 0.5 * float(to_host(net.blobs["loss"].data))
    assert np.isfinite(to_host(net.blobs["spare"].data))

    # The loss does not depend on the data (MVN divides it out): project the tiled map
    # instead, so that every layer gets a gradient.
    r = rng.standard_normal(net.blobs["tiled"].shape)
    r_dev = net.device.asarray(r)

    def objective() -> float:
        net.forward()
        return float(to_host((net.blobs["tiled"].data * r_dev).sum()))

    objective()
    net.clear_param_diffs()
    net.backward(start="tile", tiled=r)
    data_diff = to_host(net.blobs["data"].diff).copy()
    slope_diff = to_host(net.params["prelu1"][0].diff).copy()
    up_diff = to_host(net.params["up"][0].diff).copy()
    gain_diff = to_host(net.params["gain"][0].diff).copy()
    for blob, analytic in [(net.blobs["data"].data, data_diff),
                           (net.params["prelu1"][0].data, slope_diff),
                           (net.params["up"][0].data, up_diff),
                           (net.params["gain"][0].data, gain_diff)]:
        coords = sample_coords(tuple(blob.shape), 8, 0)
        numeric = numerical_gradient(objective, blob, coords, EPS)
        assert_close([analytic[c] for c in coords], numeric)
    # A whole backward from the loss: Silence zeroes the diff of the blob it silences.
    net.blobs["spare"].diff[...] = 1
    net.forward()
    net.backward()
    assert (to_host(net.blobs["spare"].diff) == 0).all()
    assert net.layer_need_backward[net.layer_index("silence")]
    assert np.isfinite(to_host(net.blobs["data"].diff)).all()


LOSS_NET = """
name: "losses"
layer { name: "data" type: "Input" top: "data" top: "label" top: "target"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "score"
        inner_product_param { num_output: 3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "logit"
        inner_product_param { num_output: 2 } }
layer { name: "infogain" type: "InfogainLoss" bottom: "score" bottom: "label" top: "info"
        infogain_loss_param { source: "H.binaryproto" } }
layer { name: "xent" type: "SigmoidCrossEntropyLoss" bottom: "logit" bottom: "target"
        top: "xent" loss_weight: 2 }
layer { name: "argmax" type: "ArgMax" bottom: "score" top: "best" }
"""


def test_loss_net_reads_its_infogain_matrix_beside_the_net(tmp_path, monkeypatch):
    from bpinspect.proto import caffe_pb2

    h = np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.25], [0.5, 0.0, 1.0]])
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend([3, 3])
    proto.data.extend(h.ravel().tolist())
    (tmp_path / "H.binaryproto").write_bytes(proto.SerializeToString())
    (tmp_path / "losses.prototxt").write_text(LOSS_NET)
    monkeypatch.chdir("/")  # the relative source is found beside the net, not here
    net = Net(tmp_path / "losses.prototxt", dtype=np.float64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3))
    labels = np.array([0.0, 2.0, 1.0, 1.0])
    target = rng.uniform(0, 1, (4, 2))
    net.forward(data=x, label=labels, target=target)

    score = to_host(net.blobs["score"].data)
    logit = to_host(net.blobs["logit"].data)
    p = np.exp(score - score.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    info = -sum((h[int(lab)] * np.log(p[i])).sum() for i, lab in enumerate(labels)) / 4
    s = 1 / (1 + np.exp(-logit))
    xent = -(target * np.log(s) + (1 - target) * np.log(1 - s)).sum() / 4  # BATCH_SIZE
    assert float(to_host(net.blobs["info"].data)) == pytest.approx(info, rel=1e-12)
    assert float(to_host(net.blobs["xent"].data)) == pytest.approx(xent, rel=1e-12)
    assert net.loss == pytest.approx(info + 2 * xent, rel=1e-12)
    np.testing.assert_array_equal(to_host(net.blobs["best"].data).ravel(), score.argmax(axis=1))
    assert not net.layer_need_backward[net.layer_index("argmax")]

    def loss() -> float:
        net.forward()
        return net.loss

    loss()
    net.clear_param_diffs()
    net.backward()
    for name in ("ip", "ip2"):
        w = net.params[name][0]
        analytic = to_host(w.diff).copy()
        coords = sample_coords(tuple(w.shape), 6, 0)
        assert_close([analytic[c] for c in coords], numerical_gradient(loss, w.data, coords, EPS))



VOLUME_NET = """
name: "volumes"
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "target"
        input_param { shape { dim: 2 dim: 2 dim: 4 dim: 5 dim: 5 }
                      shape { dim: 2 dim: 3 dim: 4 dim: 2 dim: 4 } } }
layer { name: "conv3d" type: "Convolution" bottom: "data" top: "conv3d"
        convolution_param { num_output: 4 kernel_size: 3 kernel_size: 2 kernel_size: 3
                            pad: 1 stride: 2 group: 2 } }
layer { name: "up3d" type: "Deconvolution" bottom: "conv3d" top: "up3d"
        convolution_param { num_output: 3 kernel_size: 2 stride: 2 } }
layer { name: "seq" type: "Convolution" bottom: "up3d" top: "seq"
        convolution_param { num_output: 2 kernel_size: 3 axis: 3 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "seq" bottom: "target" top: "loss" }
"""


def test_a_3d_convolution_net_backward_matches_central_differences(xp):
    # 3-D convolution and deconvolution, then a 1-D one along the last axis (axis 3: the
    # 6 cells of the 4th axis are its channels, the 2 x 3 x 4 leading cells its images).
    net = Net(parse_net(VOLUME_NET, "<test>"), dtype=np.float64, device=device_of(xp))
    assert net.blobs["conv3d"].shape == (2, 4, 2, 3, 3)  # (4+2-3)/2+1, (5+2-2)/2+1, (5+2-3)/2+1
    assert net.blobs["up3d"].shape == (2, 3, 4, 6, 6)  # 2 * (S - 1) + 2
    assert net.blobs["seq"].shape == (2, 3, 4, 2, 4)  # 6 - 3 + 1
    assert net.params["seq"][0].shape == (2, 6, 3)
    rng = np.random.default_rng(1)
    net.forward(data=rng.standard_normal(net.blobs["data"].shape),
                target=rng.standard_normal(net.blobs["target"].shape))

    def loss() -> float:
        net.forward()
        return net.loss

    loss()
    net.clear_param_diffs()
    net.backward()
    blobs = [net.blobs["data"]] + [p for name in ("conv3d", "up3d", "seq")
                                   for p in net.params[name]]
    analytic = [to_host(b.diff).copy() for b in blobs]
    for blob, diff in zip(blobs, analytic, strict=True):
        coords = sample_coords(tuple(blob.shape), 8, 0)
        numeric = numerical_gradient(loss, blob.data, coords, EPS)
        assert_close([diff[c] for c in coords], numeric)
