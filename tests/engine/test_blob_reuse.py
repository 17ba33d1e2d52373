"""Blob.array_to_overwrite: layers write into a blob's own array when nothing else
holds it, and never into one that something can still read."""

from __future__ import annotations

import numpy as np

from bpinspect.engine.net import Net
from bpinspect.io.prototxt import parse_net
from bpinspect.session.schedule import FORWARD
from bpinspect.session.session import Session

NET = """
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 } }
force_backward: true
"""


def make() -> Net:
    return Net(parse_net(NET, "<test>"), seed=0)


def run(net: Net, x: np.ndarray, dy: np.ndarray) -> None:
    net.blobs["data"].data[...] = x
    for i in range(len(net.layers)):
        net.forward_layer(i)
    net.clear_blob_diffs()
    net.blobs["norm"].diff = dy.copy()
    for i in reversed(range(len(net.layers))):
        net.backward_layer(i)


def inputs(seed: int, net: Net) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(net.blobs["data"].shape).astype(np.float32),
            rng.standard_normal(net.blobs["norm"].shape).astype(np.float32))


def snapshot(net: Net) -> dict[str, np.ndarray]:
    return {f"{n}.{k}": getattr(b, k).copy() for n, b in net.blobs.items()
            for k in ("data", "diff")}


def test_a_second_pass_writes_into_the_arrays_only_the_blobs_hold() -> None:
    net = make()
    run(net, *inputs(0, net))
    ids = {name: (id(b.data), id(b.diff)) for name, b in net.blobs.items()}
    pool = net.layers[net.layer_names.index("pool")]
    argmax = id(pool._argmax)  # a layer's own cache, as Pooling's argmax mask
    run(net, *inputs(1, net))
    assert id(pool._argmax) == argmax
    for name in ("conv", "pool", "norm"):
        assert id(net.blobs[name].data) == ids[name][0], name
    for name in ("data", "conv", "pool"):
        assert id(net.blobs[name].diff) == ids[name][1], name


def test_reused_arrays_give_what_fresh_ones_give() -> None:
    warm, fresh = make(), make()
    run(warm, *inputs(0, warm))
    run(warm, *inputs(1, warm))  # into the first pass's arrays, in place for the ReLU
    run(fresh, *inputs(1, fresh))
    for key, want in snapshot(fresh).items():
        np.testing.assert_array_equal(snapshot(warm)[key], want, err_msg=key)


def test_an_array_something_else_holds_is_left_as_it_was() -> None:
    net = make()
    run(net, *inputs(0, net))
    held = {name: (b.data, b.diff) for name, b in net.blobs.items() if name != "data"}
    before = {name: (d.copy(), g.copy()) for name, (d, g) in held.items()}
    view = net.blobs["pool"].data[0]  # a view holds its base too
    view_before = view.copy()
    argmax = net.layers[net.layer_names.index("pool")]._argmax  # as the TUI's mask view
    argmax_before = argmax.copy()
    run(net, *inputs(1, net))
    np.testing.assert_array_equal(argmax, argmax_before)
    for name, (data, diff) in held.items():
        np.testing.assert_array_equal(data, before[name][0])
        np.testing.assert_array_equal(diff, before[name][1])
        assert not np.array_equal(net.blobs[name].data, data), name
    np.testing.assert_array_equal(view, view_before)


def test_the_debuggers_history_keeps_the_values_the_in_place_relu_overwrote() -> None:
    net = make()
    x, _ = inputs(0, net)
    reference = make()  # the same seed: the same weights
    reference.blobs["data"].data[...] = x
    reference.forward_layer(0)
    reference.forward_layer(1)  # conv alone: its top before the in-place ReLU
    before_relu = reference.blobs["conv"].data.copy()
    session = Session(net, inputs={"data": x})
    conv_step = session.step_of("conv", FORWARD).index
    for _ in range(2):  # the second pass writes into the first pass's arrays
        session.continue_()
        np.testing.assert_array_equal(session.array("conv", "data", step=conv_step),
                                      before_relu)
        np.testing.assert_array_equal(net.blobs["conv"].data, np.maximum(before_relu, 0))
        session.restart()
