"""Layer classes keyed by Caffe's type string (Caffe's layer_factory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from bpinspect.errors import BpinspectError

if TYPE_CHECKING:
    from bpinspect.layers.base import Layer

_REGISTRY: dict[str, type[Layer]] = {}

# Layers that read a database, files or arrays at run time. Their tops can be fed
# instead (--input NAME=FILE), and then their source is not opened (for a Python
# layer without bottoms, a user's data layer: its module is not imported).
DATA_SOURCE_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "WindowData", "MemoryData",
                               "Python"})

# Types bpinspect does not run, and why; the hint says what to do instead.
_UNSUPPORTED = {
    "WindowData": "it reads R-CNN window files (images with boxes, cropped and warped "
                  "with OpenCV), which bpinspect does not; feed its tops with --input",
}

L = TypeVar("L", bound="type[Layer]")


def register(type_name: str) -> Callable[[L], L]:
    """Class decorator: ``@register("ReLU")``. A type registers once."""

    def decorate(cls: L) -> L:
        if type_name in _REGISTRY:
            raise ValueError(f"layer type {type_name!r} registered twice")
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls

    return decorate


def _load_families() -> None:
    # Importing the family modules runs their @register decorators.
    from bpinspect.layers import _families, python_layer  # noqa: F401


def supported_types() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def layer_class(type_name: str, layer_name: str = "?") -> type[Layer]:
    """The class for a Caffe type, or a one-line error naming layer and type."""
    _load_families()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        hint = f"; {_UNSUPPORTED[type_name]}" if type_name in _UNSUPPORTED else ""
        raise BpinspectError(
            f"layer {layer_name!r}: layer type {type_name!r} is not supported{hint} "
            f"(supported: {', '.join(sorted(_REGISTRY))})"
        ) from None
