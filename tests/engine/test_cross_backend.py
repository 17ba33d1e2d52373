"""The GPU (CuPy) and the CPU (NumPy) give the same CaffeNet, blob by blob."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpinspect import backend
from bpinspect.engine.net import Net

CAFFENET = Path(__file__).resolve().parents[2] / "nets" / "caffenet.prototxt"

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    if backend._cupy() is None or backend.gpu_count() == 0:
        pytest.skip("needs CuPy and a GPU")
    return backend.select_device("gpu")


def _run(device) -> Net:
    # float64 on both sides: in float32 a ReLU input or a max-pooling tie within
    # rounding of each other can fall differently on the two backends and route
    # a gradient elsewhere, which is not a disagreement of the math.
    net = Net(CAFFENET, device=device, seed=0, dtype=np.float64)
    net.blobs["data"].reshape((2, 3, 227, 227))
    net.reshape()
    image = np.random.default_rng(7).standard_normal((2, 3, 227, 227)) * 50
    net.forward(data=image)
    onehot = np.zeros((2, 1000))
    onehot[:, 281] = 1
    net.backward(fc8=onehot)
    return net


def test_caffenet_forward_and_onehot_backward_agree(gpu):
    cpu_net, gpu_net = _run(backend.CPU), _run(gpu)
    for name, blob in cpu_net.blobs.items():
        for kind in ("data", "diff"):
            want = getattr(blob, kind)
            got = backend.to_host(getattr(gpu_net.blobs[name], kind))
            scale = max(float(np.abs(want).max()), 1e-30)
            # Sums in a different order: agree to rounding, relative to the blob's scale.
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * scale,
                                       err_msg=f"{name}.{kind}")
    for layer, blobs in cpu_net.params.items():
        for i, blob in enumerate(blobs):
            got = backend.to_host(gpu_net.params[layer][i].diff)
            scale = max(float(np.abs(blob.diff).max()), 1e-30)
            np.testing.assert_allclose(got, blob.diff, rtol=0, atol=1e-10 * scale,
                                       err_msg=f"{layer} param {i} diff")
    assert float(np.abs(cpu_net.blobs["data"].diff).max()) > 0
