"""Small nets for the session tests, built from prototxt text."""

from __future__ import annotations

from pathlib import Path

import pytest

NETS = Path(__file__).resolve().parents[2] / "nets"


def _make_net(text: str, **kwargs):
    from bpinspect.engine.net import Net
    from bpinspect.io.prototxt import parse_net

    return Net(parse_net(text), **kwargs)


@pytest.fixture
def make_net():
    """``make_net(prototxt_text, **Net_kwargs)``."""
    return _make_net


# conv -> in-place ReLU -> MAX pool -> LRN -> AVE pool -> ip: nets/lrn_pool.prototxt
@pytest.fixture
def lrn_pool_net():
    from bpinspect.engine.net import Net

    return Net(NETS / "lrn_pool.prototxt")


# Overflow on purpose: x*x*... in float32 goes to Inf at "cube", and Inf - Inf is NaN at "diff".
OVERFLOW_NET = """
name: "Overflow"
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "square" type: "Eltwise" bottom: "data" bottom: "data" top: "square"
        eltwise_param { operation: PROD } }
layer { name: "cube" type: "Eltwise" bottom: "square" bottom: "data" top: "cube"
        eltwise_param { operation: PROD } }
layer { name: "diff" type: "Eltwise" bottom: "cube" bottom: "cube" top: "zero"
        eltwise_param { operation: SUM coeff: 1 coeff: -1 } }
layer { name: "ip" type: "InnerProduct" bottom: "zero" top: "ip"
        inner_product_param { num_output: 3 } }
"""

# A blob read twice (Caffe inserts a Split), a Concat, a Dropout, and a loss after the
# point where a diff is injected (ip): its backward is skipped then.
BRANCHY_NET = """
name: "Branchy"
force_backward: true
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 } } }
layer { name: "conv/a" type: "Convolution" bottom: "data" top: "a/1x1"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "cat" type: "Concat" bottom: "a/1x1" bottom: "a/1x1" top: "cat"
        concat_param { axis: 1 } }
layer { name: "drop" type: "Dropout" bottom: "cat" top: "cat"
        dropout_param { dropout_ratio: 0.5 } }
layer { name: "ip" type: "InnerProduct" bottom: "cat" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def overflow_net():
    return _make_net(OVERFLOW_NET)


@pytest.fixture
def branchy_net():
    return _make_net(BRANCHY_NET, phase="train")
