"""Memory planned before it is allocated (engine/memory.py): the figures from the shapes
alone, the one-line refusal, the limits (--max-memory, the machine, the GPU)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from bpinspect.engine import memory
from bpinspect.engine import net as net_module
from bpinspect.engine.memory import format_bytes, limits, parse_size
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net

NETS = Path(__file__).resolve().parents[2] / "nets"


def make(text: str, **kwargs) -> Net:
    return Net(parse_net(text, "<test>"), **kwargs)


def input_layer(*dims: int, name: str = "data") -> str:
    shape = " ".join(f"dim: {d}" for d in dims)
    return (f'layer {{ name: "{name}" type: "Input" top: "{name}" '
            f'input_param {{ shape {{ {shape} }} }} }}\n')


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("100000", 100000),
    ("4g", 4 << 30), ("4 GB", 4 << 30), ("2T", 2 << 40), ("64k", 64 << 10),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "0", "-1", "4X", "G", "1e3", "nan", "0.1"])
def test_parse_size_errors_name_the_option(text):
    with pytest.raises(BpinspectError, match="--max-memory"):
        parse_size(text)


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, 1023 << 10, 480 << 20, 10**12)] == [
        "0 B", "1023 B", "1 KiB", "1.5 KiB", "1023 KiB", "480 MiB", "931 GiB"]
    assert format_bytes(2**124).endswith("EiB")  # absurd sizes stay one short word


def test_lrn_pool_figures_by_hand():
    net = Net(NETS / "lrn_pool.prototxt")
    plan = net.memory
    # blobs: data 2x3x9x9, conv1 2x8x9x9 (relu1 in place: the same blob), pool1 and norm1
    # 2x8x4x4, pool2 2x8x3x3, ip 2x10; data and diff, float32
    assert plan.blobs == (486 + 1296 + 256 + 256 + 144 + 20) * 2 * 4
    # params: conv1 8x3x3x3 + 8, ip 10x72 + 10; data and diff
    assert plan.params == (216 + 8 + 720 + 10) * 2 * 4
    # conv1's col matrix: C kh kw x N Ho Wo = 27 x 162 floats (one chunk)
    assert plan.im2col == 27 * 162 * 4
    # Caffe's "Memory required for data" counts every top, relu1's in-place one too
    assert plan.caffe_data == (486 + 1296 + 1296 + 256 + 256 + 144 + 20) * 4
    assert plan.history == 0  # a Net made in a script keeps no history
    assert plan.total == plan.blobs + plan.params + plan.im2col
    assert plan.largest is not None and (plan.largest.name, plan.largest.layer) == (
        "conv1", "conv1")
    assert plan.summary().startswith(f"{format_bytes(plan.total)} of ")
    assert 'Caffe: "Memory required for data: 15016"' in plan.summary()


def test_history_budget_is_reserved_up_to_what_a_pass_records():
    with limits(history_budget=1 << 30):
        net = Net(NETS / "lrn_pool.prototxt")
    assert net.memory.history == net.memory.blobs + net.memory.params // 2
    with limits(history_budget=100):
        assert Net(NETS / "lrn_pool.prototxt").memory.history == 100


def test_shared_params_are_counted_once():
    ip = ('layer {{ name: "{0}" type: "InnerProduct" bottom: "data" top: "{0}" '
          'param {{ name: "w" }} param {{ name: "b" }} '
          'inner_product_param {{ num_output: 5 }} }}\n')
    net = make(input_layer(1, 3) + ip.format("a") + ip.format("b"))
    assert net.memory.params == (15 + 5) * 2 * 4


def test_a_huge_net_is_refused_before_anything_is_allocated(monkeypatch):
    def no_blobs(*args, **kwargs):
        raise AssertionError("a Blob was allocated before the memory was planned")

    monkeypatch.setattr(net_module, "Blob", no_blobs)
    text = input_layer(100000, 3, 1200, 1200) + (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        'convolution_param { num_output: 4 kernel_size: 3 } }\n')
    with limits(max_bytes=4 << 30), pytest.raises(BpinspectError) as e:
        make(text)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("<NetParameter>: needs 7.32 TiB of memory")
    assert "but only 4 GiB allowed (--max-memory)" in message
    assert "the largest blob is 'conv' of layer 'conv', shape (100000, 4, 1198, 1198)" in message


@pytest.mark.parametrize("dim", [2**31 - 1, 10**12, 2**62])
def test_absurd_dims_are_planned_in_python_ints(dim, monkeypatch):
    monkeypatch.setattr(memory, "_host_available", lambda: (64 << 30, "this machine"))
    with pytest.raises(BpinspectError) as e:
        make(input_layer(dim, dim, dim, dim) + 'layer { name: "r" type: "ReLU" '
             'bottom: "data" top: "r" }\n')
    assert "64 GiB free (this machine)" in str(e.value)
    assert f"shape ({dim}, {dim}, {dim}, {dim})" in str(e.value)
    assert "--max-memory sets the limit" in str(e.value)


def test_the_machine_limit_applies_without_max_memory(monkeypatch):
    monkeypatch.setattr(memory, "_host_available", lambda: (1 << 20, "this machine"))
    with pytest.raises(BpinspectError, match=r"but only 1 MiB free \(this machine\)"):
        make(input_layer(1, 1000, 1000))
    with limits(max_bytes=1 << 30):  # --max-memory decides instead
        assert make(input_layer(1, 1000, 1000)).memory.where == "--max-memory"


def test_the_gpu_limit_is_asked_of_the_backend(monkeypatch):
    from bpinspect import backend

    gpu = types.SimpleNamespace(is_gpu=True, name="GPU 0: Test (CuPy)")
    monkeypatch.setattr(backend, "gpu_free_memory", lambda device: 12345)
    assert memory.available_memory(gpu) == (12345, "GPU 0: Test (CuPy)")
    plan = memory.plan([("x", "l", (10, 10000))], [], 0, 4, 0, gpu, memory.Limits())
    assert not plan.fits and "12.1 KiB free (GPU 0: Test (CuPy))" in plan.error("net")


def test_gpu_free_memory_without_a_gpu_is_unknown():
    from bpinspect import backend

    assert backend.gpu_free_memory(backend.CPU) is None


def test_blobs_allocated_after_planning_keep_the_graph():
    net = Net(NETS / "lrn_pool.prototxt")
    relu = net.layer_index("relu1")
    assert net.bottom_blobs(relu)[0] is net.top_blobs(relu)[0] is net.blobs["conv1"]
    assert net.top_blobs(0)[0] is net.blobs["data"]
    assert all(isinstance(b.data, np.ndarray) for b in net.blobs.values())
    assert net.blobs["conv1"].shape == (2, 8, 9, 9)


def test_a_net_without_layers_is_an_error(tmp_path):
    with pytest.raises(BpinspectError, match="net 'empty': the net has no layers$"):
        make('name: "empty"')
    text = 'layer { name: "d" type: "Input" top: "d" include { phase: TRAIN } ' \
           'input_param { shape { dim: 1 } } }'
    with pytest.raises(BpinspectError, match="no layers in phase test"):
        make(text)
    (tmp_path / "empty.prototxt").write_text("# nothing here\n")
    with pytest.raises(BpinspectError, match="empty.prototxt: the net has no layers"):
        Net(tmp_path / "empty.prototxt")


def test_caffes_figure_for_the_reference_caffenet():
    # Caffe logs "Memory required for data: 68681400" for this deploy net (batch 10)
    net = Net(NETS.parent / "tests" / "data" / "bvlc" / "bvlc_reference_caffenet.deploy.prototxt")
    assert net.memory.caffe_data == 68681400
