"""pycaffe's public API over bpinspect, for scripts written for pycaffe::

    import bpinspect.caffe as caffe

    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    out = net.forward(data=batch)

``Net`` (``bpinspect.caffe.net``), the solvers and ``get_solver``
(``bpinspect.caffe.solver``), ``io`` (``bpinspect.caffe.io``),
``proto.caffe_pb2``, ``NetSpec`` / ``layers`` / ``params`` / ``to_proto``
(``bpinspect.caffe.net_spec``), ``Classifier``, ``Detector``, ``draw`` (a net as a
Graphviz graph), ``coord_map`` (``crop`` for NetSpec tops), ``Layer`` (the base class
of Python layers), ``TRAIN`` and ``TEST``, ``set_mode_cpu`` /
``set_mode_gpu`` / ``set_device`` / ``set_random_seed`` and
``layer_type_list``. A Python layer's module that
does ``import caffe`` gets this package when no Caffe is installed
(``bpinspect.layers.python_layer``). Nothing else in bpinspect imports it.
"""

from __future__ import annotations

from bpinspect.caffe import coord_map, draw, io, proto
from bpinspect.caffe._mode import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from bpinspect.caffe.classifier import Classifier
from bpinspect.caffe.detector import Detector
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
    "Timer",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Classifier",
    "Detector",
    "Layer",
    "NesterovSolver",
    "Net",
    "NetSpec",
    "RMSPropSolver",
    "SGDSolver",
    "coord_map",
    "draw",
    "get_solver",
    "has_nccl",
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
    "set_multiprocess",
    "set_random_seed",
    "set_solver_count",
    "set_solver_rank",
    "solver_count",
    "solver_rank",
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


def has_nccl() -> bool:
    """bpinspect runs one solver on one device: no NCCL."""
    return False


def solver_count() -> int:
    return 1


def set_solver_count(count: int) -> None:
    """Accepted and ignored: bpinspect runs one solver."""


def solver_rank() -> int:
    return 0


def set_solver_rank(rank: int) -> None:
    """Accepted and ignored: bpinspect runs one solver."""


def set_multiprocess(multiprocess: bool) -> None:
    """Accepted and ignored: bpinspect runs one solver."""


class Timer:
    """pycaffe's ``caffe.Timer``: wall-clock ``start``/``stop``, ``ms`` and ``seconds``."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._elapsed = 0.0

    def start(self) -> None:
        import time

        self._start = time.perf_counter()

    def stop(self) -> None:
        import time

        if self._start is not None:
            self._elapsed = time.perf_counter() - self._start
            self._start = None

    @property
    def seconds(self) -> float:
        return self._elapsed

    @property
    def ms(self) -> float:
        return self._elapsed * 1000.0
