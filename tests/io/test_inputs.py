"""Input files: .npy verbatim; images through pycaffe's Transformer steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bpinspect.errors import BpinspectError
from bpinspect.io.inputs import load_image, load_input, load_mean, parse_mean
from bpinspect.proto import caffe_pb2


def save_rgb(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGB").save(path)
    return path


def constant_rgb(path: Path, rgb: tuple[int, int, int], size: tuple[int, int]) -> Path:
    h, w = size
    return save_rgb(path, np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)))


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


# ---- .npy -------------------------------------------------------------------------


def test_npy_of_the_blob_shape(tmp_path):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) / 7
    np.save(tmp_path / "x.npy", a)
    got = load_input(tmp_path / "x.npy", (2, 3, 2, 2), mean=(1, 2, 3), raw_scale=9)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, a.astype(np.float32))  # verbatim: no scale, no mean


def test_npy_of_one_item_repeats_over_the_batch(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    np.save(tmp_path / "x.npy", a)
    got = load_input(tmp_path / "x.npy", (4, 3, 2, 2))
    assert got.shape == (4, 3, 2, 2)
    for n in range(4):
        np.testing.assert_array_equal(got[n], a)
    got[0, 0, 0, 0] = 99  # a real array, not a broadcast view
    assert got[1, 0, 0, 0] == 0


def test_npy_wrong_shape(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 5, 5)))
    with pytest.raises(BpinspectError) as e:
        load_input(path, (1, 3, 4, 4))
    assert str(e.value) == (
        f"{path}: array of shape (3, 5, 5) does not fit the input blob of shape (1, 3, 4, 4) "
        "(give (1, 3, 4, 4), or (3, 4, 4) to repeat over the batch)"
    )


def test_npy_with_objects_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BpinspectError, match=r"holds Python objects \(pickled\)"):
        load_input(path, (1,))


def test_npy_corrupt_and_missing(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"not numpy")
    with pytest.raises(BpinspectError, match=r"x\.npy: not a valid \.npy file"):
        load_input(path, (1,))
    with pytest.raises(BpinspectError, match=r"y\.npy: no such file$"):
        load_input(tmp_path / "y.npy", (1,))


# ---- images ------------------------------------------------------------------------


def test_constant_image_resized_bgr_scaled(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (10, 20, 30), (7, 5))
    got = load_input(path, (2, 3, 4, 6))
    assert got.shape == (2, 3, 4, 6) and got.dtype == np.float32
    # RGB (10, 20, 30) / 255 * 255, in B, G, R order.
    expected = np.empty((2, 3, 4, 6), np.float32)
    for c, value in enumerate((30, 20, 10)):
        expected[:, c] = np.float32(value / 255) * np.float32(255)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_pixels_go_to_chw_in_bgr_order(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    path = save_rgb(tmp_path / "p.png", pixels)
    got = load_input(path, (1, 3, 3, 4), raw_scale=255.0)  # same size: no resize
    for y in range(3):
        for x in range(4):
            r, g, b = (np.float32(v / 255) * np.float32(255) for v in pixels[y, x])
            np.testing.assert_allclose(got[0, :, y, x], [b, g, r], rtol=1e-6)


def test_channel_swap_off_keeps_rgb_and_raw_scale_one(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (255, 0, 51), (2, 2))
    got = load_input(path, (1, 3, 2, 2), raw_scale=1.0, channel_swap=False)
    np.testing.assert_allclose(got[0, :, 0, 0], [1.0, 0.0, 0.2], rtol=1e-6)


def test_mean_tuple_is_subtracted_per_channel_after_scaling(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (10, 20, 30), (2, 2))
    got = load_input(path, (1, 3, 2, 2), mean=(104, 117, 123))
    np.testing.assert_allclose(got[0, :, 0, 0], [30 - 104, 20 - 117, 10 - 123], rtol=1e-5)
    one = load_input(path, (1, 3, 2, 2), mean=(5,))
    np.testing.assert_allclose(one[0, :, 1, 1], [25, 15, 5], rtol=1e-5)


def test_mean_with_the_wrong_number_of_channels(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (1, 2, 3), (2, 2))
    with pytest.raises(BpinspectError, match="2 mean values for an input of 3 channel"):
        load_input(path, (1, 3, 2, 2), mean=(1, 2))


def test_mean_npy_of_the_input_size_is_elementwise(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (0, 0, 0), (2, 3))
    mean = np.arange(18, dtype=np.float32).reshape(3, 2, 3)
    np.save(tmp_path / "mean.npy", mean)
    got = load_input(path, (1, 3, 2, 3), mean=tmp_path / "mean.npy")
    np.testing.assert_array_equal(got[0], -mean)


def test_mean_image_of_another_size_is_resized(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (0, 0, 0), (4, 4))
    mean = np.empty((3, 8, 8), np.float32)
    mean[:] = np.array([104.0, 117.0, 123.0], np.float32)[:, None, None]
    np.save(tmp_path / "mean.npy", mean)
    got = load_input(path, (1, 3, 4, 4), mean=str(tmp_path / "mean.npy"))
    for c, value in enumerate((104.0, 117.0, 123.0)):
        np.testing.assert_allclose(got[0, c], -value, rtol=1e-6)


def test_mean_binaryproto(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (0, 0, 0), (2, 2))
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=2, width=2)
    blob.data.extend(np.repeat([1.0, 2.0, 3.0], 4).tolist())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    got = load_input(path, (1, 3, 2, 2), mean=tmp_path / "mean.binaryproto")
    np.testing.assert_array_equal(got[0, :, 1, 0], [-1.0, -2.0, -3.0])


def test_load_mean_shapes():
    assert load_mean((1, 2, 3), (3, 5, 5)).shape == (3, 1, 1)
    assert load_mean(np.ones((1, 3, 5, 5)), (3, 5, 5)).shape == (3, 5, 5)
    assert load_mean(np.ones((5, 5)), (1, 5, 5)).shape == (1, 5, 5)
    with pytest.raises(BpinspectError, match="the mean has 3 channel"):
        load_mean(np.ones((3, 5, 5)), (1, 5, 5))


def test_grayscale_blob_from_a_gray_image(tmp_path):
    pixels = np.array([[0, 51], [102, 255]], np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "g.png")
    got = load_input(tmp_path / "g.png", (3, 1, 2, 2), raw_scale=1.0)
    assert got.shape == (3, 1, 2, 2)
    np.testing.assert_allclose(got[2, 0], pixels / 255.0, rtol=1e-6)


def test_grayscale_blob_from_a_colour_image_uses_pycaffes_weights(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (255, 0, 0), (2, 2))
    got = load_input(path, (1, 1, 2, 2), raw_scale=1.0)
    np.testing.assert_allclose(got, 0.2125, rtol=1e-6)  # skimage rgb2gray's red weight


def test_gray_image_into_a_colour_blob_repeats_the_channel(tmp_path):
    Image.fromarray(np.full((2, 2), 51, np.uint8), "L").save(tmp_path / "g.png")
    got = load_input(tmp_path / "g.png", (1, 3, 2, 2), raw_scale=1.0)
    np.testing.assert_allclose(got, 0.2, rtol=1e-6)


def test_alpha_is_dropped(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red stays red (as pycaffe)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = load_input(tmp_path / "a.png", (1, 3, 2, 2), raw_scale=1.0)
    np.testing.assert_allclose(got[0, :, 0, 0], [0, 0, 1])


def test_sixteen_bit_png_scales_by_65535(tmp_path):
    pixels = np.array([[0, 65535], [32768, 1000]], np.uint16)
    Image.fromarray(pixels).save(tmp_path / "d.png")
    image = load_image(tmp_path / "d.png", color=False)
    np.testing.assert_allclose(image[:, :, 0], pixels / 65535.0, rtol=1e-6)


def test_jpeg(tmp_path):
    Image.new("RGB", (16, 16), (200, 100, 50)).save(tmp_path / "c.jpg", quality=95)
    got = load_input(tmp_path / "c.jpg", (1, 3, 8, 8))
    np.testing.assert_allclose(got[0, :, 4, 4], [50, 100, 200], atol=3)


def test_upsampling_stays_within_range_and_keeps_order(tmp_path):
    pixels = np.zeros((1, 2, 3), np.uint8)
    pixels[0, 1] = 255
    got = load_input(save_rgb(tmp_path / "g.png", pixels), (1, 3, 3, 8), raw_scale=1.0)
    row = got[0, 0, 1]
    assert row.min() >= 0 and row.max() <= 1
    assert np.all(np.diff(row) >= 0) and row[0] < row[-1]


def test_image_needs_one_or_three_channels(tmp_path):
    path = constant_rgb(tmp_path / "c.png", (1, 2, 3), (2, 2))
    with pytest.raises(BpinspectError) as e:
        load_input(path, (1, 4, 2, 2))
    assert str(e.value) == (
        f"{path}: an image fills a blob of shape (N, 1 or 3, H, W), not (1, 4, 2, 2); "
        "give a .npy instead"
    )


def test_corrupt_image(tmp_path):
    good = constant_rgb(tmp_path / "c.png", (1, 2, 3), (32, 32)).read_bytes()
    path = tmp_path / "broken.png"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(BpinspectError) as e:
        load_input(path, (1, 3, 4, 4))
    assert str(e.value).startswith(f"{path}: corrupt image: ")
    assert "\n" not in str(e.value)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(BpinspectError) as e:
        load_input(path, (1, 3, 4, 4))
    assert str(e.value) == f"{path}: not an image that Pillow can read (PNG, JPEG, ...) nor a .npy"


def test_missing_image(tmp_path):
    with pytest.raises(BpinspectError) as e:
        load_input(tmp_path / "cat.jpg", (1, 3, 4, 4))
    assert str(e.value) == f"{tmp_path / 'cat.jpg'}: no such file"


# ---- parse_mean ------------------------------------------------------------------------


def test_parse_mean_values():
    assert parse_mean("104,117,123") == (104.0, 117.0, 123.0)
    assert parse_mean(" 104 117.5 123 ") == (104.0, 117.5, 123.0)
    assert parse_mean("128") == (128.0,)


def test_parse_mean_paths(tmp_path, monkeypatch):
    assert parse_mean("ilsvrc_2012_mean.npy") == Path("ilsvrc_2012_mean.npy")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "128").write_bytes(b"")
    assert parse_mean("128") == Path("128")  # an existing file wins


def test_parse_mean_errors():
    with pytest.raises(BpinspectError, match="empty"):
        parse_mean("  ")
    with pytest.raises(BpinspectError, match="finite"):
        parse_mean("1,nan,3")
