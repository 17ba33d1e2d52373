"""The Net: graph building as Caffe's net.cpp does it, needs-backward and why,
loss weights, pycaffe's forward/backward, weights in and out.

Small nets of InnerProduct/ReLU/Concat/EuclideanLoss in float64, so that every
expected value is computed here independently with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import CPU, select_device
from bpinspect.engine.net import Net, filter_net, state_meets_rule
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net
from bpinspect.proto import caffe_pb2


def make(text: str, **kwargs) -> Net:
    kwargs.setdefault("dtype", np.float64)
    return Net(parse_net(text, "<test>"), **kwargs)


def device_of(xp):
    return CPU if xp is np else select_device("gpu")


def host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'


def ip(name: str, bottom: str, top: str, n: int = 4, extra: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" '
        f"inner_product_param {{ num_output: {n} }} {extra} }}\n"
    )


def target(name: str, n: int = 4, value: float = 0.5) -> str:
    return (
        f'layer {{ name: "{name}" type: "DummyData" top: "{name}" dummy_data_param {{ '
        f"shape {{ dim: 2 dim: {n} }} data_filler {{ type: 'constant' value: {value} }} }} }}\n"
    )


def euclid(name: str, a: str, b: str, extra: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "EuclideanLoss" bottom: "{a}" bottom: "{b}" '
        f'top: "{name}" {extra} }}\n'
    )


def relu(name: str, bottom: str, top: str | None = None, extra: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "ReLU" bottom: "{bottom}" top: "{top or bottom}" '
        f"{extra} }}\n"
    )


X = np.array([[0.3, -1.2, 0.8], [1.1, 0.4, -0.7]])


def W(net: Net, layer: str) -> np.ndarray:
    return host(net.params[layer][0].data)


def B(net: Net, layer: str) -> np.ndarray:
    return host(net.params[layer][1].data)


# ---- phase filtering ------------------------------------------------------------

PHASED = (
    INPUT
    + ip("always", "data", "a")
    + ip("train_only", "a", "t", extra="include { phase: TRAIN }")
    + ip("test_only", "a", "u", extra="include { phase: TEST }")
    + ip("not_test", "a", "v", extra="exclude { phase: TEST }")
    + ip("deep", "a", "w", extra="include { min_level: 2 }")
    + ip("staged", "a", "x", extra='include { stage: "s1" stage: "s2" }')
    + ip("not_staged", "a", "y", extra='include { not_stage: "s1" }')
)


def test_phase_filtering_default_is_test() -> None:
    net = make(PHASED)
    assert net.phase == "test"
    assert [n for n in net.layer_names if "split" not in n] == [
        "data", "always", "test_only", "not_staged",
    ]


def test_phase_filtering_train_level_and_stages() -> None:
    net = make(PHASED, phase="train", level=2, stages=["s1", "s2"])
    assert [n for n in net.layer_names if "split" not in n] == [
        "data", "always", "train_only", "not_test", "deep", "staged",
    ]
    assert net.phase == "train"
    assert all(layer.phase == "train" for layer in net.layers)


def test_state_meets_rule() -> None:
    state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN, level=3, stage=["a", "b"])
    rule = caffe_pb2.NetStateRule
    assert state_meets_rule(state, rule())
    assert state_meets_rule(state, rule(phase=caffe_pb2.TRAIN))
    assert not state_meets_rule(state, rule(phase=caffe_pb2.TEST))
    assert state_meets_rule(state, rule(min_level=3, max_level=3))
    assert not state_meets_rule(state, rule(min_level=4))
    assert not state_meets_rule(state, rule(max_level=2))
    assert state_meets_rule(state, rule(stage=["a", "b"]))
    assert not state_meets_rule(state, rule(stage=["a", "c"]))
    assert not state_meets_rule(state, rule(not_stage=["b"]))
    assert state_meets_rule(state, rule(not_stage=["c"]))


def test_include_and_exclude_together_is_an_error() -> None:
    rules = "include { phase: TRAIN } exclude { phase: TEST }"
    param = parse_net(ip("both", "data", "a", extra=rules))
    with pytest.raises(BpinspectError, match="layer 'both': specify either include"):
        filter_net(param)


def test_bad_phase() -> None:
    with pytest.raises(BpinspectError, match="phase 'deploy'"):
        make(INPUT, phase="deploy")


# ---- splits, in-place ------------------------------------------------------------

TWO_BRANCHES = (
    INPUT
    + target("t1", value=0.5)
    + target("t2", value=-0.25)
    + ip("A", "data", "a")
    + ip("B1", "a", "b1")
    + ip("B2", "a", "b2")
    + euclid("l1", "b1", "t1")
    + euclid("l2", "b2", "t2")
)


def test_split_names_are_caffes() -> None:
    net = make(TWO_BRANCHES)
    assert net.layer_names == ["data", "t1", "t2", "A", "a_A_0_split", "B1", "B2", "l1", "l2"]
    split = net.layers[net.layer_index("a_A_0_split")]
    assert split.type == "Split"
    assert net.bottom_names["a_A_0_split"] == ["a"]
    assert net.top_names["a_A_0_split"] == ["a_A_0_split_0", "a_A_0_split_1"]
    assert net.bottom_names["B1"] == ["a_A_0_split_0"]
    assert net.bottom_names["B2"] == ["a_A_0_split_1"]
    assert list(net.blobs) == [
        "data", "t1", "t2", "a", "a_A_0_split_0", "a_A_0_split_1", "b1", "b2", "l1", "l2",
    ]
    assert net.outputs == ["l1", "l2"]
    assert net.inputs == ["data"]


def test_split_bottom_diff_is_the_sum_of_the_branches(xp) -> None:
    net = make(TWO_BRANCHES, device=device_of(xp))
    net.forward(data=X)
    diffs = net.backward()
    a = X @ W(net, "A").T + B(net, "A")
    n = X.shape[0]
    branch = []
    for layer, t in (("B1", 0.5), ("B2", -0.25)):
        b = a @ W(net, layer).T + B(net, layer)
        branch.append(((b - t) / n) @ W(net, layer))  # d(l_k)/da through that branch alone
    np.testing.assert_allclose(host(net.blobs["a_A_0_split_0"].diff), branch[0], rtol=1e-12)
    np.testing.assert_allclose(host(net.blobs["a_A_0_split_1"].diff), branch[1], rtol=1e-12)
    np.testing.assert_allclose(host(net.blobs["a"].diff), branch[0] + branch[1], rtol=1e-12)
    # data needs no gradient (no force_backward): Caffe leaves it alone.
    assert not net.bottom_need_backward[net.layer_index("A")][0]
    assert not host(diffs["data"]).any()


CONCAT_SELF = (
    "force_backward: true\n"
    + INPUT
    + ip("A", "data", "a")
    + 'layer { name: "AA" type: "Concat" bottom: "a" bottom: "a" top: "aa" '
    "concat_param { axis: 0 } }\n"
)


def test_blob_concatenated_with_itself_gets_both_slices(xp) -> None:
    """Seed 000, question 3: A concatenated with itself receives the sum of both gradients."""
    net = make(CONCAT_SELF, device=device_of(xp))
    assert net.layer_names == ["data", "A", "a_A_0_split", "AA"]
    assert net.bottom_names["AA"] == ["a_A_0_split_0", "a_A_0_split_1"]
    out = net.forward(data=X)
    assert out["aa"].shape == (4, 4)
    np.testing.assert_array_equal(host(out["aa"])[:2], host(out["aa"])[2:])
    top_diff = np.random.default_rng(0).standard_normal((4, 4))
    net.backward(aa=top_diff)
    np.testing.assert_allclose(
        host(net.blobs["a"].diff), top_diff[:2] + top_diff[2:], rtol=1e-14, atol=0
    )
    # ... and A's weight gradient sees that sum once.
    np.testing.assert_allclose(
        host(net.params["A"][0].diff), (top_diff[:2] + top_diff[2:]).T @ X, rtol=1e-12
    )
    np.testing.assert_allclose(
        host(net.blobs["data"].diff), (top_diff[:2] + top_diff[2:]) @ W(net, "A"), rtol=1e-12
    )


def test_in_place_layers_share_the_blob() -> None:
    net = make(INPUT + ip("A", "data", "a") + relu("relu", "a") + ip("B", "a", "b"))
    i = net.layer_index("relu")
    assert net.top_blobs(i)[0] is net.bottom_blobs(i)[0] is net.blobs["a"]
    assert net.bottom_blobs(net.layer_index("B"))[0] is net.blobs["a"]
    assert list(net.blobs) == ["data", "a", "b"]
    assert net.producer_index("a") == i
    assert net.producer_index("b") == net.layer_index("B")
    net.forward(data=X)
    a = X @ W(net, "A").T + B(net, "A")
    np.testing.assert_allclose(host(net.blobs["a"].data), np.maximum(a, 0))


def test_in_place_then_fan_out_splits_after_the_in_place_layer() -> None:
    net = make(
        INPUT + ip("A", "data", "a") + relu("relu", "a") + ip("B", "a", "b") + ip("C", "a", "c")
    )
    assert net.layer_names == ["data", "A", "relu", "a_relu_0_split", "B", "C"]


# ---- errors in the graph ------------------------------------------------------------


def test_unknown_bottom() -> None:
    with pytest.raises(BpinspectError, match="layer 'B': unknown bottom blob 'nothing'"):
        make(INPUT + ip("B", "nothing", "b"))


def test_unknown_layer_type_names_the_type() -> None:
    text = INPUT + 'layer { name: "odd" type: "NoSuchLayer" bottom: "data" top: "o" }'
    with pytest.raises(BpinspectError, match="layer 'odd'.*'NoSuchLayer'"):
        make(text)


def test_duplicate_top_is_an_error() -> None:
    message = "layer 'B': top blob 'a' is already produced by layer 'A'"
    with pytest.raises(BpinspectError, match=message):
        make(INPUT + ip("A", "data", "a") + ip("B", "data", "a"))


def test_duplicate_layer_name_is_an_error() -> None:
    with pytest.raises(BpinspectError, match="layer 'A': the name is used by two layers"):
        make(INPUT + ip("A", "data", "a") + ip("A", "a", "b"))


def test_loss_weight_count_must_match_tops() -> None:
    text = INPUT + target("t") + ip("A", "data", "a")
    text += euclid("l", "a", "t", "loss_weight: 1 loss_weight: 2")
    with pytest.raises(BpinspectError, match="layer 'l': loss_weight must be unspecified"):
        make(text)


def test_two_top_softmax_loss_needs_a_loss_weight_per_top() -> None:
    """Caffe's LossLayer::LayerSetUp adds a single loss_weight 1; SetLossWeights then
    checks it against the 2 tops and dies. With both weights given it is fine."""
    head = INPUT + ip("A", "data", "a")
    head += ('layer { name: "lab" type: "DummyData" top: "lab" '
             'dummy_data_param { shape { dim: 2 } } } ')
    swl = ('layer { name: "l" type: "SoftmaxWithLoss" bottom: "a" bottom: "lab" '
           'top: "loss" top: "prob" %s } ')
    with pytest.raises(BpinspectError, match="layer 'l'.*loss_weight once per top"):
        make(head + swl % "")
    net = make(head + swl % "loss_weight: 1 loss_weight: 0")
    assert net.loss_weights == {"loss": 1.0}


def test_propagate_down_count_must_match_bottoms() -> None:
    text = INPUT + target("t") + ip("A", "data", "a")
    text += euclid("l", "a", "t", "propagate_down: true")
    with pytest.raises(BpinspectError, match="layer 'l': propagate_down must be given 0 or 2"):
        make(text)


def test_model_of_the_wrong_type() -> None:
    with pytest.raises(BpinspectError, match="expected a .prototxt path or a NetParameter"):
        Net(42)


# ---- needs backward, and why ------------------------------------------------------

DEPLOY = INPUT + ip("ip1", "data", "h") + relu("relu1", "h") + ip("ip2", "h", "out")


def test_deploy_net_without_force_backward_runs_no_backward() -> None:
    net = make(DEPLOY)
    assert net.force_backward is False
    assert net.layer_need_backward == [False, False, False, False]
    assert net.backward_reason[0] == "no backward: input layer"
    for reason in net.backward_reason[1:]:
        assert reason == (
            "no backward: no path from its tops to a loss "
            "(add force_backward: true to backprop an injected diff)"
        )
    assert net.bottom_need_backward == [[], [False], [False], [False]]


def test_deploy_net_with_force_backward_runs_every_backward() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    assert net.layer_need_backward == [False, True, True, True]
    assert net.bottom_need_backward == [[], [True], [True], [True]]
    assert net.backward_reason[0] == "no backward: input layer"
    assert net.backward_reason[1] == (
        "needs backward: force_backward: true (without it: no path from its tops to a loss)"
    )
    assert all(net.layers[i].param_propagate_down == [True, True] for i in (1, 3))


def test_loss_net_switches_off_a_branch_that_reaches_no_loss() -> None:
    net = make(
        INPUT + target("t")
        + ip("ip1", "data", "h")
        + ip("dead", "h", "unused")
        + ip("ip2", "h", "out")
        + euclid("loss", "out", "t")
    )
    assert net.layer_names == ["data", "t", "ip1", "h_ip1_0_split", "dead", "ip2", "loss"]
    need = dict(zip(net.layer_names, net.layer_need_backward, strict=True))
    assert need == {
        "data": False, "t": False, "ip1": True, "h_ip1_0_split": True,
        "dead": False, "ip2": True, "loss": True,
    }
    reason = dict(zip(net.layer_names, net.backward_reason, strict=True))
    assert reason["dead"] == (
        "no backward: no path from its tops to a loss "
        "(add force_backward: true to backprop an injected diff)"
    )
    assert reason["ip1"] == "needs backward: its top h leads to a loss; it has learnable params"
    assert reason["ip2"] == (
        "needs backward: its top out leads to a loss; its bottom h_ip1_0_split_1 needs a "
        "gradient; it has learnable params"
    )
    assert reason["loss"] == (
        "needs backward: its top loss is a loss (loss_weight 1); its bottom out needs a gradient"
    )
    assert reason["t"] == "no backward: input layer"
    # The split sends no gradient down the dead branch's top, and data gets none.
    assert net.bottom_need_backward[net.layer_index("dead")] == [False]
    assert net.bottom_need_backward[net.layer_index("ip1")] == [False]
    assert net.bottom_need_backward[net.layer_index("loss")] == [True, False]


def test_propagate_down_false() -> None:
    net = make(
        INPUT + target("t")
        + ip("A", "data", "a")
        + relu("R", "a", "r", extra="propagate_down: false")
        + ip("B", "r", "b")
        + euclid("loss", "b", "t")
    )
    need = dict(zip(net.layer_names, net.layer_need_backward, strict=True))
    reason = dict(zip(net.layer_names, net.backward_reason, strict=True))
    assert need["R"] is False
    assert reason["R"] == "no backward: propagate_down is false for every bottom"
    assert need["A"] is False
    assert reason["A"] == (
        "no backward: the layers that read its tops have propagate_down: false for them"
    )
    assert need["B"] is True  # its params still learn
    assert net.bottom_need_backward[net.layer_index("R")] == [False]

    # A layer with params whose bottom has propagate_down: false still runs, for its params.
    net = make(
        INPUT + target("t")
        + ip("A", "data", "a")
        + ip("B", "a", "b", extra="propagate_down: false")
        + euclid("loss", "b", "t")
    )
    assert net.layer_need_backward[net.layer_index("B")] is True
    assert net.bottom_need_backward[net.layer_index("B")] == [False]
    assert net.layer_need_backward[net.layer_index("A")] is False
    net.forward(data=X)
    net.clear_param_diffs()
    net.backward()
    assert host(net.params["B"][0].diff).any()
    assert not host(net.params["A"][0].diff).any()


def test_lr_mult_zero_params() -> None:
    frozen = "param { lr_mult: 0 } param { lr_mult: 0 }"
    net = make(
        INPUT + target("t")
        + ip("A", "data", "a", extra=frozen)
        + relu("R", "a")
        + ip("B", "a", "b", extra="param { lr_mult: 0 } param { lr_mult: 1 }")
        + euclid("loss", "b", "t")
    )
    need = dict(zip(net.layer_names, net.layer_need_backward, strict=True))
    reason = dict(zip(net.layer_names, net.backward_reason, strict=True))
    assert need["A"] is False and need["R"] is False and need["B"] is True
    assert reason["A"] == (
        "no backward: no bottom needs a gradient and it has no learnable params "
        "(its params have lr_mult: 0)"
    )
    assert reason["R"] == "no backward: no bottom needs a gradient and it has no learnable params"
    assert net.layers[net.layer_index("A")].param_propagate_down == [False, False]
    assert net.layers[net.layer_index("B")].param_propagate_down == [False, True]
    assert net.bottom_need_backward[net.layer_index("B")] == [False]
    net.forward(data=X)
    net.clear_param_diffs()
    net.backward()
    assert not host(net.params["A"][0].diff).any()
    assert not host(net.params["B"][0].diff).any()  # lr_mult 0: no weight gradient
    assert host(net.params["B"][1].diff).any()


# ---- loss ----------------------------------------------------------------------------


def test_loss_value_and_loss_weights() -> None:
    net = make(TWO_BRANCHES.replace('top: "l2" ', 'top: "l2" loss_weight: 2 '))
    assert net.loss_weights == {"l1": 1.0, "l2": 2.0}
    net.forward(data=X)
    a = X @ W(net, "A").T + B(net, "A")
    b1 = a @ W(net, "B1").T + B(net, "B1")
    b2 = a @ W(net, "B2").T + B(net, "B2")
    l1 = ((b1 - 0.5) ** 2).sum() / 2 / 2
    l2 = ((b2 + 0.25) ** 2).sum() / 2 / 2
    assert net.loss == pytest.approx(l1 + 2 * l2, rel=1e-12)
    assert net.forward_layer(net.layer_index("l2")) == pytest.approx(2 * l2, rel=1e-12)
    assert net.forward_layer(net.layer_index("B1")) == 0.0


def test_seed_loss_diffs() -> None:
    net = make(TWO_BRANCHES.replace('top: "l2" ', 'top: "l2" loss_weight: 2 '))
    net.clear_diffs()
    net.seed_loss_diffs()
    assert float(net.blobs["l1"].diff.sum()) == 1.0
    assert float(net.blobs["l2"].diff.sum()) == 2.0
    assert not net.blobs["b1"].diff.any()


def test_loss_weight_on_a_consumed_top_moves_to_the_split() -> None:
    """insert_splits: the split's top 0 carries the loss weight, as in Caffe."""
    net = make(INPUT + ip("A", "data", "a", extra="loss_weight: 1.5") + ip("B", "a", "b"))
    assert net.layer_names == ["data", "A", "a_A_0_split", "B"]
    assert net.loss_weights == {"a_A_0_split_0": 1.5}
    assert net.outputs == ["a_A_0_split_0", "b"]
    assert net.layer_need_backward == [False, True, True, False]
    net.forward(data=X)
    a = X @ W(net, "A").T + B(net, "A")
    assert net.loss == pytest.approx(1.5 * a.sum(), rel=1e-12)
    net.backward()
    np.testing.assert_allclose(host(net.params["A"][1].diff), np.full(4, 1.5 * 2))


# ---- pycaffe forward / backward ------------------------------------------------------


def test_forward_start_end() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    out = net.forward(data=X)
    assert list(out) == ["out"]
    h = np.maximum(X @ W(net, "ip1").T + B(net, "ip1"), 0)
    np.testing.assert_allclose(host(out["out"]), h @ W(net, "ip2").T + B(net, "ip2"))
    part = net.forward(end="relu1")
    assert list(part) == ["h"]
    np.testing.assert_allclose(host(part["h"]), h)
    net.blobs["h"].data[...] = 1.0
    rest = net.forward(start="ip2")
    expected = np.tile(W(net, "ip2").sum(1) + B(net, "ip2"), (2, 1))
    np.testing.assert_allclose(host(rest["out"]), expected)


def test_backward_from_injection_at_a_non_output_blob() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    net.forward(data=X)
    net.clear_param_diffs()
    r = np.random.default_rng(1).standard_normal((2, 4))
    diffs = net.backward(h=r)  # h: ip1's top, rewritten in place by relu1
    assert list(diffs) == ["data"]
    h = X @ W(net, "ip1").T + B(net, "ip1")
    np.testing.assert_allclose(host(diffs["data"]), (r * (h > 0)) @ W(net, "ip1"), rtol=1e-12)
    assert not host(net.params["ip2"][0].diff).any()  # ip2 is above the injection: not run
    np.testing.assert_allclose(host(net.params["ip1"][1].diff), (r * (h > 0)).sum(0), rtol=1e-12)


def test_backward_start_end_and_output_injection() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    net.forward(data=X)
    r = np.ones((2, 4))
    out = net.backward(end="ip2", out=r)
    assert list(out) == ["h"]
    np.testing.assert_allclose(host(out["h"]), r @ W(net, "ip2"), rtol=1e-12)
    assert not host(net.blobs["data"].diff).any()  # stopped at ip2
    # start given: goes on from the diffs already there
    out = net.backward(start="relu1")
    h = X @ W(net, "ip1").T + B(net, "ip1")
    np.testing.assert_allclose(host(out["data"]), ((r @ W(net, "ip2")) * (h > 0)) @ W(net, "ip1"))


def test_forward_backward_argument_errors() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    with pytest.raises(BpinspectError, match="forward: unknown blob 'nope'"):
        net.forward(nope=X)
    with pytest.raises(BpinspectError, match=r"forward: blob 'data' has shape \(2, 3\).*\(3, 2\)"):
        net.forward(data=X.T)
    net.forward(data=X)
    with pytest.raises(BpinspectError, match="backward: unknown blob 'nope'"):
        net.backward(nope=X)
    message = r"backward: blob 'out' has shape \(2, 4\).*\(1, 1000\)"
    with pytest.raises(BpinspectError, match=message):
        net.backward(out=np.zeros((1, 1000)))
    with pytest.raises(BpinspectError, match="unknown layer 'nope'"):
        net.forward(end="nope")
    with pytest.raises(BpinspectError, match="unknown blob 'nope'"):
        net.producer_index("nope")


def test_reshape_follows_a_new_input_shape() -> None:
    net = make("force_backward: true\n" + DEPLOY)
    net.blobs["data"].reshape((5, 3))
    net.reshape()
    assert net.blobs["h"].shape == (5, 4)
    assert net.blobs["out"].shape == (5, 4)
    x = np.random.default_rng(2).standard_normal((5, 3))
    out = net.forward(data=x)
    assert out["out"].shape == (5, 4)
    net.blobs["data"].reshape((5, 2))
    message = "layer 'ip1': the new input shapes would change its params"
    with pytest.raises(BpinspectError, match=message):
        net.reshape()


# ---- params: fillers, sharing, weights in and out ------------------------------------


def test_unfilled_weights_get_seeded_msra_and_a_note() -> None:
    a = make(DEPLOY, seed=3)
    b = make(DEPLOY, seed=3)
    c = make(DEPLOY, seed=4)
    np.testing.assert_array_equal(W(a, "ip1"), W(b, "ip1"))
    assert not np.array_equal(W(a, "ip1"), W(c, "ip1"))
    assert W(a, "ip1").std() > 0
    assert not B(a, "ip1").any()  # biases: Caffe's default constant 0
    assert a.weights_source == "seeded MSRA filler (seed 3): no --weights given"
    assert any("MSRA" in note and "ip1, ip2" in note for note in a.notes)


def test_prototxt_fillers_are_used() -> None:
    net = make(
        INPUT
        + ip("A", "data", "a", extra="")
        .replace("num_output: 4 }", "num_output: 4 weight_filler { type: 'constant' value: 0.25 } "
                 "bias_filler { type: 'constant' value: -1 } }")
    )
    np.testing.assert_array_equal(W(net, "A"), np.full((4, 3), 0.25))
    np.testing.assert_array_equal(B(net, "A"), np.full(4, -1.0))
    assert not any("MSRA" in note for note in net.notes)


def test_params_are_on_the_device_in_the_dtype(xp) -> None:
    net = make(DEPLOY, device=device_of(xp), dtype=np.float32)
    for blobs in net.params.values():
        for blob in blobs:
            assert blob.dtype == np.float32
            assert type(blob.data) is type(xp.zeros(1))
    for blob in net.blobs.values():
        assert blob.dtype == np.float32
        assert type(blob.diff) is type(xp.zeros(1))


def test_shared_params_are_one_blob_and_sum_their_gradients() -> None:
    shared = 'param { name: "w" } param { name: "bias" }'
    net = make(
        INPUT + target("t", n=3)
        + ip("P1", "data", "p1", n=3, extra=shared)
        + ip("P2", "p1", "p2", n=3, extra=shared)
        + euclid("loss", "p2", "t")
    )
    assert net.params["P1"][0] is net.params["P2"][0]
    assert net.params["P1"][1] is net.params["P2"][1]
    net.forward(data=X)
    net.clear_param_diffs()
    net.backward()
    w = net.params["P1"][0]
    analytic = host(w.diff).copy()

    def loss() -> float:
        net.forward()
        return net.loss

    eps = 1e-6
    for c in [(0, 0), (1, 2), (2, 1)]:
        saved = float(w.data[c])
        w.data[c] = saved + eps
        plus = loss()
        w.data[c] = saved - eps
        minus = loss()
        w.data[c] = saved
        assert analytic[c] == pytest.approx((plus - minus) / (2 * eps), rel=1e-6, abs=1e-9)


def test_shared_param_shape_mismatch() -> None:
    message = "layer 'P2': cannot share param 'w' owned by layer 'P1'"
    with pytest.raises(BpinspectError, match=message):
        make(
            INPUT
            + ip("P1", "data", "p1", n=3, extra='param { name: "w" }')
            + ip("P2", "p1", "p2", n=4, extra='param { name: "w" }')
        )


def test_save_and_load_round_trip(tmp_path) -> None:
    path = tmp_path / "w.caffemodel"
    first = make(TWO_BRANCHES, seed=1, dtype=np.float32)  # a .caffemodel holds float32
    first.save(path)
    second = make(TWO_BRANCHES, weights=path, seed=2, dtype=np.float32)
    assert second.weights_source == str(path)
    for name, blobs in first.params.items():
        for a, b in zip(blobs, second.params[name], strict=True):
            np.testing.assert_array_equal(host(a.data), host(b.data))
    out1 = first.forward(data=X)
    out2 = second.forward(data=X)
    for name in out1:
        np.testing.assert_array_equal(host(out1[name]), host(out2[name]))
    assert not any("MSRA" in note for note in second.notes)


def test_weights_shape_mismatch(tmp_path) -> None:
    path = tmp_path / "w.caffemodel"
    make(DEPLOY).save(path)
    with pytest.raises(BpinspectError, match=r"ip1.*\(4, 3\).*\(5, 3\)|ip1.*\(5, 3\).*\(4, 3\)"):
        make(DEPLOY.replace("num_output: 4", "num_output: 5", 1), weights=path)


def test_net_parameter_input_is_upgraded_and_not_modified() -> None:
    param = caffe_pb2.NetParameter()
    param.input.append("data")
    param.input_shape.add().dim.extend([2, 3])
    param.layer.add().CopyFrom(parse_net(ip("ip1", "data", "h")).layer[0])
    before = param.SerializeToString()
    net = Net(param, dtype=np.float64)
    assert param.SerializeToString() == before
    assert net.inputs == ["data"]
    assert net.layer_names == ["input", "ip1"]
