"""caffe.Detector on a net whose output is its input, flattened: each prediction is the
preprocessed window, compared with the window cut and processed by hand (with and
without context padding); selective search's missing package; bad windows."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

import bpinspect.caffe as caffe
from bpinspect.errors import BpinspectError

NET = """name: 'Echo'
layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'flat' type: 'Flatten' bottom: 'data' top: 'flat' }
"""
MEAN_BGR = np.array([100.0, 110.0, 120.0])


@pytest.fixture
def paths(tmp_path):
    net = tmp_path / "echo.prototxt"
    net.write_text(NET)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    image = tmp_path / "im.png"
    Image.fromarray(pixels).save(image)
    corner = pixels.copy()
    corner[:6, :6] = (10, 20, 30)  # one colour where the context crop below reads
    corner_image = tmp_path / "corner.png"
    Image.fromarray(corner).save(corner_image)
    return {"net": str(net), "image": str(image), "pixels": pixels,
            "corner": str(corner_image)}


def by_hand(rgb_uint8_window):
    """The Transformer's steps on a 4 x 4 RGB window: K x H x W, BGR, x255, - mean."""
    raw = rgb_uint8_window.astype(np.float64) / 255
    return (raw.transpose(2, 0, 1)[::-1] * 255 - MEAN_BGR[:, None, None]).ravel()


def detector(paths, **kwargs):
    return caffe.Detector(paths["net"], None, mean=MEAN_BGR, raw_scale=255,
                          channel_swap=(2, 1, 0), **kwargs)


def test_detect_windows_predicts_each_window_in_order(paths):
    det = detector(paths)
    windows = [np.array([0, 0, 4, 4]), np.array([2, 3, 6, 7]), np.array([4, 6, 8, 10])]
    detections = det.detect_windows([(paths["image"], windows)])  # 3 windows, batch of 2
    assert [d["filename"] for d in detections] == [paths["image"]] * 3
    pixels = paths["pixels"]
    for d, (y0, x0, y1, x1) in zip(detections, windows, strict=True):
        assert list(d["window"]) == [y0, x0, y1, x1]
        np.testing.assert_allclose(d["prediction"], by_hand(pixels[y0:y1, x0:x1]),
                                   atol=1e-3)


def test_crop_without_context_is_the_window(paths):
    det = detector(paths)
    image = caffe.io.load_image(paths["image"])
    np.testing.assert_array_equal(det.crop(image, np.array([1, 2, 5, 9])), image[1:5, 2:9])


def test_context_padding_at_the_corner(paths):
    """crop size 4, context_pad 1: the window is grown by 4 / (4 - 2) = 2 about its centre.
    Window (0, 0, 3, 3): half 2, centre (2, 2), box (-2, -2, 6, 6), 9 pixels a side, so
    4/9 of an input pixel each; the 2 pixels above and left of the image are
    round(2 * 4/9) = 1 input pixel of mean; the 7 inside become round(7 * 4/9) = 3,
    image rows and columns 0..5 resized to 3 x 3."""
    det = detector(paths, context_pad=1)
    (found,) = det.detect_windows([(paths["corner"], [np.array([0, 0, 3, 3])])])
    planes = found["prediction"].reshape(3, 4, 4)  # BGR, x255, minus the mean
    np.testing.assert_allclose(planes[:, 0, :], 0, atol=1e-3)  # the mean, padded
    np.testing.assert_allclose(planes[:, :, 0], 0, atol=1e-3)
    expected = np.array([30.0, 20.0, 10.0]) - MEAN_BGR  # the corner's colour, as BGR
    np.testing.assert_allclose(planes[:, 1:, 1:],
                               np.broadcast_to(expected[:, None, None], (3, 3, 3)), atol=1e-3)


def test_context_padding_inside_the_image_is_the_grown_window(paths):
    """Window (2, 3, 5, 6), context_pad 1: half 2, centre (4, 5), box (0, 1, 8, 9), all
    inside: im[0:8, 1:9] resized to the whole 4 x 4 input, no mean."""
    det = detector(paths, context_pad=1)
    image = caffe.io.load_image(paths["image"])
    crop = det.crop(image, np.array([2, 3, 5, 6]))
    np.testing.assert_allclose(crop, caffe.io.resize_image(image[0:8, 1:9], (4, 4)), atol=1e-6)


def test_the_padding_mean_is_in_the_images_space(paths):
    det = detector(paths, context_pad=1)
    np.testing.assert_allclose(det.crop_mean.reshape(3), MEAN_BGR[::-1] / 255)  # RGB, [0, 1]
    assert list(det.crop_dims) == [4, 4, 3]
    plain = caffe.Detector(paths["net"], None, context_pad=1)
    np.testing.assert_array_equal(plain.crop_mean, np.zeros((4, 4, 3)))


def test_selective_search_needs_its_package(paths, monkeypatch):
    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python", None)  # not there
    with pytest.raises(BpinspectError, match="needs the selective_search_ijcv_with_python"):
        detector(paths).detect_selective_search([paths["image"]])


def test_selective_search_windows_go_to_detect_windows(paths, monkeypatch):
    asked = {}

    def get_windows(image_fnames, cmd):
        asked.update(names=image_fnames, cmd=cmd)
        return [np.array([[0, 0, 4, 4]])]

    fake = types.ModuleType("selective_search_ijcv_with_python")
    fake.get_windows = get_windows
    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python", fake)
    (found,) = detector(paths).detect_selective_search([paths["image"]])
    assert asked == {"names": [paths["image"]], "cmd": "selective_search_rcnn"}
    np.testing.assert_allclose(found["prediction"], by_hand(paths["pixels"][0:4, 0:4]),
                               atol=1e-3)


def test_bad_windows_are_one_line(paths):
    det = detector(paths)
    with pytest.raises(BpinspectError, match=r"window \[5, 5, 5, 9\] holds no pixel"):
        det.detect_windows([(paths["image"], [np.array([5, 5, 5, 9])])])
    with pytest.raises(BpinspectError, match=r"expected \(ymin, xmin, ymax, xmax\)"):
        det.detect_windows([(paths["image"], [np.array([1, 2, 3])])])
    with pytest.raises(BpinspectError, match="no windows"):
        det.detect_windows([(paths["image"], [])])
