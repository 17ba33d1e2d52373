"""Im2col: each image's patch matrix as a (C * kh * kw, Ho, Wo) top; forward by the
indexing formula, element by element; gradient (col2im) by central differences."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session.gradcheck import check_layer

from ._harness import assert_passed, make_layer, run_forward

CASES = [
    # (convolution_param, (kh, kw, sh, sw, ph, pw, dh, dw))
    ("kernel_size: 3 pad: 1 stride: 2", (3, 3, 2, 2, 1, 1, 1, 1)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1 dilation: 2",
     (2, 3, 1, 2, 0, 1, 2, 2)),
    ("kernel_size: 1", (1, 1, 1, 1, 0, 0, 1, 1)),
    ("kernel_size: 2 stride: 3 force_nd_im2col: true", (2, 2, 3, 3, 0, 0, 1, 1)),
]


def loop_im2col(x, g):
    kh, kw, sh, sw, ph, pw, dh, dw = g
    n, c, h, w = x.shape
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((n, c * kh * kw, ho, wo))
    for b, ch, i, j, y, z in np.ndindex(n, c, kh, kw, ho, wo):
        row, col = y * sh - ph + i * dh, z * sw - pw + j * dw
        if 0 <= row < h and 0 <= col < w:
            out[b, (ch * kh + i) * kw + j, y, z] = x[b, ch, row, col]
    return out


@pytest.mark.parametrize(("text", "g"), CASES)
def test_forward_and_gradient(xp, text, g):
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7))
    layer_text = f"convolution_param {{ {text} }}"
    _, tops = run_forward(make_layer("Im2col", layer_text), xp, [x])
    expected = loop_im2col(x, g)
    assert tops[0].shape == expected.shape
    np.testing.assert_array_equal(to_host(tops[0].data), expected)
    y = xp.asarray(np.random.default_rng(1).standard_normal((2, 3, 6, 7)))
    assert_passed(check_layer(make_layer("Im2col", layer_text), [y], max_coords=120))


def test_only_two_spatial_axes():
    with pytest.raises(BpinspectError, match="4-D"):
        make_layer("Im2col", "convolution_param { kernel_size: 2 }").setup([(1, 2, 3, 4, 5)])
