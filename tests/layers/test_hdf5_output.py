"""HDF5Output: the file is created at setup; a forward writes bottom[0] as 'data' and
bottom[1] as 'label', with Caffe's four legacy axes, in the net's dtype; a second
forward fails as Caffe's does, one that was undone writes again. Files are read
back with h5py alone."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net

from ._harness import blob, make_layer


def output_layer(path):
    return make_layer("HDF5Output", f'hdf5_output_param {{ file_name: "{path}" }}',
                      bottoms=("data", "label"), tops=())


def read(path):
    with h5py.File(path, "r") as f:
        return {name: (f[name][()], f[name].dtype) for name in f}


def run(layer, xp, data, label):
    bottoms = [blob(xp, data, "data"), blob(xp, label, "label")]
    layer.setup([b.shape for b in bottoms])
    layer.forward(bottoms, [])
    return bottoms


@pytest.mark.parametrize(("data_shape", "label_shape", "stored"), [
    ((2, 3, 4, 5), (2, 1, 1, 1), ((2, 3, 4, 5), (2, 1, 1, 1))),
    ((3, 10), (3,), ((3, 10, 1, 1), (3, 1, 1, 1))),  # legacy num, channels, height, width
    ((1, 2, 3), (1, 4), ((1, 2, 3, 1), (1, 4, 1, 1))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_writes_data_and_label(tmp_path, xp, data_shape, label_shape, stored, dtype):
    rng = np.random.default_rng(0)
    data = rng.standard_normal(data_shape).astype(dtype)
    label = rng.integers(0, 9, label_shape).astype(dtype)
    path = tmp_path / "out.h5"
    run(output_layer(path), xp, data, label)
    written = read(path)
    assert sorted(written) == ["data", "label"]
    for name, source, shape in (("data", data, stored[0]), ("label", label, stored[1])):
        values, stored_dtype = written[name]
        assert values.shape == shape and stored_dtype == np.dtype(dtype)
        flat = [source[index] for index in np.ndindex(source.shape)]  # C order, item by item
        assert values.ravel().tolist() == flat


def test_setup_creates_and_truncates_the_file(tmp_path):
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f["old"] = np.ones(3)
    output_layer(path).setup([(2, 3), (2,)])
    assert read(path) == {}
    layer = output_layer(tmp_path / "new.h5")
    layer.setup([(2, 3), (2,)])
    assert read(tmp_path / "new.h5") == {}


def test_a_second_forward_fails_as_caffes_and_keeps_the_first(tmp_path, xp):
    path = tmp_path / "out.h5"
    layer = output_layer(path)
    bottoms = run(layer, xp, np.ones((2, 3)), np.zeros(2))
    with pytest.raises(BpinspectError, match="second forward") as info:
        layer.forward(bottoms, [])
    assert "'layer' (HDF5Output)" in str(info.value) and "\n" not in str(info.value)
    assert (read(path)["data"][0] == 1).all()


def test_an_undone_forward_is_written_again(tmp_path, xp):
    path = tmp_path / "out.h5"
    layer = output_layer(path)
    bottoms = run(layer, xp, np.ones((2, 3)), np.zeros(2))
    layer.undo_forward()
    bottoms[0].data = xp.full((2, 3), 5.0)
    layer.forward(bottoms, [])
    written = read(path)
    assert (written["data"][0] == 5).all() and written["data"][0].shape == (2, 3, 1, 1)


def test_a_reshape_does_not_truncate_the_file(tmp_path, xp):
    path = tmp_path / "out.h5"
    layer = output_layer(path)
    run(layer, xp, np.ones((2, 3)), np.zeros(2))
    layer.setup([(4, 3), (4,)])  # Net::Reshape: Caffe's Reshape of this layer is empty
    assert "data" in read(path)


def test_a_missing_directory_is_a_one_line_error(tmp_path):
    path = tmp_path / "no" / "such" / "out.h5"
    with pytest.raises(BpinspectError) as info:
        output_layer(path).setup([(2, 3), (2,)])
    text = str(info.value)
    assert "'layer' (HDF5Output)" in text and str(path) in text and "\n" not in text
    assert "no directory" in text


@pytest.mark.parametrize(("data_shape", "label_shape", "message"), [
    ((2, 3, 4, 5, 6), (2,), "at most four axes"),
    ((2, 3), (3,), "same batch size"),
])
def test_bad_bottoms_are_one_line_errors(tmp_path, data_shape, label_shape, message):
    layer = output_layer(tmp_path / "out.h5")
    with pytest.raises(BpinspectError, match=message) as info:
        run(layer, np, np.ones(data_shape), np.ones(label_shape))
    assert "\n" not in str(info.value)
    assert read(tmp_path / "out.h5") == {}


def test_backward_does_nothing(tmp_path, xp):
    layer = output_layer(tmp_path / "out.h5")
    bottoms = run(layer, xp, np.ones((2, 3)), np.zeros(2))
    for b in bottoms:
        b.diff = xp.full(b.shape, 3.0)
    layer.backward([], [True, True], bottoms)
    assert all(float(b.diff.min()) == float(b.diff.max()) == 3.0 for b in bottoms)


def test_in_a_net_each_forward_writes_once(tmp_path):
    path = tmp_path / "scores.h5"
    net = Net(parse_net(f"""
        name: "out"
        layer {{ name: "in" type: "Input" top: "x" top: "y"
                 input_param {{ shape {{ dim: 3 dim: 2 }} shape {{ dim: 3 }} }} }}
        layer {{ name: "scale" type: "Power" bottom: "x" top: "s" power_param {{ scale: 2 }} }}
        layer {{ name: "save" type: "HDF5Output" bottom: "s" bottom: "y"
                 hdf5_output_param {{ file_name: "{path}" }} }}
    """))
    assert read(path) == {}  # made when the net is built
    x = np.arange(6.0).reshape(3, 2)
    net.forward(x=x, y=np.array([4.0, 5.0, 6.0]))
    written = read(path)
    np.testing.assert_array_equal(written["data"][0].reshape(3, 2), 2 * x)
    np.testing.assert_array_equal(written["label"][0].ravel(), [4, 5, 6])
    assert written["data"][1] == np.float32
    with pytest.raises(BpinspectError, match="'save' \\(HDF5Output\\): a second forward"):
        net.forward(x=x, y=np.zeros(3))


def test_top_count_is_checked():
    layer = make_layer("HDF5Output", 'hdf5_output_param { file_name: "x.h5" }',
                       bottoms=("a", "b"), tops=("c",))
    with pytest.raises(BpinspectError, match="takes 0 top"):
        layer.check_blob_counts(2, 1)
