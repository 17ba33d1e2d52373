"""caffe.draw: the DOT text parsed back into nodes and edges, against pycaffe's rules
applied by hand to a small net; the phase filter, rankdir, display_lrm; Graphviz run
(a stand-in ``dot`` on PATH, and the real one where installed) and its absence."""

from __future__ import annotations

import re
import shutil
import stat

import pytest
from google.protobuf import text_format

import bpinspect.caffe as caffe
from bpinspect.caffe import draw
from bpinspect.errors import BpinspectError

NET = """
name: "Small"
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool1" top: "drop" include { phase: TRAIN } }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
        inner_product_param { num_output: 10 } exclude { phase: TRAIN } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

BLOB = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}


def layer_style(color):
    return {"shape": "record", "fillcolor": color, "style": "filled"}


def net_param():
    return text_format.Parse(NET, caffe.proto.caffe_pb2.NetParameter())


# ---- a small DOT reader, for what draw writes -------------------------------------

TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|->|[A-Za-z0-9_.#\-]+|[{}\[\];,=]|\s+')


def tokens(text):
    out, pos = [], 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        assert match, f"cannot read DOT at {text[pos:pos + 30]!r}"
        if not match.group().isspace():
            out.append(match.group())
        pos = match.end()
    return out


def unquote(token):
    return token[1:-1].replace('\\"', '"') if token.startswith('"') else token


def read_dot(text):
    """``(name, graph attributes, {node: attrs}, [(src, dst, attrs)])``."""
    toks = tokens(text)
    assert toks[0] == "digraph" and toks[2] == "{" and toks[-1] == "}"
    name, body = unquote(toks[1]), toks[3:-1]
    graph, nodes, edges = {}, {}, []
    statements, current = [], []
    for tok in body:
        if tok == ";":
            statements.append(current)
            current = []
        else:
            current.append(tok)
    assert current == []  # every statement ends with ;
    for st in statements:
        attrs = {}
        if "[" in st:
            at = st.index("[")
            inner = [t for t in st[at + 1:-1] if t != ","]
            assert st[-1] == "]" and len(inner) % 3 == 0
            for i in range(0, len(inner), 3):
                assert inner[i + 1] == "="
                attrs[unquote(inner[i])] = unquote(inner[i + 2])
            st = st[:at]
        if len(st) == 3 and st[1] == "=":
            graph[st[0]] = unquote(st[2])
        elif len(st) == 3 and st[1] == "->":
            edges.append((unquote(st[0]), unquote(st[2]), attrs))
        else:
            assert len(st) == 1, st
            nodes[unquote(st[0])] = attrs
    return name, graph, nodes, edges


# ---- the labels and the graph, by pycaffe's rules ---------------------------------

CONV1 = r"conv1\n(Convolution)\nkernel size: 5\nstride: 2\npad: 1"
POOL1 = r"pool1\n(Pooling AVE)\nkernel size: 3\nstride: 2\npad: 0"
DATA, RELU1, DROP = r"data\n(Input)", r"relu1\n(ReLU)", r"drop\n(Dropout)"
IP, LOSS = r"ip\n(InnerProduct)", r"loss\n(SoftmaxWithLoss)"


def test_all_phases_nodes_and_edges():
    name, graph, nodes, edges = read_dot(draw.get_pydot_graph(net_param(), "LR").to_string())
    assert name == "Small" and graph == {"rankdir": "LR"}
    assert nodes == {
        DATA: layer_style("#6495ED"),
        "data": BLOB,            # last named as conv1's bottom
        "label": BLOB,           # as loss's bottom
        CONV1: layer_style("#FF5050"),
        "conv1": BLOB,           # pool1's bottom, after relu1 wrote it
        RELU1: layer_style("#90EE90"),  # in place: a neuron
        POOL1: layer_style("#FF9900"),
        "pool1": BLOB,
        DROP: layer_style("#6495ED"),
        "drop": {},              # only ever a top: plain, as pycaffe leaves it
        IP: layer_style("#CC33FF"),
        "ip": BLOB,
        LOSS: layer_style("#6495ED"),
        "loss": {},
    }
    assert edges == [(s, d, {"label": label}) for s, d, label in [
        (DATA, "data", ""), (DATA, "label", ""),
        ("data", CONV1, ""), (CONV1, "conv1", "20"),  # a conv's tops: its num_output
        ("conv1", RELU1, ""), (RELU1, "conv1", ""),
        ("conv1", POOL1, ""), (POOL1, "pool1", ""),
        ("pool1", DROP, ""), (DROP, "drop", ""),
        ("pool1", IP, ""), (IP, "ip", "10"),
        ("ip", LOSS, ""), ("label", LOSS, ""), (LOSS, "loss", ""),
    ]]


def test_phase_filter_keeps_the_phases_layers():
    _, _, test_nodes, test_edges = read_dot(
        draw.get_pydot_graph(net_param(), "LR", phase=caffe.TEST).to_string())
    assert DROP not in test_nodes and "drop" not in test_nodes and IP in test_nodes
    _, _, train_nodes, _ = read_dot(
        draw.get_pydot_graph(net_param(), "LR", phase=caffe.TRAIN).to_string())
    assert DROP in train_nodes and IP not in train_nodes and "ip" in train_nodes
    assert ("pool1", IP, {"label": ""}) in test_edges


def test_both_include_and_exclude_is_an_error():
    net = net_param()
    net.layer[1].include.add(phase=caffe.TRAIN)
    net.layer[1].exclude.add(phase=caffe.TEST)
    with pytest.raises(BpinspectError, match="'conv1' has both include and exclude"):
        draw.get_pydot_graph(net, "LR", phase=caffe.TEST)


def test_vertical_layout_lrm_and_unlabelled_edges():
    graph = draw.get_pydot_graph(net_param(), "TB", label_edges=False, display_lrm=True)
    _, attrs, nodes, edges = read_dot(graph.to_string())
    assert attrs == {"rankdir": "TB"}
    assert "conv1 (Convolution) kernel size: 5 stride: 2 pad: 1 lr mult: 1.0, 2.0" in nodes
    assert "ip (InnerProduct) lr mult: 1.0, 1.0" in nodes
    assert {e[2]["label"] for e in edges} == {""}


def test_names_that_dot_would_misread_are_quoted():
    net = net_param()
    net.layer[0].top[1] = 'lab"el/1'
    net.layer[-1].bottom[1] = 'lab"el/1'
    net.layer[0].top[0] = "node"  # a DOT keyword
    net.layer[1].bottom[0] = "node"
    _, _, nodes, _ = read_dot(draw.get_pydot_graph(net, "LR").to_string())
    assert 'lab"el/1' in nodes and "node" in nodes


def test_draw_net_to_file_writes_dot_text(tmp_path):
    for ext in ("dot", "gv", "raw"):
        path = tmp_path / f"net.{ext}"
        draw.draw_net_to_file(net_param(), str(path), "BT", phase=caffe.TEST)
        name, attrs, nodes, _ = read_dot(path.read_text())
        assert attrs == {"rankdir": "BT"} and "data (Input)" in nodes


def fake_dot(tmp_path, script):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text("#!/bin/sh\n" + script)
    dot.chmod(dot.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_an_image_format_runs_graphviz_on_the_dot_text(tmp_path, monkeypatch):
    bin_dir = fake_dot(tmp_path, f'echo "$@" > {tmp_path}/args\ncat > {tmp_path}/stdin\n'
                                 "printf 'PNG BYTES'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # ours first; cat from there
    out = tmp_path / "net.png"
    draw.draw_net_to_file(net_param(), str(out))
    assert out.read_bytes() == b"PNG BYTES"
    assert (tmp_path / "args").read_text().split() == ["-Tpng"]
    assert read_dot((tmp_path / "stdin").read_text())[2][CONV1] == layer_style("#FF5050")
    assert draw.draw_net(net_param(), "LR", ext="svg") == b"PNG BYTES"
    assert (tmp_path / "args").read_text().split() == ["-Tsvg"]


def test_graphviz_failing_is_one_line(tmp_path, monkeypatch):
    bin_dir = fake_dot(tmp_path, "echo 'Format: \"xyz\" not recognized.' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BpinspectError, match='dot -Txyz failed: Format: "xyz" not recognized'):
        draw.draw_net_to_file(net_param(), str(tmp_path / "net.xyz"))


def test_no_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    with pytest.raises(BpinspectError, match="drawing a net as png needs Graphviz"):
        draw.draw_net_to_file(net_param(), str(tmp_path / "net.png"))
    assert not (tmp_path / "net.png").exists()
    with pytest.raises(BpinspectError, match="no extension"):
        draw.draw_net_to_file(net_param(), str(tmp_path / "net"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_real_graphviz_reads_the_dot_text(tmp_path):
    out = tmp_path / "net.svg"
    draw.draw_net_to_file(net_param(), str(out), "TB", display_lrm=True)
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "conv1 (Convolution) kernel size: 5 stride: 2 pad: 1 lr mult: 1.0, 2.0" in svg
    png = draw.draw_net(net_param(), "LR", ext="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_caffe_draw_is_a_submodule():
    import importlib

    assert importlib.import_module("bpinspect.caffe.draw") is caffe.draw
