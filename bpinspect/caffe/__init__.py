"""pycaffe's public API over bpinspect, for scripts written for pycaffe::

    import bpinspect.caffe as caffe

    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    out = net.forward(data=batch)

``Net`` (``bpinspect.caffe.net``), the solvers and ``get_solver``
(``bpinspect.caffe.solver``), ``io`` (``bpinspect.caffe.io``),
``proto.caffe_pb2``, ``NetSpec`` / ``layers`` / ``params`` / ``to_proto``
(``bpinspect.caffe.net_spec``), ``Classifier``, ``Layer`` (the base class
of Python layers), ``TRAIN`` and ``TEST``, ``set_mode_cpu`` /
``set_mode_gpu`` / ``set_device`` / ``set_random_seed`` and
``layer_type_list``. A Python layer's module that
does ``import caffe`` gets this package when no Caffe is installed
(``bpinspect.layers.python_layer``). Nothing else in bpinspect imports it.
"""

from __future__ import annotations

from bpinspect.caffe import io, proto
from bpinspect.caffe._mode import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from bpinspect.caffe.classifier import Classifier
from bpinspect.caffe.net import Net
from bpinspect.caffe.net_spec import NetSpec, layers, params, to_proto
from bpinspect.caffe.solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)
from bpinspect.layers.python_layer import TEST, TRAIN, Layer

__all__ = [
    "TEST",
    "TRAIN",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Classifier",
    "Layer",
    "NesterovSolver",
    "Net",
    "NetSpec",
    "RMSPropSolver",
    "SGDSolver",
    "get_solver",
    "init_log",
    "io",
    "layer_type_list",
    "layers",
    "log",
    "params",
    "proto",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_random_seed",
    "to_proto",
]

__version__ = "1.0.0"  # the pycaffe version these names follow


def layer_type_list() -> list[str]:
    """The layer types bpinspect runs (Caffe's LayerRegistry::LayerTypeList)."""
    from bpinspect.layers.registry import supported_types

    return supported_types()


def init_log(*args: object) -> None:
    """pycaffe's glog set-up: nothing to do (bpinspect keeps notes on each Net)."""


def log(message: str) -> None:
    """pycaffe's LOG(INFO): written to standard error."""
    import sys

    print(message, file=sys.stderr)
