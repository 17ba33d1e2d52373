"""Imports every layer family so that its @register decorators run."""

from bpinspect.layers import (  # noqa: F401
    concat,
    conv,
    data,
    db_data,
    eltwise,
    hdf5_data,
    image_data,
    inner_product,
    loss,
    lrn,
    memory_data,
    neuron,
    normalization,
    pooling,
    shape,
    softmax,
)
