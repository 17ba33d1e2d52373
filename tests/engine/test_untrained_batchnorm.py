"""Without weights, BatchNorm layers that use global statistics start from identity
statistics (not Caffe's zeros, which scale by 1/sqrt(eps) and overflow a deep net),
Scale from 1 and Bias from 0, and the net's notes say which layers."""

from __future__ import annotations

import numpy as np

from bpinspect.engine.net import Net
from bpinspect.io.prototxt import parse_net

INPUT = ('layer { name: "data" type: "Input" top: "data" '
         'input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n')


def bn_chain(depth: int, scale: bool = True) -> str:
    text = INPUT
    bottom = "data"
    for i in range(depth):
        text += f'layer {{ name: "bn{i}" type: "BatchNorm" bottom: "{bottom}" top: "b{i}" }}\n'
        bottom = f"b{i}"
        if scale:
            text += (f'layer {{ name: "sc{i}" type: "Scale" bottom: "{bottom}" top: "s{i}" '
                     "scale_param { bias_term: true } }\n")
            bottom = f"s{i}"
    return text


def make(text: str, **kwargs) -> Net:
    kwargs.setdefault("dtype", np.float64)
    return Net(parse_net(text, "<test>"), **kwargs)


def test_deep_chain_without_weights_passes_its_input_through():
    depth = 40  # with Caffe's zeros: x * (1/sqrt(1e-5))^40 = x * 1e100, inf in float32
    net = make(bn_chain(depth), dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = net.forward(data=x)[f"s{depth - 1}"]
    eps = float(np.float32(1e-5))
    np.testing.assert_allclose(out, x / np.sqrt(1 + eps) ** depth, rtol=1e-4)
    bn = [b.data for b in net.params["bn0"]]
    np.testing.assert_array_equal(bn[0], np.zeros(3))
    np.testing.assert_array_equal(bn[1], np.ones(3))
    np.testing.assert_array_equal(bn[2], np.ones(1))
    np.testing.assert_array_equal(net.params["sc0"][0].data, np.ones(3))
    np.testing.assert_array_equal(net.params["sc0"][1].data, np.zeros(3))


def test_notes_name_the_layers_filled_so():
    net = make(bn_chain(2))
    bn_notes = [n for n in net.notes if "identity statistics" in n]
    assert bn_notes == ["no --weights given: bn0, bn1 filled with identity statistics "
                        "(mean 0, variance 1, moving-average factor 1)"]
    scale_notes = [n for n in net.notes if "Scale" in n]
    assert len(scale_notes) == 1 and "sc0, sc1" in scale_notes[0]
    assert "scale 1 and bias 0" in scale_notes[0]


def test_batch_statistics_keep_caffes_zeros():
    # TRAIN: the running sums start from 0 as in Caffe; nothing to say in the notes.
    net = make(bn_chain(1, scale=False), phase="train")
    for blob in net.params["bn0"]:
        np.testing.assert_array_equal(blob.data, 0)
    assert not [n for n in net.notes if "identity" in n]


def test_weights_that_cover_the_layer_replace_the_identity(tmp_path):
    trained = make(bn_chain(1, scale=False))
    trained.params["bn0"][0].data[...] = [1.0, 2.0, 3.0]
    trained.params["bn0"][1].data[...] = [4.0, 5.0, 6.0]
    trained.params["bn0"][2].data[...] = 2.0
    path = tmp_path / "bn.caffemodel"
    trained.save(path)
    net = make(bn_chain(1, scale=False), weights=path)
    np.testing.assert_array_equal(net.params["bn0"][0].data, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(net.params["bn0"][2].data, [2.0])
    assert not [n for n in net.notes if "identity" in n]


def test_weights_without_the_layer_leave_it_identity_and_say_so(tmp_path):
    # A caffemodel for a net without the BatchNorm layer: bn0 is not covered.
    trained = make(INPUT + 'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" '
                   'convolution_param { num_output: 2 kernel_size: 1 } }')
    path = tmp_path / "other.caffemodel"
    trained.save(path)
    net = make(bn_chain(1, scale=False), weights=path)
    np.testing.assert_array_equal(net.params["bn0"][1].data, [1.0, 1.0, 1.0])
    assert f"{path} has no weights for bn0: filled with identity statistics" in " ".join(net.notes)
