"""Every demo net in nets/ loads, runs forward and backward, and says what it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.net import Net

NETS_DIR = Path(__file__).resolve().parents[2] / "nets"
NETS = sorted(p for p in NETS_DIR.glob("*.prototxt") if "_solver" not in p.stem)


def test_the_demo_nets_are_there() -> None:
    names = {p.name for p in NETS}
    assert {"caffenet.prototxt", "concat.prototxt", "lrn_pool.prototxt",
            "train_softmax.prototxt"} <= names


@pytest.mark.parametrize("path", NETS, ids=[p.stem for p in NETS])
def test_net_has_a_comment_header(path: Path) -> None:
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, f"{path.name} must start with a comment saying what it shows"


@pytest.mark.parametrize("phase", ["train", "test"])
@pytest.mark.parametrize("path", NETS, ids=[p.stem for p in NETS])
def test_net_runs_forward_and_backward(path: Path, phase: str, monkeypatch) -> None:
    monkeypatch.chdir(NETS_DIR.parent)  # data sources are relative to the repository root
    net = Net(path, phase=phase)
    rng = np.random.default_rng(0)
    inputs = {name: rng.standard_normal(net.blobs[name].shape) for name in net.inputs}
    outputs = net.forward(**inputs)
    for name, value in outputs.items():
        assert np.isfinite(to_host(value)).all(), name
    if net.loss_weights:
        assert np.isfinite(net.loss)
        net.backward()
    else:
        first = net.outputs[0]
        net.backward(**{first: np.ones(net.blobs[first].shape)})
    for name, blob in net.blobs.items():
        assert np.isfinite(to_host(blob.diff)).all(), name
    for name in net.inputs:
        # An input a layer takes no gradient for (an LSTM's cont) keeps a zero diff.
        wanted = any(need for layer, needs in zip(net.layer_names, net.bottom_need_backward,
                                                  strict=True)
                     for bottom, need in zip(net.bottom_names[layer], needs, strict=True)
                     if bottom == name)
        if net.force_backward and wanted:
            assert to_host(net.blobs[name].diff).any(), name
    for name, blobs in net.params.items():
        if net.layer_need_backward[net.layer_index(name)]:
            assert any(to_host(b.diff).any() for b in blobs), name


def test_train_softmax_phases() -> None:
    train = Net(NETS_DIR / "train_softmax.prototxt", phase="train")
    test = Net(NETS_DIR / "train_softmax.prototxt", phase="test")
    assert train.blobs["data"].shape == (4, 3, 8, 8)
    assert test.blobs["data"].shape == (2, 3, 8, 8)
    assert "prob" not in train.layer_names
    assert "prob" in test.layer_names
    assert train.outputs == ["loss"]
    assert test.outputs == ["loss", "prob"]
    assert train.layer_names.count("data") == test.layer_names.count("data") == 1
    assert train.layers[train.layer_index("drop1")].phase == "train"
    assert test.layers[test.layer_index("drop1")].phase == "test"
    # Labels are valid class indices.
    train.forward()
    assert set(np.unique(to_host(train.blobs["label"].data))) == {3.0}
    assert not any("MSRA" in note for note in train.notes)  # every param has a filler
