"""SPP: pyramid levels of 2^l x 2^l bins, pooled with Caffe's per-level kernel, pad
and stride, flattened and concatenated; forward by loops, gradients numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward
from ._util import distinct_values


def pool_plane(plane, k, p, method):
    """Caffe's pooling of one plane with kernel = stride = k and pad p (both axes alike
    per call: k and p are (h, w) pairs)."""
    h, w = plane.shape
    (kh, kw), (ph, pw) = k, p

    def out_size(size, kernel, pad):
        n = math.ceil((size + 2 * pad - kernel) / kernel) + 1
        if (ph or pw) and (n - 1) * kernel >= size + pad:
            n -= 1
        return n

    ho, wo = out_size(h, kh, ph), out_size(w, kw, pw)
    out = np.empty((ho, wo))
    for y in range(ho):
        for x in range(wo):
            y0, x0 = y * kh - ph, x * kw - pw
            y1, x1 = min(y0 + kh, h + ph), min(x0 + kw, w + pw)
            size = (y1 - y0) * (x1 - x0)
            window = plane[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
            out[y, x] = window.max() if method == "MAX" else window.sum() / size
    return out


def loop_spp(x, height, method):
    n, c, h, w = x.shape
    levels = []
    for level in range(height):
        bins = 2 ** level
        kh, kw = math.ceil(h / bins), math.ceil(w / bins)
        ph, pw = (kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2
        pooled = np.stack([np.stack([pool_plane(x[i, j], (kh, kw), (ph, pw), method)
                                     for j in range(c)]) for i in range(n)])
        levels.append(pooled)
    if height == 1:
        return levels[0]
    return np.concatenate([lv.reshape(n, -1) for lv in levels], axis=1)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize(("height", "hw"), [(1, (5, 4)), (2, (5, 7)), (3, (8, 8)), (3, (9, 11))])
def test_forward_and_gradient(xp, method, height, hw):
    text = f"spp_param {{ pyramid_height: {height} pool: {method} }}"
    shape = (2, 3) + hw
    x = distinct_values(shape)
    layer = make_layer("SPP", text)
    _, tops = run_forward(layer, xp, [x])
    expected = loop_spp(x, height, method)
    assert tops[0].shape == expected.shape
    np.testing.assert_allclose(to_host(tops[0].data), expected, rtol=1e-12)
    names = {f"level{lv}.{'argmax' if method == 'MAX' else 'pool_size'}" for lv in range(height)}
    assert set(layer.internals()) == names
    assert_passed(check_layer(make_layer("SPP", text), [xp.asarray(distinct_values(shape, 1))],
                              max_coords=80))


def test_level_too_fine_for_the_input():
    # 4 bins over 5 rows: kernel 2, pad 2 (not below the kernel), as Caffe refuses.
    with pytest.raises(BpinspectError, match="pyramid level 2"):
        make_layer("SPP", "spp_param { pyramid_height: 3 }").setup([(1, 1, 5, 5)])


def test_needs_four_axes():
    with pytest.raises(BpinspectError, match="4-D"):
        make_layer("SPP", "spp_param { pyramid_height: 2 }").setup([(1, 5, 5)])
