"""Python layers through caffe.Net, as pycaffe's python/caffe/test/test_python_layer.py
checks them, re-expressed: a module that does `import caffe` and subclasses caffe.Layer,
written fresh into a directory next to the net file."""

from __future__ import annotations

import sys
import textwrap

import pytest

import bpinspect.caffe as caffe
from bpinspect.errors import LayerCodeError

MODULE = '''
import caffe


class SimpleLayer(caffe.Layer):
    """Multiplies by ten."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError


class ParameterLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase
'''

HEAD = ("name: 'pythonnet' force_backward: true\n"
        "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n")


def layer(name: str, cls: str, bottom: str | None, top: str) -> str:
    b = f"bottom: '{bottom}' " if bottom else ""
    return (f"layer {{ type: 'Python' name: '{name}' {b}top: '{top}' "
            f"python_param {{ module: 'bpi_user_pycaffe_layers' layer: '{cls}' }} }}\n")


@pytest.fixture
def netdir(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "bpi_user_pycaffe_layers.py").write_text(textwrap.dedent(MODULE))
    yield tmp_path
    sys.modules.pop("bpi_user_pycaffe_layers", None)


def net_file(netdir, text: str) -> str:
    path = netdir / "net.prototxt"
    path.write_text(text)
    return str(path)


@pytest.fixture
def simple(netdir) -> caffe.Net:
    text = HEAD + layer("one", "SimpleLayer", "data", "one") + layer(
        "two", "SimpleLayer", "one", "two") + layer("three", "SimpleLayer", "two", "three")
    return caffe.Net(net_file(netdir, text), caffe.TRAIN)


def test_forward(simple) -> None:
    simple.blobs["data"].data[...] = 8
    simple.forward()
    assert (simple.blobs["three"].data == 10**3 * 8).all()


def test_backward(simple) -> None:
    simple.blobs["three"].diff[...] = 7
    simple.backward()
    assert (simple.blobs["data"].diff == 10**3 * 7).all()


def test_reshape(simple) -> None:
    simple.blobs["data"].reshape(4, 4, 4, 4)
    simple.forward()
    for blob in simple.blobs.values():
        assert blob.data.shape == (4, 4, 4, 4)


def test_exception_in_setup(netdir) -> None:
    path = net_file(netdir, HEAD + layer("layer", "ExceptionLayer", "data", "top"))
    with pytest.raises(LayerCodeError, match="setup.* raised RuntimeError") as info:
        caffe.Net(path, caffe.TEST)
    assert "bpi_user_pycaffe_layers.py" in info.value.details


def test_parameter_save_copy_share(netdir, tmp_path) -> None:
    path = net_file(netdir, HEAD + layer("layer", "ParameterLayer", "data", "top"))
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    user = net.layers[list(net._layer_names).index("layer")]
    assert isinstance(user, caffe.Layer)  # the user's own object, as in pycaffe
    assert user.blobs[0].data[0] == 0 and user.blobs[0].diff[0] == 1
    user.blobs[0].data[0] += user.blobs[0].diff[0]
    assert net.params["layer"][0].data[0] == 1
    weights = str(tmp_path / "p.caffemodel")
    net.save(weights)
    user.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert user.blobs[0].data[0] == 1
    other = caffe.Net(path, caffe.TRAIN)
    other.share_with(net)
    assert other.layers[1].blobs[0].data[0] == 1


def test_phase(netdir) -> None:
    path = net_file(netdir, "name: 'p'\n" + layer("layer", "PhaseLayer", None, "phase"))
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(path, phase)
        assert net.forward()["phase"] == phase


def test_pycaffe_submodules_are_the_facades_own_not_copies() -> None:
    """``from caffe.coord_map import crop`` in a layer's module gives bpinspect's module
    itself (one copy: its classes are the ones the rest of the facade checks against)."""
    import subprocess
    import sys

    code = (
        "from bpinspect.layers.python_layer import provide_caffe_module\n"
        "assert provide_caffe_module()\n"
        "import caffe.coord_map, caffe.draw, caffe.detector, caffe.net_spec\n"
        "import bpinspect.caffe as facade\n"
        "import bpinspect.caffe.coord_map, bpinspect.caffe.draw\n"
        "assert caffe.coord_map is bpinspect.caffe.coord_map\n"
        "assert caffe.draw is bpinspect.caffe.draw\n"
        "from caffe.coord_map import crop\n"
        "assert crop is bpinspect.caffe.coord_map.crop\n"
        "assert caffe.Detector is facade.Detector\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
