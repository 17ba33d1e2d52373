"""Net(progress=...): what a long load reports while it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpinspect.engine.net import Net
from bpinspect.io import prototxt

NETS = Path(__file__).resolve().parents[2] / "nets"


def test_filling_reports_each_layer_with_params_in_order() -> None:
    calls = []
    net = Net(NETS / "lrn_pool.prototxt", progress=lambda *a: calls.append(a))
    with_params = [layer.name for layer in net.layers if net.params.get(layer.name)]
    assert [c[0] for c in calls] == [f"filling the params of {n}" for n in with_params]
    assert [c[1:] for c in calls] == [(k, len(with_params)) for k in range(len(with_params))]


def test_weights_report_reading_decoding_and_copying(tmp_path, monkeypatch) -> None:
    source = Net(NETS / "lrn_pool.prototxt", seed=3)
    weights = tmp_path / "w.caffemodel"
    source.save(weights)
    monkeypatch.setattr(prototxt, "READ_CHUNK", 1 << 10)  # several chunks of a small file
    calls = []
    net = Net(NETS / "lrn_pool.prototxt", weights=weights, progress=lambda *a: calls.append(a))
    reading = [c for c in calls if c[0].startswith("reading ")]
    assert len(reading) > 2 and reading[0][1] == 0
    assert [c[1] for c in reading] == sorted(c[1] for c in reading)
    assert weights.stat().st_size < 1 << 20  # counts as 1 MB: the bar still fills
    assert reading[-1][1:] == (1, 1) and reading[-2][1:] == (0, 1)
    stages = [c[0].split()[0] for c in calls]
    assert stages.index("decoding") > stages.index("reading")
    assert stages.index("copying") > stages.index("filling")
    for name, blobs in source.params.items():  # the reading in chunks lost nothing
        for a, b in zip(blobs, net.params[name], strict=True):
            np.testing.assert_array_equal(a.data, b.data)


def test_chunked_read_gives_the_same_bytes(tmp_path, monkeypatch) -> None:
    path = tmp_path / "blob.bin"
    payload = np.random.default_rng(0).bytes(10_000)
    path.write_bytes(payload)
    monkeypatch.setattr(prototxt, "READ_CHUNK", 999)
    seen = []
    assert prototxt.read_bytes(path, lambda done, size: seen.append((done, size))) == payload
    assert seen[0] == (0, 10_000) and seen[-1] == (10_000, 10_000) and len(seen) == 12
