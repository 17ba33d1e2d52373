"""bpinspect: a terminal debugger for backpropagation in Caffe nets."""

from __future__ import annotations

from bpinspect.errors import BpinspectError

__all__ = [
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "BpinspectError",
    "Net",
    "NesterovSolver",
    "RMSPropSolver",
    "SGDSolver",
    "TEST",
    "TRAIN",
    "get_solver",
]

__version__ = "0.1.0"

TRAIN = "train"
TEST = "test"


def __getattr__(name: str):  # lazy: importing bpinspect must not pull in the engine
    if name == "Net":
        from bpinspect.engine.net import Net

        return Net
    if name == "get_solver" or name.endswith("Solver") and name in __all__:
        from bpinspect.engine import solver

        return getattr(solver, name)
    raise AttributeError(name)
