"""Imports every layer family so that its @register decorators run."""

from bpinspect.layers import (  # noqa: F401
    concat,
    conv,
    data,
    eltwise,
    inner_product,
    loss,
    lrn,
    neuron,
    normalization,
    pooling,
    shape,
    softmax,
)
