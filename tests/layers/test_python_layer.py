"""Python layers: the user's module, written fresh into a directory per test, run
inside a Net with pycaffe's contract (setup/reshape/forward/backward, param_str,
phase, blobs, top[i].reshape); its errors name the layer and show its own frames."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bpinspect.engine.blob import Blob as EngineBlob
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError, LayerCodeError
from bpinspect.layers.python_layer import Blob, Staging, provide_caffe_module
from bpinspect.session.gradcheck import numerical_gradient, sample_coords

PYLOSS = '''
import caffe
import numpy as np


class EuclideanLossLayer(caffe.Layer):
    """Half the mean over the batch of the squared distance of two bottoms."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = sign * top[0].diff[0] * self.diff / bottom[i].num
'''

SCALE = '''
import json

import caffe
import numpy as np


class ChannelScale(caffe.Layer):
    """top = bottom * w[c], one learnable factor per channel, starting at param_str's."""

    def setup(self, bottom, top):
        params = json.loads(self.param_str)
        self.seen_phase = self.phase
        self.seen_shape = (bottom[0].num, bottom[0].channels, bottom[0].height,
                           bottom[0].width)
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = params["init"]

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        w = self.blobs[0].data[None, :, None, None]
        top[0].data[...] = bottom[0].data * w

    def backward(self, top, propagate_down, bottom):
        w = self.blobs[0].data[None, :, None, None]
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(axis=(0, 2, 3))
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * w
'''

RAISING = '''
import caffe


def _check(values):
    if values.max() > -1e9:
        raise ValueError("the values are not all below -1e9")


class Picky(caffe.Layer):
    def setup(self, bottom, top):
        if self.param_str == "fail in setup":
            raise RuntimeError("setup refuses")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        _check(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        pass
'''

PLAIN = '''
class Double:
    """No `import caffe`: any class with the four methods will do."""

    def __init__(self, param):
        self.blobs = []

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * top[0].diff
'''


@pytest.fixture
def pydir(tmp_path, monkeypatch):
    """A directory for user modules, which is left off sys.path and sys.modules after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    directory = tmp_path / "layers"
    directory.mkdir()
    yield directory
    for name in set(sys.modules) - before:
        if name.startswith("bpi_user_"):
            del sys.modules[name]


def write_module(directory: Path, name: str, source: str) -> str:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def python_layer(name: str, module: str, cls: str, bottoms: list[str], tops: list[str],
                 param_str: str = "", extra: str = "") -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    ps = f" param_str: '{param_str}'" if param_str else ""
    return (f'layer {{ name: "{name}" type: "Python" {b} {t} '
            f'python_param {{ module: "{module}" layer: "{cls}"{ps} }} {extra} }}\n')


def regression_net(directory: Path, loss_layer: str, name: str = "net.prototxt") -> Path:
    text = (
        'name: "pyreg" force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" '
        'input_param { shape { dim: 3 dim: 5 } } }\n'
        'layer { name: "label" type: "Input" top: "label" '
        'input_param { shape { dim: 3 dim: 4 } } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } '
        'bias_filler { type: "gaussian" std: 0.5 } } }\n'
        + loss_layer
    )
    path = directory / name
    path.write_text(text)
    return path


def fill_inputs(net: Net, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in ("data", "label"):
        net.blobs[name].data[...] = rng.standard_normal(net.blobs[name].shape)


def test_python_euclidean_loss_matches_the_builtin_layer(pydir) -> None:
    module = write_module(pydir, "bpi_user_pyloss", PYLOSS)
    python = regression_net(pydir, python_layer(
        "loss", module, "EuclideanLossLayer", ["ip", "label"], ["loss"],
        extra="loss_weight: 1"), "python.prototxt")
    builtin = regression_net(pydir, 'layer { name: "loss" type: "EuclideanLoss" '
                             'bottom: "ip" bottom: "label" top: "loss" }\n', "builtin.prototxt")
    nets = [Net(p, dtype=np.float64) for p in (python, builtin)]
    for net in nets:
        fill_inputs(net)
        net.forward()
        net.clear_param_diffs()
        net.backward()
    py, ref = nets
    assert py.blobs["loss"].shape == (1,)
    np.testing.assert_allclose(py.blobs["loss"].data.sum(), ref.blobs["loss"].data.sum(),
                               rtol=1e-12)
    assert py.loss_weights == {"loss": 1.0}
    for name in ("ip", "label", "data"):
        np.testing.assert_allclose(py.blobs[name].diff, ref.blobs[name].diff, rtol=1e-12)
    for j in range(2):
        np.testing.assert_allclose(py.params["ip"][j].diff, ref.params["ip"][j].diff,
                                   rtol=1e-12)
    # What its backward reuses, self.diff, is the layer's internals (read-only).
    internals = py.layers[3].internals()
    assert list(internals) == ["diff"] and not internals["diff"].flags.writeable
    np.testing.assert_allclose(internals["diff"], py.blobs["ip"].data - py.blobs["label"].data)
    # Independently: the loss and d loss / d ip by hand.
    ip, label = py.blobs["ip"].data, py.blobs["label"].data
    assert py.loss == pytest.approx(((ip - label) ** 2).sum() / 3 / 2, rel=1e-12)
    np.testing.assert_allclose(py.blobs["ip"].diff, (ip - label) / 3, rtol=1e-12)


def test_gradient_check_through_a_python_layer_inside_a_net(pydir) -> None:
    """Python ChannelScale between two built-in layers, a Python loss on top: the
    analytic gradients of the data, the Python layer's param and the ip weights
    equal central differences of the loss."""
    scale = write_module(pydir, "bpi_user_scale", SCALE)
    loss = write_module(pydir, "bpi_user_pyloss2", PYLOSS)
    text = (
        'name: "mixed" force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" '
        'input_param { shape { dim: 2 dim: 3 dim: 2 dim: 3 } } }\n'
        'layer { name: "label" type: "Input" top: "label" '
        'input_param { shape { dim: 2 dim: 4 } } }\n'
        + python_layer("scale", scale, "ChannelScale", ["data"], ["scaled"],
                       '{"init": [0.5, -1.5, 2.0]}')
        + 'layer { name: "act" type: "TanH" bottom: "scaled" top: "act" }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "act" top: "ip" '
        'inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }\n'
        + python_layer("loss", loss, "EuclideanLossLayer", ["ip", "label"], ["loss"],
                       extra="loss_weight: 2")
    )
    path = pydir / "mixed.prototxt"
    path.write_text(text)
    net = Net(path, dtype=np.float64)
    fill_inputs(net, seed=3)

    def objective() -> float:
        total = 0.0
        for i in range(len(net.layers)):
            total += net.forward_layer(i)
        return total

    objective()
    net.clear_param_diffs()
    net.backward()
    targets = [
        (net.blobs["data"].data, net.blobs["data"].diff.copy()),
        (net.params["scale"][0].data, net.params["scale"][0].diff.copy()),
        (net.params["ip"][0].data, net.params["ip"][0].diff.copy()),
    ]
    for data, analytic in targets:
        coords = sample_coords(tuple(data.shape), 8, 0)
        numeric = numerical_gradient(objective, data, coords, 1e-6)
        picked = np.array([analytic[c] for c in coords])
        np.testing.assert_allclose(picked, numeric, rtol=1e-6, atol=1e-9)
        assert np.abs(numeric).max() > 0


def test_learnable_blobs_phase_and_param_str(pydir) -> None:
    scale = write_module(pydir, "bpi_user_scale2", SCALE)
    path = pydir / "scale.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" '
        'input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }\n'
        + python_layer("scale", scale, "ChannelScale", ["data"], ["out"],
                       '{"init": [1, 2, 3]}', extra='param { lr_mult: 1 }')
    )
    net = Net(path, phase="train")
    user = net.layers[1].user_layer
    assert user.seen_phase == 0 and user.seen_phase.name == "TRAIN"
    assert user.seen_shape == (2, 3, 4, 5)
    # The layer's own initial values, not a filler's, are the net's param.
    assert net.params["scale"][0].shape == (3,)
    np.testing.assert_array_equal(net.params["scale"][0].data, [1, 2, 3])
    assert user.blobs[0].data is net.params["scale"][0].data
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    out = net.forward(data=x)["out"]
    np.testing.assert_allclose(out, x * np.array([1, 2, 3])[None, :, None, None], rtol=1e-6)
    assert net.backward_reason[1].startswith("no backward")  # no loss above it
    # Weights round-trip through a caffemodel like any layer's.
    net.params["scale"][0].data[...] = [7, 8, 9]
    net.save(pydir / "w.caffemodel")
    again = Net(path, weights=pydir / "w.caffemodel", phase="test")
    np.testing.assert_array_equal(again.params["scale"][0].data, [7, 8, 9])
    assert again.layers[1].user_layer.seen_phase == 1


def test_a_module_without_import_caffe_and_the_net_reshape(pydir) -> None:
    module = write_module(pydir, "bpi_user_plain", PLAIN)
    path = pydir / "plain.prototxt"
    path.write_text(
        'force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 } } }\n'
        + python_layer("double", module, "Double", ["data"], ["out"])
    )
    net = Net(path)
    assert net.forward(data=np.array([1.0, -2.0]))["out"].tolist() == [2.0, -4.0]
    assert net.backward(out=np.array([1.0, 3.0]))["data"].tolist() == [2.0, 6.0]
    net.blobs["data"].reshape((4,))
    net.reshape()
    assert net.blobs["out"].shape == (4,)


def test_the_module_is_found_next_to_the_net_file(pydir, monkeypatch, tmp_path) -> None:
    module = write_module(pydir, "bpi_user_nextto", PLAIN)
    monkeypatch.chdir(tmp_path)  # not the module's directory
    path = pydir / "n.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 } } }\n'
        + python_layer("double", module, "Double", ["data"], ["out"])
    )
    Net(path)
    assert str(pydir) in sys.path


def test_an_exception_in_forward_names_the_layer_and_shows_only_user_frames(pydir) -> None:
    module = write_module(pydir, "bpi_user_raising", RAISING)
    path = pydir / "r.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
        + python_layer("picky", module, "Picky", ["data"], ["out"])
    )
    net = Net(path)
    net.forward_layer(0)
    with pytest.raises(LayerCodeError) as info:
        net.forward_layer(1)
    error = info.value
    message = str(error)
    assert "\n" not in message
    assert "layer 'picky'" in message and "module bpi_user_raising" in message
    assert "class Picky" in message and "forward(bottom, top) raised ValueError" in message
    assert "the values are not all below -1e9" in message
    details = error.details
    user_file = str(pydir / "bpi_user_raising.py")
    assert details.count(user_file) == 2  # forward, then _check
    assert "in forward" in details and "in _check" in details
    assert "raise ValueError" in details
    assert details.rstrip().endswith("ValueError: the values are not all below -1e9")
    bpinspect_dir = str(Path(__import__("bpinspect").__file__).parent)
    assert bpinspect_dir not in details
    assert isinstance(error, BpinspectError) and isinstance(error.original, ValueError)


def test_an_exception_in_setup_stops_the_net_build(pydir) -> None:
    module = write_module(pydir, "bpi_user_raising2", RAISING)
    path = pydir / "r.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
        + python_layer("picky", module, "Picky", ["data"], ["out"], "fail in setup")
    )
    with pytest.raises(LayerCodeError, match=r"setup\(bottom, top\) raised RuntimeError: "
                                             r"setup refuses") as info:
        Net(path)
    assert "in setup" in info.value.details and "bpinspect/" not in info.value.details


def test_missing_module_class_and_top_shape_are_one_line_errors(pydir) -> None:
    def net_with(module: str, cls: str, source: str | None = None) -> Path:
        if source is not None:
            write_module(pydir, module, source)
        path = pydir / f"{module}.prototxt"
        path.write_text(
            'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
            + python_layer("py", module, cls, ["data"], ["out"])
        )
        return path

    with pytest.raises(BpinspectError, match="no module named 'bpi_user_nowhere'"):
        Net(net_with("bpi_user_nowhere", "X"))
    with pytest.raises(BpinspectError, match="has no 'Nope'"):
        Net(net_with("bpi_user_plain2", "Nope", PLAIN))
    unshaped = "import caffe\nclass Lazy(caffe.Layer):\n    pass\n"
    with pytest.raises(BpinspectError, match=r"left top 0 without a shape"):
        Net(net_with("bpi_user_lazy", "Lazy", unshaped))
    broken = "import caffe\nimport bpi_user_no_such_dependency\n"
    with pytest.raises(LayerCodeError, match="importing the module raised ModuleNotFoundError"):
        Net(net_with("bpi_user_broken", "X", broken))


def test_import_caffe_gives_the_facade_when_no_caffe_is_installed() -> None:
    assert provide_caffe_module()
    import caffe
    from caffe.proto import caffe_pb2

    import bpinspect.caffe
    from bpinspect.layers.python_layer import Layer

    assert caffe is bpinspect.caffe and caffe.Layer is Layer
    assert caffe_pb2 is sys.modules["bpinspect.proto.caffe_pb2"]
    assert caffe.TRAIN == 0 and caffe.TEST == 1


def test_blob_view_attributes_and_the_host_staging() -> None:
    blob = EngineBlob("b", (2, 3, 4), np, np.float32)
    view = Blob(blob)
    assert (view.num, view.channels, view.height, view.width) == (2, 3, 4, 1)
    assert view.count == 24 and view.shape == (2, 3, 4)
    view.reshape(5, 6)
    assert blob.shape == (5, 6) and (view.num, view.channels, view.height) == (5, 6, 1)
    view.data = 3.0  # assignment copies in
    assert (blob.data == 3).all()
    with pytest.raises(BpinspectError):
        view.reshape(-1)
    # A device's arrays are seen through host copies, written back on flush.
    staging = Staging(True)
    staged = Blob(blob, staging)
    host = staged.data
    assert host is not blob.data
    host[...] = 7
    staged.diff[0, 0] = 1
    assert (blob.data == 3).all()
    staging.flush()
    assert (blob.data == 7).all() and blob.diff[0, 0] == 1 and blob.diff.sum() == 1


def raising_net(pydir: Path, module: str) -> Path:
    write_module(pydir, module, RAISING)
    path = pydir / "raising.prototxt"
    path.write_text(
        'force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
        + python_layer("picky", module, "Picky", ["data"], ["out"])
    )
    return path


def test_the_cli_prints_the_line_then_the_user_frames(pydir, tmp_path, capsys) -> None:
    from bpinspect import cli

    path = raising_net(pydir, "bpi_user_raising_cli")
    code = cli.main(["dump", str(path), "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    first, *rest = err.strip().splitlines()
    assert first.startswith("bpinspect: layer 'picky' (Python: module bpi_user_raising_cli")
    assert rest[0].startswith("Traceback") and rest[-1].startswith("ValueError")
    assert all("bpinspect/" not in line for line in rest if line.lstrip().startswith("File"))
    assert sum("bpi_user_raising_cli.py" in line for line in rest) == 2


def test_an_installed_caffe_is_left_alone(pydir, tmp_path, monkeypatch) -> None:
    """With a Caffe on sys.path, `import caffe` is that Caffe; a layer subclassing its
    caffe.Layer (which only Caffe can construct) gets a one-line error saying so."""
    fake = tmp_path / "site" / "caffe"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from ._caffe import Layer\n")
    (fake / "_caffe.py").write_text("class Layer:\n    pass\n")
    for name in [n for n in sys.modules if n == "caffe" or n.startswith("caffe.")]:
        monkeypatch.delitem(sys.modules, name)
    sys.path.insert(0, str(fake.parent))
    try:
        assert not provide_caffe_module()
        module = write_module(pydir, "bpi_user_real_caffe", "import caffe\n\n"
                              "class Mine(caffe.Layer):\n    pass\n")
        path = pydir / "real.prototxt"
        path.write_text(
            'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
            + python_layer("mine", module, "Mine", ["data"], ["out"])
        )
        with pytest.raises(BpinspectError, match="subclasses the caffe.Layer of the Caffe "
                                                 "installed at .*site/caffe/__init__.py"):
            Net(path)
        assert sys.modules["caffe"].__file__ == str(fake / "__init__.py")
    finally:
        for name in [n for n in sys.modules if n == "caffe" or n.startswith("caffe.")]:
            del sys.modules[name]


def test_a_python_data_layer_fed_by_input_is_not_imported(pydir) -> None:
    path = pydir / "fed.prototxt"
    path.write_text(
        python_layer("data", "bpi_user_never_imported", "VOCData", [], ["data", "label"])
        + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 2 } }\n'
    )
    net = Net(path, feeds={"data": (2, 3), "label": (2, 1)})
    assert net.layers[0].type == "Python" and net.blobs["data"].shape == (2, 3)
    assert "bpi_user_never_imported" not in sys.modules
    assert any("fed by --input" in note for note in net.notes)
    with pytest.raises(BpinspectError, match="no module named 'bpi_user_never_imported'"):
        Net(path)
