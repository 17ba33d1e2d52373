"""caffe.io as pycaffe documents it: proto/datum conversions, the Transformer's order of
steps, load_image, resize_image and oversample, checked against values by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import bpinspect.caffe as caffe
from bpinspect.caffe.proto import caffe_pb2


def test_blobproto_round_trip_and_the_legacy_shape() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    d = -a
    blob = caffe.io.array_to_blobproto(a, d)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), a)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), d)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4, data=list(range(24)))
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 2, 3, 4)
    text = caffe.io.arraylist_to_blobprotovector_str([a, a[0]])
    vec = caffe_pb2.BlobProtoVector.FromString(text)
    assert [list(b.shape.dim) for b in vec.blobs] == [[2, 3, 4], [3, 4]]
    back = caffe.io.blobprotovector_str_to_arraylist(text)
    np.testing.assert_array_equal(back[1], a[0])


def test_datum_round_trip() -> None:
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(pixels, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == pixels.tobytes() and len(datum.float_data) == 0
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), pixels)
    floats = caffe.io.array_to_datum(pixels.astype(np.float32) / 2)
    assert len(floats.data) == 0
    np.testing.assert_array_equal(caffe.io.datum_to_array(floats), pixels / 2)
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_transformer_order_and_deprocess() -> None:
    t = caffe.io.Transformer({"data": (1, 3, 2, 2)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    image = np.random.default_rng(0).uniform(size=(2, 2, 3)).astype(np.float32)
    kept = image.copy()
    out = t.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - np.array([10, 20, 30])[:, None, None])
    np.testing.assert_allclose(out, expected * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(image, kept)  # the caller's image is not changed
    np.testing.assert_allclose(t.deprocess("data", out), image, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros(2))
    with pytest.raises(KeyError):
        t.preprocess("nope", image)


def test_mean_image_is_resized_to_the_input() -> None:
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    mean = np.full((3, 8, 8), 5.0)
    mean[1] = 7.0
    t.set_mean("data", mean)
    assert t.mean["data"].shape == (3, 4, 4)
    np.testing.assert_allclose(t.mean["data"][1], 7.0, rtol=1e-6)
    np.testing.assert_allclose(t.mean["data"][0], 5.0, rtol=1e-6)


def test_load_image_color_and_gray(tmp_path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    color = caffe.io.load_image(str(tmp_path / "g.png"))
    assert color.shape == (3, 4, 3) and color.dtype == np.float32
    np.testing.assert_allclose(color[:, :, 1], gray / 255.0, rtol=1e-6)
    single = caffe.io.load_image(str(tmp_path / "g.png"), color=False)
    assert single.shape == (3, 4, 1)


def test_resize_image() -> None:
    constant = np.full((5, 7, 3), 0.25, dtype=np.float32)
    out = caffe.io.resize_image(constant, (3, 4))
    assert out.shape == (3, 4, 3) and (out == 0.25).all()
    ramp = np.tile(np.arange(4, dtype=np.float32), (4, 1))[:, :, None].repeat(5, axis=2)
    up = caffe.io.resize_image(ramp, (4, 8))
    assert up.shape == (4, 8, 5)  # any channel count
    assert np.all(np.diff(up[0, :, 0]) >= 0)  # bilinear keeps a ramp monotone
    nearest = caffe.io.resize_image(ramp, (4, 8), interp_order=0)
    assert set(np.unique(nearest)) <= {0.0, 1.0, 2.0, 3.0}


def test_oversample_corners_centre_and_mirrors() -> None:
    image = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    crops = caffe.io.oversample([image, image + 100], (3, 4))
    assert crops.shape == (20, 3, 4, 2)
    np.testing.assert_array_equal(crops[0], image[0:3, 0:4])  # top left
    np.testing.assert_array_equal(crops[1], image[0:3, 2:6])  # top right
    np.testing.assert_array_equal(crops[2], image[2:5, 0:4])  # bottom left
    np.testing.assert_array_equal(crops[3], image[2:5, 2:6])  # bottom right
    np.testing.assert_array_equal(crops[4], image[1:4, 1:5])  # centre: 2.5-1.5, 3-2
    for k in range(5):
        np.testing.assert_array_equal(crops[5 + k], crops[k][:, ::-1])
    np.testing.assert_array_equal(crops[10], image[0:3, 0:4] + 100)
