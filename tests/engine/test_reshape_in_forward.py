"""A top whose shape changes in forward (a Filter's): the layers after it are set up
again before their own forward, as Caffe's per-Forward Reshape does; a net whose
shapes never change makes no setup call while it runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net

# ip0 gives the Filter a bottom that takes a gradient; relu runs in place on ip.
FILTER_NET = """
name: "filtered"
layer { name: "in" type: "Input" top: "data" top: "label" top: "sel"
        input_param { shape { dim: 6 dim: 3 } shape { dim: 6 } shape { dim: 6 dim: 1 } } }
layer { name: "ip0" type: "InnerProduct" bottom: "data" top: "h"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
layer { name: "filt" type: "Filter" bottom: "h" bottom: "label" bottom: "sel"
        top: "fh" top: "flabel" }
layer { name: "ip" type: "InnerProduct" bottom: "fh" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "flabel" top: "loss"
        propagate_down: true propagate_down: false }
"""

PLAIN_NET = """
name: "plain"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
"""

DATA = np.random.default_rng(0).standard_normal((6, 3))
LABEL = np.array([0, 1, 2, 0, 1, 2.0])


def make(text=FILTER_NET):
    return Net(parse_net(text), dtype=np.float64)


def reference_loss(net, data, label, selector):
    """The net's loss computed row by row from its weights, without the engine."""
    w0, b0 = (to_host(p.data) for p in net.params["ip0"])
    w1, b1 = (to_host(p.data) for p in net.params["ip"])
    losses = []
    for n in range(data.shape[0]):
        if selector[n] == 0:
            continue
        h = w0 @ data[n] + b0
        scores = np.maximum(w1 @ h + b1, 0)
        scores = scores - scores.max()
        losses.append(np.log(np.exp(scores).sum()) - scores[int(label[n])])
    return float(np.mean(losses))


def count_setups(net, monkeypatch):
    calls = {name: 0 for name in net.layer_names}
    for name, layer in zip(net.layer_names, net.layers, strict=True):
        original = layer.setup

        def counted(shapes, name=name, original=original):
            calls[name] += 1
            return original(shapes)

        monkeypatch.setattr(layer, "setup", counted)
    return calls


@pytest.mark.parametrize("selector", [[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0],
                                      [1, 1, 1, 1, 1, 1]])
def test_layers_after_a_filter_take_its_new_batch(selector):
    net = make()
    sel = np.array(selector, dtype=np.float64).reshape(6, 1)
    kept = int(sel.sum())
    out = net.forward(data=DATA, label=LABEL, sel=sel)
    assert net.blobs["fh"].shape == (kept, 4) and net.blobs["flabel"].shape == (kept,)
    assert net.blobs["ip"].shape == (kept, 3)
    assert float(out["loss"]) == pytest.approx(reference_loss(net, DATA, LABEL, sel[:, 0]))


def test_the_gradient_through_a_filter_is_the_numerical_one():
    net = make()
    sel = np.array([1, 0, 1, 1, 0, 0.0]).reshape(6, 1)
    net.forward(data=DATA, label=LABEL, sel=sel)
    net.clear_param_diffs()
    net.backward()
    weight = net.params["ip0"][0]
    analytic = to_host(weight.diff).copy()
    numeric = np.zeros_like(analytic)
    eps = 1e-6
    for index in np.ndindex(analytic.shape):
        values = []
        for sign in (1, -1):
            weight.data[index] += sign * eps
            values.append(reference_loss(net, DATA, LABEL, sel[:, 0]))
            weight.data[index] -= sign * eps
        numeric[index] = (values[0] - values[1]) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9)
    h_diff = to_host(net.blobs["h"].diff)
    assert not h_diff[[1, 4, 5]].any() and h_diff[[0, 2, 3]].any()


def test_a_second_forward_with_another_selector_reshapes_again():
    net = make()
    net.forward(data=DATA, label=LABEL, sel=np.ones((6, 1)))
    net.backward()
    sel = np.array([0, 1, 0, 0, 0, 1.0]).reshape(6, 1)
    out = net.forward(data=DATA, label=LABEL, sel=sel)
    assert net.blobs["ip"].shape == (2, 3)
    assert net.blobs["ip"].diff.shape == (2, 3)  # reallocated with the data
    assert float(out["loss"]) == pytest.approx(reference_loss(net, DATA, LABEL, sel[:, 0]))
    net.backward()
    assert net.blobs["fh"].diff.shape == (2, 4) and net.blobs["h"].diff.shape == (6, 4)


def test_setup_runs_only_where_a_shape_changed(monkeypatch):
    net = make()
    calls = count_setups(net, monkeypatch)
    sel = np.array([1, 0, 1, 1, 0, 1.0]).reshape(6, 1)
    net.forward(data=DATA, label=LABEL, sel=sel)  # 6 -> 4 items: ip, relu, loss again
    assert calls == {"in": 0, "ip0": 0, "filt": 0, "ip": 1, "relu": 1, "loss": 1}
    net.forward(data=DATA, label=LABEL, sel=sel[::-1].copy())  # 4 items again: nothing
    assert calls == {"in": 0, "ip0": 0, "filt": 0, "ip": 1, "relu": 1, "loss": 1}
    net.forward(data=DATA, label=LABEL, sel=np.ones((6, 1)))
    assert calls["ip"] == calls["relu"] == calls["loss"] == 2


def test_a_net_without_changing_shapes_makes_no_setup_call(monkeypatch):
    net = make(PLAIN_NET)
    calls = count_setups(net, monkeypatch)
    for _ in range(3):
        net.forward(data=np.ones((2, 3)))
        net.backward(ip=np.ones((2, 2)))
    assert calls == {"in": 0, "ip": 0, "relu": 0}


def test_net_reshape_gives_the_filter_its_whole_batch_back():
    net = make()
    net.forward(data=DATA, label=LABEL, sel=np.array([1, 0, 0, 0, 0, 1.0]).reshape(6, 1))
    net.reshape()
    assert net.blobs["fh"].shape == (6, 4) and net.blobs["ip"].shape == (6, 3)
    assert float(net.blobs["loss"].diff) == 1.0
    net.forward(data=DATA, label=LABEL, sel=np.array([1, 0, 0, 0, 0, 1.0]).reshape(6, 1))
    assert net.blobs["ip"].shape == (2, 3)


def test_the_memory_plan_takes_the_whole_batch_as_the_bound():
    net = make()
    # data, label, sel, h, fh (6 items, the Filter's setup), flabel, ip, loss; data + diff
    values = 6 * 3 + 6 + 6 + 6 * 4 + 6 * 4 + 6 + 6 * 3 + 1
    assert net.memory.blobs == 2 * 8 * values
    net.forward(data=DATA, label=LABEL, sel=np.array([1, 0, 0, 0, 0, 1.0]).reshape(6, 1))
    assert sum(2 * b.data.nbytes for b in net.blobs.values()) < net.memory.blobs


def test_a_layer_that_cannot_take_the_new_batch_is_a_one_line_error():
    net = make(FILTER_NET.replace(
        'layer { name: "ip" type: "InnerProduct" bottom: "fh" top: "ip"',
        'layer { name: "fixed" type: "Reshape" bottom: "fh" top: "r" '
        "reshape_param { shape { dim: 6 dim: 2 dim: 2 } } }\n"
        'layer { name: "ip" type: "InnerProduct" bottom: "r" top: "ip"'))
    with pytest.raises(BpinspectError, match="'fixed'") as info:
        net.forward(data=DATA, label=LABEL, sel=np.array([1, 0, 1, 1, 0, 1.0]).reshape(6, 1))
    assert "\n" not in str(info.value)


POSITIVE_ROWS = '''
class PositiveRows:
    """Keeps the rows whose sum is positive: its reshape reads the data, as a
    Python layer's may (Caffe calls it before every forward)."""

    def __init__(self, param):
        self.blobs = []

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(int((bottom[0].data.sum(axis=1) > 0).sum()), bottom[0].data.shape[1])

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x[x.sum(axis=1) > 0]

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_a_python_layer_whose_reshape_reads_the_data(tmp_path, monkeypatch):
    (tmp_path / "bpi_user_positive_rows.py").write_text(POSITIVE_ROWS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bpi_user_positive_rows", raising=False)
    net = make("""
        name: "py"
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
        layer { name: "keep" type: "Python" bottom: "x" top: "kept"
                python_param { module: "bpi_user_positive_rows" layer: "PositiveRows" } }
        layer { name: "ip" type: "InnerProduct" bottom: "kept" top: "ip"
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
    """)
    x = np.array([[1, 2, 3], [-1, -2, 0], [0, 0, 0.5], [-4, 1, 1.0]])
    w, b = (to_host(p.data) for p in net.params["ip"])

    def check(values, kept):
        expected = np.array([w @ row + b for row in values if row.sum() > 0])
        assert net.blobs["ip"].shape == (kept, 2)
        np.testing.assert_allclose(to_host(net.blobs["ip"].data), expected)

    net.forward(x=x)
    check(x, 2)
    net.blobs["x"].reshape((3, 3))  # another batch too: net.reshape, then the forward
    net.reshape()
    net.forward(x=-x[:3])
    check(-x[:3], 1)
