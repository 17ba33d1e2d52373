"""Top-diff specs: every form, and the errors a user sees for bad ones."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.session.diffspec import parse_assignment, parse_spec


def test_onehot_every_item():
    d = parse_spec("onehot:281").build((2, 1000), blob="fc8")
    assert d.dtype == np.float32 and d.shape == (2, 1000)
    expected = np.zeros((2, 1000), np.float32)
    expected[:, 281] = 1
    np.testing.assert_array_equal(d, expected)


def test_onehot_one_item_and_spatial_plane():
    d = parse_spec("onehot:2@1").build((3, 4, 2, 2))
    assert d.sum() == 4  # the whole 2x2 plane of channel 2 of item 1
    assert (d[1, 2] == 1).all()
    assert d[0].sum() == 0 and d[2].sum() == 0


def test_ones_zeros_const():
    np.testing.assert_array_equal(parse_spec("ones").build((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(parse_spec("zeros").build((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(parse_spec("const:0.5").build((4,)), np.full(4, 0.5))
    np.testing.assert_array_equal(parse_spec("const:-1e-3").build((1,)), np.float32([-1e-3]))
    assert parse_spec(" ones ").kind == "ones"


def test_randn_is_seeded_and_scaled():
    a = parse_spec("randn:seed=3,scale=2").build((1000,))
    b = parse_spec("randn:scale=2,seed=3").build((1000,))
    c = parse_spec("randn:seed=4,scale=2").build((1000,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    expected = np.random.default_rng(3).standard_normal(1000) * 2
    np.testing.assert_allclose(a, expected.astype(np.float32))
    assert parse_spec("randn").seed == 0 and parse_spec("randn").scale == 1.0


def test_npy(tmp_path):
    good = np.arange(6, dtype=np.float64).reshape(2, 3)
    np.save(tmp_path / "g.npy", good)
    d = parse_spec(f"npy:{tmp_path / 'g.npy'}").build((2, 3), blob="x")
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, good)


@pytest.mark.parametrize(
    "spec",
    ["", "one", "onehot", "onehot:", "onehot:-1", "onehot:1.5", "onehot:3@", "const:",
     "const:abc", "const:nan", "const:1;import os", "randn:seed=1.5", "randn:foo=1",
     "randn:seed=1,seed=2", "randn:seed=0,", "npy:", "__import__('os')", "ones()"],
)
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(BpinspectError) as err:
        parse_spec(spec)
    assert "\n" not in str(err.value)
    assert "spec" in str(err.value)


def test_onehot_out_of_range_names_blob_and_shape():
    with pytest.raises(BpinspectError, match=r"class 1000 is out of range for blob fc8 "):
        parse_spec("onehot:1000").build((1, 1000), blob="fc8")
    with pytest.raises(BpinspectError, match="item 2 is out of range"):
        parse_spec("onehot:0@2").build((2, 10), blob="fc8")
    with pytest.raises(BpinspectError, match="channel axis"):
        parse_spec("onehot:0").build((5,), blob="loss")


def test_npy_errors(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((3, 2)))
    with pytest.raises(BpinspectError, match=r"has shape \(3, 2\), the blob has \(2, 3\)"):
        parse_spec(f"npy:{tmp_path / 'w.npy'}").build((2, 3), blob="x")
    with pytest.raises(BpinspectError, match="no such file"):
        parse_spec(f"npy:{tmp_path / 'missing.npy'}").build((2, 3), blob="x")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(BpinspectError, match="cannot read"):
        parse_spec(f"npy:{tmp_path / 'junk.npy'}").build((2, 3), blob="x")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BpinspectError):  # pickles are never loaded
        parse_spec(f"npy:{tmp_path / 'obj.npy'}").build((1,), blob="x")


def test_assignment():
    blob, spec = parse_assignment("fc8=onehot:281")
    assert blob == "fc8" and spec.kind == "onehot" and spec.channel == 281
    blob, spec = parse_assignment("inception_3a/1x1=const:2")
    assert blob == "inception_3a/1x1" and spec.value == 2
    for bad in ("fc8", "=ones", "fc8=bogus"):
        with pytest.raises(BpinspectError):
            parse_assignment(bad)
