"""pycaffe's ``caffe.draw`` (``python/caffe/draw.py``): a NetParameter as a Graphviz
graph, drawn as pycaffe draws it, without pydot: the DOT text is written here.

Layers are record nodes labelled with their name, type and (Convolution,
Deconvolution, Pooling) kernel size, stride and pad, coloured by type; an
in-place layer (one bottom, the same top) is a green neuron node; blobs are
grey octagons (a blob that a layer only writes last is left plain, as pycaffe
leaves it). Edges run bottom blob -> layer -> top blob, the layer's edges to
its tops labelled with its output count (Convolution, InnerProduct) or batch
size (Data). ``draw_net_to_file`` writes the DOT text for ``.dot``, ``.gv`` and
``.raw``, and runs Graphviz's ``dot`` for any other extension (png, svg, pdf).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

__all__ = ["DotGraph", "choose_color_by_layertype", "draw_net", "draw_net_to_file",
           "get_edge_label", "get_layer_label", "get_layer_lr_mult", "get_pooling_types_dict",
           "get_pydot_graph"]

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

TEXT_FORMATS = ("dot", "gv", "raw")  # written as DOT text, no Graphviz needed

_PLAIN_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}  # quoted as names


def dot_id(text: str) -> str:
    """``text`` as a DOT identifier: as it is when plain or already double-quoted (the
    layer labels, whose ``\\n`` are DOT's line breaks), else quoted."""
    if (_PLAIN_ID.fullmatch(text) and text.lower() not in _KEYWORDS) or \
            (len(text) >= 2 and text[0] == text[-1] == '"'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DotGraph:
    """What pycaffe's ``get_pydot_graph`` returns, in the part of pydot's ``Dot``
    that scripts use: ``to_string()``, ``create(format)``, ``write(path, format)``,
    and the nodes (id -> attributes) and edges ((source, destination, attributes))."""

    def __init__(self, name: str, rankdir: str) -> None:
        self.name = name
        self.attributes = {"rankdir": rankdir}
        self.nodes: dict[str, dict[str, str]] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []

    def to_string(self) -> str:
        def attrs(values: dict[str, str]) -> str:
            if not values:
                return ""
            return " [" + ", ".join(f"{k}={dot_id(v)}" for k, v in values.items()) + "]"

        lines = [f"digraph {dot_id(self.name)} {{"]
        lines += [f"{key}={dot_id(value)};" for key, value in self.attributes.items()]
        lines += [f"{dot_id(node)}{attrs(values)};" for node, values in self.nodes.items()]
        lines += [f"{dot_id(src)} -> {dot_id(dst)}{attrs(values)};"
                  for src, dst, values in self.edges]
        return "\n".join(lines) + "\n}\n"

    def create(self, format: str = "png", prog: str = "dot") -> bytes:  # noqa: A002 (pydot's name)
        """The graph drawn by Graphviz (``dot -T<format>``), or its DOT text for the
        text formats."""
        if format in TEXT_FORMATS:
            return self.to_string().encode()
        program = shutil.which(prog)
        if program is None:
            raise BpinspectError(f"drawing a net as {format} needs Graphviz ({prog!r} is not "
                                 "on PATH: install graphviz), or write .dot/.gv/.raw text")
        done = subprocess.run([program, f"-T{format}"], input=self.to_string().encode(),
                              capture_output=True, check=False)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise BpinspectError(f"Graphviz's {prog} -T{format} failed: "
                                 f"{reason[0] if reason else f'exit code {done.returncode}'}")
        return done.stdout

    def write(self, path: Any, format: str = "raw", prog: str = "dot") -> None:  # noqa: A002
        data = self.create(format=format, prog=prog)
        with open(path, "wb") as out:
            out.write(data)


def get_pooling_types_dict() -> dict[int, str]:
    """Pooling method number -> name (0 -> MAX)."""
    values = caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name
    return {v.number: name for name, v in values.items()}


def get_edge_label(layer: Any) -> str:
    """The label of a layer's edges to its tops: what it outputs, or ``""``."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer: Any) -> tuple[float, float]:
    """The weights' and biases' ``lr_mult`` of a Convolution, Deconvolution or
    InnerProduct layer (1 where a ``param`` is not given)."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise BpinspectError(f"{layer.type} layers do not have a learning rate multiplier")
    specs = list(layer.param)
    if len(specs) > 2:
        raise BpinspectError(f"layer {layer.name!r}: {len(specs)} param specs, expected "
                             "at most 2 (weights, biases)")
    mults = [spec.lr_mult for spec in specs] + [1.0] * (2 - len(specs))
    return mults[0], mults[1]


def get_layer_label(layer: Any, rankdir: str, display_lrm: bool = False) -> str:
    """The node label of a layer, double-quoted: name, (type), the spatial parameters,
    with ``display_lrm`` the lr multipliers; on separate lines for a horizontal
    layout (LR), separated by spaces for a vertical one (TB, BT)."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        if layer.type == "Pooling":
            p = layer.pooling_param
            kernel, stride, pad = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            pad = p.pad[0] if len(p.pad) else 0
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}",
                                     f"pad: {pad}"]))
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        weights, biases = get_layer_lr_mult(layer)
        if weights or biases:
            parts.append(f"lr mult: {weights:.1f}, {biases:.1f}")
    return '"' + separator.join(parts) + '"'  # quoted: a colon would not parse bare


def choose_color_by_layertype(layertype: str) -> str:
    return {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
            "InnerProduct": "#CC33FF"}.get(layertype, "#6495ED")


def _in_phase(layer: Any, phase: int) -> bool:
    """pycaffe's phase filter: the include rules' phases, then the exclude rules'."""
    if len(layer.include) and len(layer.exclude):
        raise BpinspectError(f"layer {layer.name!r} has both include and exclude specified")
    included = len(layer.include) == 0 or any(rule.phase == phase for rule in layer.include)
    return included and not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net: Any, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> DotGraph:
    """The graph of ``caffe_net`` (a NetParameter); ``phase`` (``caffe.TRAIN`` or
    ``caffe.TEST``) keeps that phase's layers, None every layer."""
    graph = DotGraph(caffe_net.name or "Net", rankdir)
    layer_nodes: dict[str, str] = {}  # name_type -> node id (its label), as pycaffe keys
    for layer in caffe_net.layer:
        if phase is not None and not _in_phase(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        key = f"{layer.name}_{layer.type}"
        layer_nodes[key] = label
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        style = dict(NEURON_LAYER_STYLE) if in_place else \
            dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
        graph.nodes[label] = style
        for bottom in layer.bottom:
            graph.nodes[bottom] = dict(BLOB_STYLE)
            graph.edges.append((bottom, label, {"label": '""'}))
        for top in layer.top:
            graph.nodes[top] = {}  # the last mention of a blob gives its style, as pycaffe
            graph.edges.append((label, top, {"label": get_edge_label(layer) if label_edges
                                             else '""'}))
    return graph


def draw_net(caffe_net: Any, rankdir: str, ext: str = "png", phase: int | None = None,
             display_lrm: bool = False) -> bytes:
    """The drawing of ``caffe_net`` in format ``ext`` (DOT text for dot/gv/raw)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase,
                           display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net: Any, filename: Any, rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Write the drawing of ``caffe_net`` to ``filename``, in the format its extension
    names; ``.raw`` (or ``.dot``, ``.gv``) for the DOT text to feed Graphviz yourself."""
    filename = os.fspath(filename)
    ext = filename[filename.rfind(".") + 1:] if "." in os.path.basename(filename) else ""
    if not ext:
        raise BpinspectError(f"draw_net_to_file {filename}: no extension to say the format "
                             "(.png, .svg, .pdf, or .dot for the DOT text)")
    data = draw_net(caffe_net, rankdir, ext.lower(), phase, display_lrm)
    with open(filename, "wb") as out:
        out.write(data)
