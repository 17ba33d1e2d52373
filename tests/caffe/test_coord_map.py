"""caffe.coord_map: maps between NetSpec tops and crop(), checked against offsets worked
out by hand from the layer parameters, and by running the cropped nets."""

from __future__ import annotations

import numpy as np
import pytest

import bpinspect.caffe as caffe
from bpinspect.caffe import layers as L
from bpinspect.caffe import params as P
from bpinspect.caffe.coord_map import coord_map_from_to, crop
from bpinspect.errors import BpinspectError

VGG16_BLOCKS = [2, 2, 3, 3, 3]  # convolutions per block, each 3x3 pad 1, then 2x2 max pool


def fcn32s(size: int = 16, width: int = 2):
    """FCN-32s as fcn.berkeleyvision.org writes it (conv1_1 pad 100, fc6 7x7, a 64x64
    stride-32 deconvolution, crop to the data), thin enough to run."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, size, size]))
    bottom = n.data
    for block, convs in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, convs + 1):
            pad = 100 if (block, i) == (1, 1) else 1
            conv = L.Convolution(bottom, kernel_size=3, pad=pad, num_output=width)
            setattr(n, f"conv{block}_{i}", conv)
            bottom = L.ReLU(conv, in_place=True)
            setattr(n, f"relu{block}_{i}", bottom)
        bottom = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        setattr(n, f"pool{block}", bottom)
    n.fc6 = L.Convolution(n.pool5, kernel_size=7, num_output=width)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.Convolution(n.drop6, kernel_size=1, num_output=width)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.score_fr = L.Convolution(n.relu7, kernel_size=1, num_output=width)
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(
        num_output=width, kernel_size=64, stride=32, bias_term=False))
    n.score = crop(n.upscore, n.data)
    return n


def fcn32s_offset_by_hand() -> float:
    """Where upscore's pixel 0 lies in the data, walking the centre of each window back:
    a convolution or pooling output x sits at stride * x - pad + (k - 1) / 2 of its
    input; a deconvolution output x at (x + pad - (k - 1) / 2) / stride of its input."""
    x = 0.0
    x = (x + 0 - (64 - 1) / 2) / 32  # upscore -> score_fr: -31.5 / 32
    x = x                           # score_fr, fc7: 1x1, stride 1, pad 0
    x = 1 * x - 0 + (7 - 1) / 2     # fc6 -> pool5: + 3
    for block in reversed(range(1, 6)):
        x = 2 * x - 0 + (2 - 1) / 2     # pool<block> -> its last conv: 2x + 0.5
        for i in reversed(range(1, VGG16_BLOCKS[block - 1] + 1)):
            pad = 100 if (block, i) == (1, 1) else 1
            x = 1 * x - pad + (3 - 1) / 2   # a 3x3 conv: -pad + 1
    return x  # = -19: data pixel 0 is upscore pixel 19


def test_fcn32s_crop_offset_is_19():
    assert fcn32s_offset_by_hand() == -19.0
    n = fcn32s()
    axis, scale, shift = coord_map_from_to(n.upscore, n.data)
    assert axis == 1 and np.all(scale == 1) and np.all(shift == -19)
    layer = n.to_proto().layer[-1]
    assert layer.type == "Crop" and list(layer.bottom) == ["upscore", "data"]
    assert layer.crop_param.axis == 2 and list(layer.crop_param.offset) == [19]


def test_fcn32s_net_runs_and_its_score_has_the_datas_extent(tmp_path):
    path = tmp_path / "fcn32s.prototxt"
    path.write_text(str(fcn32s(size=16).to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    assert net.blobs["upscore"].data.shape[2:] == (64, 64)
    out = net.forward(data=np.ones((1, 3, 16, 16), np.float32))
    assert out["score"].shape == (1, 2, 16, 16)
    np.testing.assert_array_equal(out["score"], net.blobs["upscore"].data[:, :, 19:35, 19:35])


@pytest.mark.parametrize("kernel, pad, dilation, offset", [
    (3, 2, 1, 1),  # 3x3 pad 2: one pixel more each side
    (3, 3, 1, 2),
    (5, 4, 1, 2),
    (3, 3, 2, 1),  # dilated: the window spans 5 pixels
])
def test_crop_aligns_an_identity_convolution_with_its_input(tmp_path, kernel, pad, dilation,
                                                             offset):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 7, 9]))
    n.conv = L.Convolution(n.data, kernel_size=kernel, pad=pad, dilation=dilation,
                           num_output=1)
    n.cropped = crop(n.conv, n.data)
    proto = n.to_proto()
    assert list(proto.layer[-1].crop_param.offset) == [offset]
    path = tmp_path / "net.prototxt"
    path.write_text(str(proto))
    net = caffe.Net(str(path), caffe.TEST)
    weight, bias = net.params["conv"]
    weight.data[...] = 0
    weight.data[0, 0, kernel // 2, kernel // 2] = 1  # the centre tap alone: a shift
    bias.data[...] = 0
    data = np.arange(63, dtype=np.float32).reshape(1, 1, 7, 9)
    out = net.forward(data=data)
    np.testing.assert_array_equal(out["cropped"], data)  # aligned pixel for pixel


def test_pycaffes_conv_pool_deconv_maps():
    def spec(pool: int, deconv_stride: int, pad: int = 0):
        n = caffe.NetSpec()
        n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
        n.conv = L.Convolution(n.data, num_output=10, kernel_size=3, pad=pad)
        n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool)
        n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=2 * deconv_stride,
                                   stride=deconv_stride)
        return n

    # The values of pycaffe's own test_coord_map.py: identity for a 2x pool and 2x deconv,
    n = spec(2, 2)
    axis, scale, shift = coord_map_from_to(n.deconv, n.data)
    assert (axis, float(scale[0]), float(shift[0])) == (1, 1.0, 0.0)
    n = spec(4, 4)  # a shift by one for 4x and 4x,
    axis, scale, shift = coord_map_from_to(n.deconv, n.data)
    assert (axis, float(scale[0]), float(shift[0])) == (1, 1.0, -1.0)
    n = spec(2, 2, pad=3)  # and a conv pad of 3 three more pixels to crop
    assert float(coord_map_from_to(n.deconv, n.data)[2][0]) == -3.0
    n.relu = L.ReLU(n.deconv)  # pointwise: the same map
    assert float(coord_map_from_to(n.relu, n.data)[2][0]) == -3.0


def test_a_crop_layers_offset_maps_back():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 20, 20]))
    n.small = L.Input(shape=dict(dim=[1, 1, 10, 10]))
    n.cut = L.Crop(n.data, n.small, crop_param=dict(axis=2, offset=[4]))
    axis, scale, shift = coord_map_from_to(n.cut, n.data)  # cut's pixel 0 is data's 4
    assert (axis, float(np.ravel(scale)[0]), float(np.ravel(shift)[0])) == (1, 1.0, 4.0)


def test_crop_refuses_what_cannot_be_cropped():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    n.pool = L.Pooling(n.data, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    with pytest.raises(BpinspectError, match="scale"):
        crop(n.pool, n.data)
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=1)  # no pad: smaller
    with pytest.raises(BpinspectError, match="negative offset"):
        crop(n.conv, n.data)
    n.ip = L.InnerProduct(n.data, num_output=4)
    n.other = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    with pytest.raises(BpinspectError, match="no common top"):
        crop(n.ip, n.other)
