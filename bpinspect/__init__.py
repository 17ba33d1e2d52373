"""bpinspect: a terminal debugger for backpropagation in Caffe nets."""

from __future__ import annotations

from bpinspect.errors import BpinspectError

__all__ = ["BpinspectError", "Net", "TEST", "TRAIN"]
__version__ = "0.1.0"

TRAIN = "train"
TEST = "test"


def __getattr__(name: str):  # lazy: importing bpinspect must not pull in the engine
    if name == "Net":
        from bpinspect.engine.net import Net

        return Net
    raise AttributeError(name)
