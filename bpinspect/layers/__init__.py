"""Layers, one module per family, found through the registry by Caffe type."""

from bpinspect.layers.base import Layer
from bpinspect.layers.registry import layer_class, register, supported_types

__all__ = ["Layer", "layer_class", "register", "supported_types"]
