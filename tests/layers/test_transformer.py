"""Caffe's DataTransformer against loops written from data_transformer.cpp's rules:
mean before scale per element, mean_file at the crop's offset, centred TEST crops,
random TRAIN crops and mirror, InferBlobShape, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from bpinspect.errors import BpinspectError
from bpinspect.io.imdecode import ImreadMode
from bpinspect.layers.transformer import DataTransformer
from bpinspect.proto import caffe_pb2

WHERE = "layer 'data' (Data)"


def transformer(text, phase="test"):
    param = text_format.Parse(text, caffe_pb2.TransformationParameter())
    return DataTransformer(param, phase, WHERE)


def reference(x, h_off, w_off, crop, mirror, mean=None, scale=1.0, dtype=np.float32):
    """The per-element loop of DataTransformer::Transform(const Datum&, Dtype*)."""
    c, h, w = x.shape
    ch, cw = (crop, crop) if crop else (h, w)
    out = np.zeros((c, ch, cw), dtype=dtype)
    for ci in range(c):
        for hi in range(ch):
            for wi in range(cw):
                value = dtype(x[ci, h_off + hi, w_off + wi])
                if mean is not None:
                    m = mean[ci] if np.ndim(mean) == 1 else mean[ci, h_off + hi, w_off + wi]
                    value = dtype(value - dtype(m))
                value = dtype(value * dtype(scale))
                out[ci, hi, cw - 1 - wi if mirror else wi] = value
    return out


def item(c=3, h=7, w=9):
    return ((np.arange(c * h * w) * 37) % 256).astype(np.uint8).reshape(c, h, w)


def test_scale_and_one_mean_value_in_caffes_order():
    x = item()
    t = transformer("scale: 0.00390625 mean_value: 127.5")
    out = t.transform(x, 0, 0, False, np.float32, "x")
    np.testing.assert_array_equal(out, reference(x, 0, 0, 0, False, [127.5] * 3, 0.00390625))


def test_mean_value_per_channel_and_a_wrong_count():
    x = item()
    t = transformer("mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.5")
    np.testing.assert_array_equal(t.transform(x, 0, 0, False, np.float32, "x"),
                                  reference(x, 0, 0, 0, False, [104, 117, 123], 0.5))
    with pytest.raises(BpinspectError, match="give 1 mean_value or 3, not 2"):
        transformer("mean_value: 1 mean_value: 2").transform(x, 0, 0, False, np.float32, "x")


def test_mean_file_subtracted_at_the_centred_test_crop(tmp_path):
    x = item(3, 7, 9)
    mean = (np.arange(3 * 7 * 9, dtype=np.float32).reshape(3, 7, 9) * 0.37).astype(np.float32)
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=7, width=9, data=mean.ravel())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    t = transformer(f"crop_size: 4 scale: 0.25 mean_file: '{tmp_path / 'mean.binaryproto'}'")
    t.load_mean(None)
    h_off, w_off, mirror = t.draw(np.random.default_rng(0), x.shape)
    assert (h_off, w_off, mirror) == ((7 - 4) // 2, (9 - 4) // 2, False) == (1, 2, False)
    out = t.transform(x, h_off, w_off, mirror, np.float32, "x")
    np.testing.assert_array_equal(out, reference(x, 1, 2, 4, False, mean, 0.25))


def test_mean_file_relative_to_the_net_and_shape_checked(tmp_path):
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=2, data=[1, 2, 3, 4])
    (tmp_path / "m.binaryproto").write_bytes(blob.SerializeToString())
    t = transformer("mean_file: 'm.binaryproto'")
    t.load_mean(str(tmp_path))
    assert t.mean.tolist() == [[[1, 2], [3, 4]]]
    with pytest.raises(BpinspectError, match="is 3 x 7 x 9, the mean_file 'm.binaryproto' is "
                                             "1 x 2 x 2"):
        t.transform(item(), 0, 0, False, np.float32, "x")
    with pytest.raises(BpinspectError, match=r"^layer 'data' \(Data\): transform_param: "
                                             "mean_file: .*no such file"):
        transformer("mean_file: 'absent.binaryproto'").load_mean(str(tmp_path))


def test_train_crops_and_mirror_follow_the_generator():
    x = item(2, 6, 8)
    t = transformer("crop_size: 5 mirror: true mean_value: 10", phase="train")
    assert t.needs_rand
    draws = [t.draw(np.random.default_rng([3, k]), x.shape) for k in range(40)]
    assert {d[0] for d in draws} == {0, 1} and {d[1] for d in draws} == {0, 1, 2, 3}
    assert {d[2] for d in draws} == {False, True}
    assert t.draw(np.random.default_rng([3, 5]), x.shape) == draws[5]
    for h_off, w_off, mirror in draws[:6]:
        np.testing.assert_array_equal(t.transform(x, h_off, w_off, mirror, np.float32, "x"),
                                      reference(x, h_off, w_off, 5, mirror, [10, 10]))


def test_mirror_flips_in_test_too_and_no_random_without_mirror():
    x = item(1, 3, 4)
    t = transformer("mirror: true")
    flips = {t.draw(np.random.default_rng(k), x.shape)[2] for k in range(20)}
    assert flips == {False, True}
    out = t.transform(x, 0, 0, True, np.float32, "x")
    assert out[0, 0].tolist() == x[0, 0, ::-1].tolist()
    assert not transformer("crop_size: 2").needs_rand  # TEST crops are centred


def test_float64_dtype_computes_in_float64():
    # caffe.proto stores scale and mean_value as float: Caffe<double> widens those floats.
    x = item(1, 2, 2)
    out = transformer("scale: 0.1 mean_value: 0.3").transform(x, 0, 0, False, np.float64, "x")
    assert out.dtype == np.float64
    want = reference(x, 0, 0, 0, False, [np.float32(0.3)], np.float32(0.1), dtype=np.float64)
    np.testing.assert_array_equal(out, want)


def test_infer_shape():
    assert transformer("").infer_shape((3, 7, 9), "x") == (3, 7, 9)
    assert transformer("crop_size: 5").infer_shape((3, 7, 9), "x") == (3, 5, 5)
    with pytest.raises(BpinspectError, match="x: is 7 x 9, smaller than crop_size 8"):
        transformer("crop_size: 8").infer_shape((3, 7, 9), "x")


def test_force_color_gray_choose_the_decode():
    assert transformer("").decode_mode is ImreadMode.UNCHANGED
    assert transformer("force_color: true").decode_mode is ImreadMode.COLOR
    assert transformer("force_gray: true").decode_mode is ImreadMode.GRAYSCALE


@pytest.mark.parametrize(("text", "message"), [
    ("mean_file: 'm' mean_value: 1", "cannot specify mean_file and mean_value at the same time"),
    ("force_color: true force_gray: true", "cannot set both force_color and force_gray"),
])
def test_conflicting_params(text, message):
    with pytest.raises(BpinspectError) as info:
        transformer(text)
    assert str(info.value) == f"{WHERE}: transform_param: {message}"


@pytest.mark.parametrize("mean_kind", ["file", "values", "none"])
@pytest.mark.parametrize("crop", [0, 4])
def test_a_batch_at_once_equals_caffes_loop_item_by_item(tmp_path, mean_kind, crop):
    rng = np.random.default_rng(3)
    items = [rng.integers(0, 256, (3, 7, 9), dtype=np.uint8) for _ in range(6)]
    text = f"crop_size: {crop} mirror: true scale: 0.125 "
    mean = None
    if mean_kind == "file":
        mean = (rng.random((3, 7, 9)) * 200).astype(np.float32)
        blob = caffe_pb2.BlobProto(num=1, channels=3, height=7, width=9, data=mean.ravel())
        (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
        text += f"mean_file: '{tmp_path / 'mean.binaryproto'}'"
    elif mean_kind == "values":
        mean = [104.0, 117.0, 123.0]
        text += "mean_value: 104 mean_value: 117 mean_value: 123"
    t = transformer(text, phase="train")
    t.load_mean(None)
    draws = [t.draw(np.random.default_rng(k), x.shape) for k, x in enumerate(items)]
    assert any(d[2] for d in draws) and not all(d[2] for d in draws)  # some mirrored
    shape = (len(items), 3, crop or 7, crop or 9)
    out = np.empty(shape, np.float32)
    t.transform_batch(items, draws, np.float32, out, ["x"] * len(items))
    for m, (x, (h_off, w_off, mirror)) in enumerate(zip(items, draws, strict=True)):
        np.testing.assert_array_equal(out[m], reference(x, h_off, w_off, crop, mirror, mean,
                                                        0.125))
