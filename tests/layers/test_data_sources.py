"""The data layers on real sources built here (LMDB, LevelDB, HDF5, image lists,
arrays), against values the tests compute themselves: key order, batch_size,
wrap-around, labels, transforms, replayable random crops and shuffles, errors."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from bpinspect.engine.blob import Blob
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.layers import layer_class
from bpinspect.proto import caffe_pb2

from ._sources import (
    encoded_datum,
    keyed,
    pattern,
    png_bytes,
    raw_datum,
    write_h5,
    write_leveldb,
    write_lmdb,
)


def make(type_name, text, tops=("data", "label"), phase="test", base_dir=None, seed=0):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    param.name, param.type = "src", type_name
    param.top.extend(tops)
    layer = layer_class(type_name)(param, phase)
    layer.base_dir = base_dir
    layer.reset_rng(seed)
    return layer


def setup(layer, dtype=np.float32):
    shapes = layer.setup([])
    return [Blob(f"top{i}", s, np, dtype) for i, s in enumerate(shapes)]


def forward(layer, tops):
    layer.forward([], tops)
    return [t.data.copy() for t in tops]


def error_of(call):
    with pytest.raises(BpinspectError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# ---- Data ---------------------------------------------------------------------------

N = 10


@pytest.fixture
def lmdb_source(tmp_path):
    """10 records of 1 x 2 x 3, record i holding i*10 + position, label 100 + i;
    written in reverse order (the database sorts them)."""
    items = [np.arange(6, dtype=np.uint8).reshape(1, 2, 3) + 10 * i for i in range(N)]
    records = keyed([raw_datum(a, 100 + i) for i, a in enumerate(items)])
    write_lmdb(tmp_path / "db", dict(reversed(list(records.items()))))
    return str(tmp_path / "db"), items


def test_data_reads_batches_in_key_order_and_wraps(lmdb_source):
    source, items = lmdb_source
    layer = make("Data", f"data_param {{ source: '{source}' batch_size: 4 backend: LMDB }}")
    tops = setup(layer)
    assert [t.shape for t in tops] == [(4, 1, 2, 3), (4,)]
    assert layer.next_batch == 0 and layer.last_batch is None
    for k in range(4):
        data, label = forward(layer, tops)
        want = [(k * 4 + m) % N for m in range(4)]
        for m, i in enumerate(want):
            assert data[m].tolist() == items[i].astype(np.float32).tolist()
            assert label[m] == 100 + i
        assert layer.internals()["record"].tolist() == want
        assert layer.last_batch == k and layer.next_batch == k + 1
    assert layer.describe_batch() == f"records 2–5 of 10, LMDB {source}"


def test_describe_says_when_it_wrapped(lmdb_source):
    source, _ = lmdb_source
    layer = make("Data", f"data_param {{ source: '{source}' batch_size: 4 backend: LMDB }}")
    tops = setup(layer)
    layer.next_batch = 2
    forward(layer, tops)
    assert layer.describe_batch() == f"records 8–9, 0–1 of 10, LMDB {source}"
    assert layer.internals()["record"].tolist() == [8, 9, 0, 1]


def test_data_on_leveldb_the_default_backend_and_one_top(tmp_path):
    items = [pattern(2, 3, 3, start=i) for i in range(3)]
    write_leveldb(tmp_path / "ldb", keyed([raw_datum(a, i) for i, a in enumerate(items)]))
    layer = make("Data", f"data_param {{ source: '{tmp_path / 'ldb'}' batch_size: 2 }}",
                 tops=("data",))
    tops = setup(layer)
    assert [t.shape for t in tops] == [(2, 2, 3, 3)]
    (first,) = forward(layer, tops)
    (second,) = forward(layer, tops)
    assert (first == np.stack(items[:2])).all()
    assert (second == np.stack([items[2], items[0]])).all()
    assert layer.describe_batch().endswith(f"LevelDB {tmp_path / 'ldb'}")


def test_float_data_records_and_float64(tmp_path):
    values = [np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2) * (i + 1)
              for i in range(2)]
    write_lmdb(tmp_path / "db", keyed([raw_datum(v, i) for i, v in enumerate(values)]))
    layer = make("Data", f"data_param {{ source: '{tmp_path / 'db'}' batch_size: 2 "
                         "backend: LMDB } transform_param { scale: 2 }")
    tops = setup(layer, np.float64)
    data, label = forward(layer, tops)
    assert data.dtype == np.float64
    for m in range(2):
        for idx in np.ndindex(2, 2, 2):
            assert data[m][idx] == np.float64(values[m][idx]) * 2.0
    assert label.tolist() == [0, 1]


def test_encoded_png_records_decode_to_bgr_and_force_gray(tmp_path):
    rng = np.random.default_rng(1)
    rgbs = [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for _ in range(2)]
    write_lmdb(tmp_path / "db", keyed([encoded_datum(png_bytes(a), 7) for a in rgbs]))
    src = f"data_param {{ source: '{tmp_path / 'db'}' batch_size: 2 backend: LMDB }}"
    layer = make("Data", src)
    tops = setup(layer)
    assert tops[0].shape == (2, 3, 4, 5)
    data, label = forward(layer, tops)
    for m in range(2):
        for c in range(3):
            assert (data[m, c] == rgbs[m][:, :, 2 - c]).all()
    assert label.tolist() == [7, 7]
    gray = make("Data", src + " transform_param { force_gray: true }")
    tops = setup(gray)
    assert tops[0].shape == (2, 1, 4, 5)
    data, _ = forward(gray, tops)
    r, g, b = (rgbs[1][:, :, i].astype(int) for i in range(3))
    assert (data[1, 0] == (r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).all()


def test_mean_file_at_the_centred_test_crop_then_scale(tmp_path):
    items = [pattern(2, 5, 6, start=3 * i) for i in range(3)]
    write_lmdb(tmp_path / "db", keyed([raw_datum(a) for a in items]))
    mean = np.arange(60, dtype=np.float32).reshape(2, 5, 6) * 0.5
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=5, width=6, data=mean.ravel())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    layer = make("Data", "data_param { source: 'db' batch_size: 3 backend: LMDB } "
                         "transform_param { crop_size: 3 mean_file: 'mean.binaryproto' "
                         "scale: 0.125 }", base_dir=str(tmp_path))
    tops = setup(layer)
    assert tops[0].shape == (3, 2, 3, 3)
    data, _ = forward(layer, tops)
    h_off, w_off = (5 - 3) // 2, (6 - 3) // 2
    for m in range(3):
        for c, h, w in np.ndindex(2, 3, 3):
            x = np.float32(items[m][c, h_off + h, w_off + w])
            want = (x - mean[c, h_off + h, w_off + w]) * np.float32(0.125)
            assert data[m, c, h, w] == want
    assert layer.internals()["crop_offset"].tolist() == [[1, 1]] * 3


@pytest.fixture
def train_layer(tmp_path):
    items = [pattern(1, 8, 8, start=i) for i in range(6)]
    write_lmdb(tmp_path / "db", keyed([raw_datum(a) for a in items]))

    def build(seed):
        return make("Data", f"data_param {{ source: '{tmp_path / 'db'}' batch_size: 3 "
                            "backend: LMDB } transform_param { crop_size: 5 mirror: true }",
                    phase="train", seed=seed)
    return build, items


def test_train_crop_and_mirror_are_a_function_of_seed_and_batch(train_layer):
    build, items = train_layer
    layer = build(seed=5)
    tops = setup(layer)
    runs = [(forward(layer, tops)[0], layer.internals()) for _ in range(6)]
    for (data, inner), k in zip(runs, range(6), strict=True):
        for m in range(3):
            h_off, w_off = inner["crop_offset"][m]
            crop = items[(k * 3 + m) % 6][0, h_off:h_off + 5, w_off:w_off + 5]
            want = crop[:, ::-1] if inner["mirror"][m] else crop
            assert (data[m, 0] == want).all()
    offsets = [r[1]["crop_offset"].tolist() + r[1]["mirror"].tolist() for r in runs]
    assert len({str(o) for o in offsets}) > 1  # batch numbers draw differently
    # Replay batch 2 after batch 5, after a reset_rng, and on a fresh layer.
    layer.reset_rng(5)
    assert layer.next_batch == 6  # reset_rng does not move the batch position
    layer.next_batch = 2
    assert (forward(layer, tops)[0] == runs[2][0]).all()
    fresh = build(seed=5)
    fresh_tops = setup(fresh)
    fresh.next_batch = 2
    assert (forward(fresh, fresh_tops)[0] == runs[2][0]).all()
    other = build(seed=6)
    other_tops = setup(other)
    other_runs = [forward(other, other_tops)[0] for _ in range(6)]
    assert any((a != b[0]).any() for a, b in zip(other_runs, runs, strict=True))


def test_rand_skip_is_ignored_with_a_note(lmdb_source):
    source, items = lmdb_source
    layer = make("Data", f"data_param {{ source: '{source}' batch_size: 2 backend: LMDB "
                         "rand_skip: 5 }")
    tops = setup(layer)
    data, _ = forward(layer, tops)
    assert (data[0] == items[0]).all()
    assert layer.notes == ["layer 'src' (Data): rand_skip 5 is ignored: Caffe's Data layer does "
                           "not use it (only ImageData does); batch 0 starts at the first record"]


def test_data_errors_name_layer_source_and_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = make("Data", "data_param { source: 'examples/mnist/mnist_train_lmdb' "
                           "batch_size: 4 backend: LMDB }")
    assert error_of(lambda: setup(missing)) == (
        "layer 'src' (Data): cannot open LMDB source 'examples/mnist/mnist_train_lmdb': "
        "No such file or directory")
    write_lmdb(tmp_path / "db", {b"00000000": b"\x08\x01garbage\xff", b"00000001": b"\x00"})
    leveldb = make("Data", "data_param { source: 'db' batch_size: 1 }")  # LEVELDB default
    assert "set backend: LMDB" in error_of(lambda: setup(leveldb))
    corrupt = make("Data", "data_param { source: 'db' batch_size: 1 backend: LMDB }")
    assert error_of(lambda: setup(corrupt)).startswith(
        "layer 'src' (Data): LMDB source 'db': record '00000000': not a Caffe Datum")
    write_lmdb(tmp_path / "short", keyed([raw_datum(pattern(1, 2, 2)),
                                          caffe_pb2.Datum(channels=1, height=2, width=2,
                                                          data=b"abc").SerializeToString()]))
    short = make("Data", "data_param { source: 'short' batch_size: 2 backend: LMDB }")
    tops = setup(short)
    assert error_of(lambda: short.forward([], tops)) == (
        "layer 'src' (Data): LMDB source 'short': record '00000001': a Datum of 1 x 2 x 2 "
        "needs 4 bytes of data, it holds 3")
    no_batch = make("Data", "data_param { source: 'short' backend: LMDB }")
    assert "batch_size must be positive" in error_of(lambda: setup(no_batch))


def test_a_record_of_another_shape_is_an_error(tmp_path):
    write_lmdb(tmp_path / "db", keyed([raw_datum(pattern(1, 2, 2)), raw_datum(pattern(1, 3, 3))]))
    layer = make("Data", f"data_param {{ source: '{tmp_path / 'db'}' batch_size: 2 "
                         "backend: LMDB }")
    tops = setup(layer)
    assert "record '00000001': gives an item of (1, 3, 3)" in error_of(
        lambda: layer.forward([], tops))


# ---- ImageData ----------------------------------------------------------------------


@pytest.fixture
def image_list(tmp_path):
    """Five 4 x 6 RGB PNGs (one in a folder with a space) and their list."""
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(5)]
    (tmp_path / "img dir").mkdir()
    lines = []
    for i, rgb in enumerate(images):
        name = f"img dir/{i}.png" if i == 3 else f"{i}.png"
        (tmp_path / name).write_bytes(png_bytes(rgb))
        lines.append(f"{name} {10 + i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, images


def image_layer(tmp_path, extra="", phase="test", seed=0, batch=2):
    return make("ImageData", f"image_data_param {{ source: '{tmp_path / 'list.txt'}' "
                             f"root_folder: '{tmp_path}/' batch_size: {batch} {extra} }}",
                phase=phase, seed=seed)


def test_image_data_reads_bgr_images_and_labels_in_list_order(image_list):
    tmp_path, images = image_list
    layer = image_layer(tmp_path)
    tops = setup(layer)
    assert [t.shape for t in tops] == [(2, 3, 4, 6), (2,)]
    for k in range(4):
        data, label = forward(layer, tops)
        for m in range(2):
            i = (k * 2 + m) % 5
            assert (data[m] == images[i][:, :, ::-1].transpose(2, 0, 1)).all()
            assert label[m] == 10 + i
    assert layer.describe_batch() == f"records 1–2 of 5, image list {tmp_path / 'list.txt'}"


def test_image_data_gray_and_resize_as_cv_resize_linear(image_list):
    tmp_path, images = image_list
    layer = image_layer(tmp_path, "is_color: false new_height: 8 new_width: 3", batch=1)
    tops = setup(layer)
    assert tops[0].shape == (1, 1, 8, 3)
    data, _ = forward(layer, tops)
    r, g, b = (images[0][:, :, i].astype(int) for i in range(3))
    gray = ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(float)
    # cv::resize INTER_LINEAR: source coordinate (d + 0.5) * scale - 0.5, clamped.
    want = np.zeros((8, 3))
    for y in range(8):
        fy = (y + 0.5) * 4 / 8 - 0.5
        y0 = int(np.floor(fy))
        wy = fy - y0
        if y0 < 0:
            y0, wy = 0, 0.0
        if y0 >= 3:
            y0, wy = 3, 0.0
        for x in range(3):
            fx = (x + 0.5) * 6 / 3 - 0.5
            x0 = int(np.floor(fx))
            wx = fx - x0
            if x0 >= 5:
                x0, wx = 5, 0.0
            top = gray[y0, x0] * (1 - wx) + gray[y0, min(x0 + 1, 5)] * wx
            bottom = gray[min(y0 + 1, 3), x0] * (1 - wx) + gray[min(y0 + 1, 3), min(x0 + 1, 5)] * wx
            want[y, x] = np.floor(top * (1 - wy) + bottom * wy + 0.5)
    assert (data[0, 0] == want).all()


def test_resize_doubling_a_row_by_hand():
    from bpinspect.layers.image_data import resize_linear

    row = np.array([[[0], [100]]], dtype=np.uint8)  # 1 x 2
    # OpenCV: x = 0..3 sample 0 (clamped), 0.25, 0.75, 1 (clamped) -> 0, 25, 75, 100
    assert resize_linear(row, 1, 4)[0, :, 0].tolist() == [0, 25, 75, 100]


def test_image_list_parsing_uses_the_last_space(tmp_path):
    from bpinspect.io.listfiles import read_image_list

    (tmp_path / "l.txt").write_text("a b.png 3\nc.png -2\nnolabel\nx.png 7junk\r\n")
    assert read_image_list(str(tmp_path / "l.txt"), "w") == [
        ("a b.png", 3), ("c.png", -2), ("nolabel", 0), ("x.png", 7)]


def test_image_data_shuffle_is_seeded_per_epoch(image_list):
    tmp_path, _ = image_list
    layer = image_layer(tmp_path, "shuffle: true", batch=5, seed=3)
    tops = setup(layer)
    epochs = []
    for _ in range(4):
        _, label = forward(layer, tops)
        epochs.append([int(v) - 10 for v in label])
    assert all(sorted(e) == [0, 1, 2, 3, 4] for e in epochs)  # each epoch: every line once
    assert len({tuple(e) for e in epochs}) > 1                # reshuffled at each wrap
    again = image_layer(tmp_path, "shuffle: true", batch=5, seed=3)
    again_tops = setup(again)
    again.next_batch = 2
    assert [int(v) - 10 for v in forward(again, again_tops)[1]] == epochs[2]
    assert layer.describe_batch().startswith("positions 0–4 of 5 of epoch 3's shuffled order")


def test_image_data_rand_skip_is_seeded(image_list):
    tmp_path, _ = image_list
    starts = set()
    for seed in range(12):
        layer = image_layer(tmp_path, "rand_skip: 4", batch=1, seed=seed)
        tops = setup(layer)
        first = int(forward(layer, tops)[1][0]) - 10
        assert first == layer.skip() < 4
        again = image_layer(tmp_path, "rand_skip: 4", batch=1, seed=seed)
        assert int(forward(again, setup(again))[1][0]) - 10 == first
        starts.add(first)
    assert len(starts) > 1


def test_image_data_errors(image_list, tmp_path):
    path, _ = image_list
    (path / "bad.txt").write_text("missing.png 1\n")
    bad = make("ImageData", f"image_data_param {{ source: '{path / 'bad.txt'}' "
                            "batch_size: 1 }")
    assert error_of(lambda: setup(bad)).startswith(
        f"layer 'src' (ImageData): image list '{path / 'bad.txt'}' line 1: 'missing.png': "
        "could not load the image")
    nolist = make("ImageData", "image_data_param { source: 'nolist.txt' }")
    assert error_of(lambda: setup(nolist)) == (
        "layer 'src' (ImageData): cannot open image list source 'nolist.txt': "
        "No such file or directory")
    half = image_layer(path, "new_height: 4")
    assert "new_height and new_width must be set together" in error_of(lambda: setup(half))


# ---- HDF5Data -----------------------------------------------------------------------


@pytest.fixture
def hdf5_list(tmp_path):
    """a.h5: 5 rows, b.h5: 3 rows; data rows (2, 2), labels; listed as a, b."""
    data = np.arange(8 * 4, dtype=np.float64).reshape(8, 2, 2) * 0.5
    label = np.arange(8, dtype=np.int32) + 100
    write_h5(tmp_path / "a.h5", data=data[:5], label=label[:5])
    write_h5(tmp_path / "b.h5", data=data[5:], label=label[5:])
    (tmp_path / "list.txt").write_text("a.h5\n  b.h5  \n")
    return tmp_path, data, label


def test_hdf5_batches_cross_file_boundaries_and_wrap(hdf5_list):
    tmp_path, data, label = hdf5_list
    layer = make("HDF5Data", "hdf5_data_param { source: 'list.txt' batch_size: 3 }",
                 base_dir=str(tmp_path))
    tops = setup(layer)
    assert [t.shape for t in tops] == [(3, 2, 2), (3,)]
    for k in range(5):
        d, lab = forward(layer, tops)
        rows = [(k * 3 + m) % 8 for m in range(3)]
        assert (d == data[rows].astype(np.float32)).all()
        assert lab.tolist() == label[rows].tolist()
    # batch 4: positions 12, 13, 14 -> a.h5 rows 4, then b.h5 rows 0, 1
    assert layer.describe_batch() == "rows 4 of 5 of a.h5; rows 0–1 of 3 of b.h5 " \
                                     "(8 rows in 2 files), HDF5 list list.txt"
    assert layer.internals()["file"].tolist() == [0, 1, 1]
    assert layer.internals()["row"].tolist() == [4, 0, 1]
    assert layer.internals()["record"].tolist() == [4, 5, 6]


def test_hdf5_shuffle_keeps_files_whole_and_replays(hdf5_list):
    tmp_path, _, label = hdf5_list
    text = "hdf5_data_param { source: 'list.txt' batch_size: 8 shuffle: true }"
    layer = make("HDF5Data", text, base_dir=str(tmp_path), seed=4)
    tops = setup(layer)
    epochs = [forward(layer, tops)[1].astype(int).tolist() for _ in range(6)]
    for e in epochs:
        assert sorted(e) == label.tolist()  # every row once per epoch
        first = e[0] < 105  # rows of a file come together: a's 5 then b's 3, or b's then a's
        head = e[:5] if first else e[:3]
        assert all((v < 105) == first for v in head)
    assert len({tuple(e) for e in epochs}) > 1
    again = make("HDF5Data", text, base_dir=str(tmp_path), seed=4)
    again_tops = setup(again)
    again.next_batch = 3
    assert forward(again, again_tops)[1].astype(int).tolist() == epochs[3]


def test_hdf5_errors(hdf5_list):
    tmp_path, _, _ = hdf5_list
    layer = make("HDF5Data", "hdf5_data_param { source: 'list.txt' batch_size: 3 }",
                 tops=("data", "weights"), base_dir=str(tmp_path))
    assert error_of(lambda: setup(layer)) == (
        "layer 'src' (HDF5Data): HDF5 list 'list.txt': HDF5 file 'a.h5': has no dataset "
        "'weights' (each top reads "
        "the dataset named as it; the file has: data, label)")
    transform = make("HDF5Data", "hdf5_data_param { source: 'list.txt' batch_size: 3 } "
                                 "transform_param { scale: 2 }", base_dir=str(tmp_path))
    assert "does not transform data" in error_of(lambda: setup(transform))
    (tmp_path / "gone.txt").write_text("a.h5 nothere.h5")
    gone = make("HDF5Data", "hdf5_data_param { source: 'gone.txt' batch_size: 3 }",
                base_dir=str(tmp_path))
    assert error_of(lambda: setup(gone)) == (
        "layer 'src' (HDF5Data): HDF5 list 'gone.txt': cannot open HDF5 file 'nothere.h5': "
        "No such file or directory")
    nolist = make("HDF5Data", "hdf5_data_param { source: 'nolist.txt' batch_size: 3 }")
    assert error_of(lambda: setup(nolist)) == (
        "layer 'src' (HDF5Data): cannot open HDF5 list source 'nolist.txt': "
        "No such file or directory")


# ---- MemoryData ---------------------------------------------------------------------


MEMORY = "memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 }"


def test_memory_data_wraps_and_restarts_on_new_arrays():
    layer = make("MemoryData", MEMORY)
    tops = setup(layer)
    assert [t.shape for t in tops] == [(2, 1, 2, 3), (2,)]
    data = np.arange(6 * 6, dtype=np.float32).reshape(6, 1, 2, 3)
    layer.set_input_arrays(data, np.arange(6) * 1.5)
    for k in range(4):
        d, lab = forward(layer, tops)
        rows = [(2 * k) % 6, (2 * k) % 6 + 1]
        assert (d == data[rows]).all() and lab.tolist() == [r * 1.5 for r in rows]
    assert layer.describe_batch() == "rows 0–1 of 6, arrays of set_input_arrays"
    layer.set_input_arrays(data[:2] + 1, np.zeros((2, 1, 1, 1)))
    assert layer.next_batch == 0
    assert (forward(layer, tops)[0] == data[:2] + 1).all()


def test_memory_data_errors():
    layer = make("MemoryData", MEMORY)
    tops = setup(layer)
    assert error_of(lambda: layer.forward([], tops)) == (
        "layer 'src' (MemoryData): no input arrays: call net.set_input_arrays(data, labels) "
        "first, or feed its tops with --input")
    assert "must be a positive multiple of batch_size 2" in error_of(
        lambda: layer.set_input_arrays(np.zeros((3, 1, 2, 3)), np.zeros(3)))
    assert "must be (N, 1, 2, 3)" in error_of(
        lambda: layer.set_input_arrays(np.zeros((2, 1, 3, 2)), np.zeros(2)))
    assert "the same first dimension" in error_of(
        lambda: layer.set_input_arrays(np.zeros((2, 1, 2, 3)), np.zeros(4)))
    unset = make("MemoryData", "memory_data_param { batch_size: 2 channels: 1 }")
    assert "must be specified and positive" in error_of(lambda: setup(unset))


def test_window_data_says_why_it_is_unsupported():
    message = error_of(lambda: layer_class("WindowData", "win"))
    assert message.startswith("layer 'win': layer type 'WindowData' is not supported; it reads "
                              "R-CNN window files")
    assert "deploy net" not in message


# ---- in a Net -----------------------------------------------------------------------

TRAIN_NET = """
name: 'tiny'
layer {{ name: 'data' type: 'Data' top: 'data' top: 'label'
  data_param {{ source: '{source}' batch_size: 4 backend: LMDB }}
  transform_param {{ scale: 0.5 }} }}
layer {{ name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param {{ num_output: 3 weight_filler {{ type: 'xavier' }} }} }}
layer {{ name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }}
"""


def test_net_with_a_data_layer_reads_batch_after_batch(tmp_path):
    items = [pattern(1, 2, 3, start=i) for i in range(6)]
    write_lmdb(tmp_path / "db", keyed([raw_datum(a, i % 3) for i, a in enumerate(items)]))
    (tmp_path / "train.prototxt").write_text(TRAIN_NET.format(source="db"))
    net = Net(str(tmp_path / "train.prototxt"), phase="train")
    assert net.blobs["data"].shape == (4, 1, 2, 3)
    net.forward()
    net.forward()
    rows = [4, 5, 0, 1]
    want = np.stack([items[i].astype(np.float32) * np.float32(0.5) for i in rows])
    assert (net.blobs["data"].data == want).all()
    assert net.blobs["label"].data.tolist() == [i % 3 for i in rows]
    assert np.isfinite(net.blobs["loss"].data).all()
    assert net.layers[0].describe_batch() == "records 4–5, 0–1 of 6, LMDB db"


def test_net_feeds_turn_the_data_layer_into_an_input(tmp_path):
    (tmp_path / "train.prototxt").write_text(TRAIN_NET.format(source="no_such_db"))
    net = Net(str(tmp_path / "train.prototxt"), phase="train", feeds={"data": (4, 1, 2, 3)})
    assert net.blobs["data"].shape == (4, 1, 2, 3) and net.blobs["label"].shape == (4,)
    assert not hasattr(net.layers[0], "db")
