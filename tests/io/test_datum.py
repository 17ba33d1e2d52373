"""Datums to C x H x W arrays: raw bytes, float_data, encoded PNG/JPEG decoded as
OpenCV gives them to Caffe (BGR; native, color or gray), and one-line errors."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from bpinspect.errors import BpinspectError
from bpinspect.io.datum import datum_to_array, parse_datum
from bpinspect.io.imdecode import ImreadMode
from bpinspect.proto import caffe_pb2

WHERE = "layer 'd' (Data): LMDB source 'db': record '00000003'"


def encoded(image_bytes):
    return caffe_pb2.Datum(data=image_bytes, encoded=True, label=3)


def image_bytes(array, fmt="PNG", mode=None, **save):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def test_raw_bytes_are_chw_uint8():
    c, h, w = 2, 3, 4
    raw = bytes((i * 11) % 256 for i in range(c * h * w))
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, data=raw, label=7)
    a = datum_to_array(parse_datum(datum.SerializeToString(), WHERE), WHERE)
    assert a.dtype == np.uint8 and a.shape == (c, h, w)
    for ci in range(c):
        for hi in range(h):
            for wi in range(w):
                assert a[ci, hi, wi] == raw[(ci * h + hi) * w + wi]


def test_float_data_when_data_is_empty():
    values = [0.5, -1.25, 3.0, 1e-3, 7.0, -0.0]
    datum = caffe_pb2.Datum(channels=1, height=2, width=3, float_data=values)
    a = datum_to_array(datum, WHERE)
    assert a.dtype == np.float32
    assert a.tolist() == [[[0.5, -1.25, 3.0], [np.float32(1e-3), 7.0, -0.0]]]


def test_data_wins_over_float_data():
    datum = caffe_pb2.Datum(channels=1, height=1, width=2, data=b"\x01\x02",
                            float_data=[9.0, 9.0])
    assert datum_to_array(datum, WHERE).tolist() == [[[1, 2]]]


def test_sizes_disagreeing_with_the_bytes_name_the_record():
    datum = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\x00" * 11)
    with pytest.raises(BpinspectError) as info:
        datum_to_array(datum, WHERE)
    assert str(info.value) == (f"{WHERE}: a Datum of 3 x 2 x 2 needs 12 bytes of data, it "
                               "holds 11")
    with pytest.raises(BpinspectError, match="needs 4 values, it holds 3 float_data"):
        datum_to_array(caffe_pb2.Datum(channels=1, height=2, width=2, float_data=[1, 2, 3]),
                       WHERE)
    with pytest.raises(BpinspectError, match="every size must be positive"):
        datum_to_array(caffe_pb2.Datum(channels=0, height=2, width=2), WHERE)


def test_huge_declared_sizes_are_checked_before_allocating():
    datum = caffe_pb2.Datum(channels=3, height=2**30, width=2**30, data=b"abc")
    start = time.perf_counter()
    with pytest.raises(BpinspectError, match="holds 3"):
        datum_to_array(datum, WHERE)
    assert time.perf_counter() - start < 1


def test_corrupt_record_is_one_line_naming_it():
    with pytest.raises(BpinspectError) as info:
        parse_datum(b"\xff\xff\xff\xff garbage", WHERE)
    assert str(info.value).startswith(f"{WHERE}: not a Caffe Datum")
    assert "\n" not in str(info.value)


def test_encoded_color_png_is_bgr_exactly():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    a = datum_to_array(encoded(image_bytes(rgb)), WHERE)
    assert a.shape == (3, 5, 7) and a.dtype == np.uint8
    for h in range(5):
        for w in range(7):
            assert [int(a[c, h, w]) for c in range(3)] == [int(rgb[h, w, 2]),
                                                           int(rgb[h, w, 1]), int(rgb[h, w, 0])]


def test_encoded_gray_png_native_color_and_gray():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    datum = encoded(image_bytes(gray))
    native = datum_to_array(datum, WHERE)
    assert native.shape == (1, 3, 4) and (native[0] == gray).all()
    color = datum_to_array(datum, WHERE, ImreadMode.COLOR)  # force_color
    assert color.shape == (3, 3, 4) and all((color[c] == gray).all() for c in range(3))


def test_force_gray_uses_opencvs_weights():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 90]]], dtype=np.uint8)
    a = datum_to_array(encoded(image_bytes(rgb)), WHERE, ImreadMode.GRAYSCALE)
    assert a.shape == (1, 1, 4)
    # cv::cvtColor BGR2GRAY: Y = 0.299 R + 0.587 G + 0.114 B in 14-bit fixed point.
    expected = [(int(r) * 4899 + int(g) * 9617 + int(b) * 1868 + 8192) >> 14 for r, g, b in rgb[0]]
    assert a[0, 0].tolist() == expected == [76, 150, 29, 131]


def test_rgba_png_native_keeps_alpha_color_drops_it():
    rgba = np.array([[[1, 2, 3, 4], [5, 6, 7, 8]]], dtype=np.uint8)
    datum = encoded(image_bytes(rgba, mode="RGBA"))
    native = datum_to_array(datum, WHERE)
    assert native[:, 0, 0].tolist() == [3, 2, 1, 4]  # BGRA
    assert datum_to_array(datum, WHERE, ImreadMode.COLOR)[:, 0, 1].tolist() == [7, 6, 5]


def test_encoded_jpeg_round_trips_within_tolerance():
    y, x = np.mgrid[0:16, 0:24]
    rgb = np.stack([x * 10, y * 15, 255 - x * 10], axis=-1).astype(np.uint8)
    a = datum_to_array(encoded(image_bytes(rgb, "JPEG", quality=95)), WHERE)
    assert a.shape == (3, 16, 24) and a.dtype == np.uint8
    bgr = rgb[:, :, ::-1].transpose(2, 0, 1).astype(int)
    assert np.abs(a.astype(int) - bgr).mean() < 3
    gray = datum_to_array(encoded(image_bytes(rgb, "JPEG", quality=95)), WHERE,
                          ImreadMode.GRAYSCALE)
    luma = 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]
    assert gray.shape == (1, 16, 24) and np.abs(gray[0] - luma).mean() < 3


def test_sixteen_bit_and_undecodable_images_are_errors():
    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2), 60000, dtype=np.uint16)).save(buf, format="PNG")
    deep = buf.getvalue()
    with pytest.raises(BpinspectError, match="need 8-bit images"):
        datum_to_array(encoded(deep), WHERE)
    with pytest.raises(BpinspectError) as info:
        datum_to_array(encoded(b"not an image"), WHERE)
    assert str(info.value).startswith(f"{WHERE}: cannot decode the image")
