"""Comparing two runs: arrays by hand, dumps that differ at a known layer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError
from bpinspect.session import compare as c
from bpinspect.session.dump import run_pass, write_final
from bpinspect.session.session import Session

from .conftest import NETS

LRN_POOL = NETS / "lrn_pool.prototxt"


# ---- arrays ------------------------------------------------------------------------------


def test_compare_arrays_by_hand(xp):
    a = xp.asarray([[1.0, -4.0], [2.0, 0.5]], dtype=xp.float32)
    b = xp.asarray([[1.0, -4.0], [2.5, 0.5]], dtype=xp.float32)
    r = c.compare_arrays(a, b, rtol=0.1)
    assert r.same_shape and r.shape_a == (2, 2)
    assert r.max_abs_diff == pytest.approx(0.5)
    assert r.max_abs_a == pytest.approx(4.0)
    assert r.rel_diff == pytest.approx(0.125)
    assert not r.agree  # 0.5 > 0.1 * 4
    assert c.compare_arrays(a, b, rtol=0.2).agree  # 0.5 <= 0.8
    assert c.compare_arrays(a, b, rtol=0.0, atol=0.5).agree
    assert c.compare_arrays(a, a, rtol=0.0).agree


def test_compare_arrays_chunks_give_the_maximum(monkeypatch):
    monkeypatch.setattr(c, "CHUNK", 7)
    a = np.arange(100, dtype=np.float64) - 50  # max |a| = 50 at the first element
    b = a.copy()
    b[93] += 3.0
    r = c.compare_arrays(a, b)
    assert r.max_abs_diff == 3.0 and r.max_abs_a == 50.0


def test_nonfinite_values_must_match():
    a = np.array([np.nan, np.inf, 1.0])
    assert c.compare_arrays(a, a.copy()).agree  # NaN at the same place, the same Inf
    b = np.array([np.nan, -np.inf, 1.0])
    r = c.compare_arrays(a, b)
    assert r.nonfinite_mismatch == 1 and r.max_abs_diff == 0.0 and not r.agree
    r = c.compare_arrays(a, np.array([0.0, np.inf, 1.0]))
    assert r.nonfinite_mismatch == 1 and not r.agree


def test_zero_reference_and_shapes():
    z = np.zeros(3)
    assert c.compare_arrays(z, z).rel_diff == 0.0
    r = c.compare_arrays(z, np.array([0.0, 1e-3, 0.0]))
    assert r.rel_diff == float("inf") and not r.agree
    assert c.compare_arrays(z, np.array([0.0, 1e-3, 0.0]), atol=1e-3).agree
    r = c.compare_arrays(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not r.same_shape and not r.agree


# ---- dumps -------------------------------------------------------------------------------


def _dump(tmp_path, name, **session_kwargs):
    from bpinspect.engine.net import Net

    session = Session(Net(LRN_POOL), history_budget=0, **session_kwargs)
    run_pass(session)
    d = tmp_path / name
    write_final(session, d)
    return d


@pytest.fixture
def two_dumps(tmp_path):
    inj = {"injections": {"ip": "onehot:3"}}
    return _dump(tmp_path, "a", **inj), _dump(tmp_path, "b", **inj)


def _perturb(path, index, delta):
    a = np.load(path).copy()
    a[index] += delta
    np.save(path, a)
    return a


def test_identical_dumps_agree(two_dumps):
    a, b = two_dumps
    r = c.compare_dumps(a, b, rtol=0.0)
    assert r.agree() and r.first is None and r.order_known
    files = sorted(p.name for p in a.glob("*.npy"))
    assert sorted(e.file for e in r.entries) == files
    assert all(e.status == c.AGREE for e in r.entries)


def test_a_perturbed_data_blob_is_named(two_dumps):
    a, b = two_dumps
    ref = np.load(a / "pool1.data.npy")
    _perturb(b / "pool1.data.npy", (1, 2, 3, 0), 0.5)
    r = c.compare_dumps(a, b)
    assert not r.agree()
    assert r.first is not None and r.first.layer == "pool1" and r.first.kind == "data"
    assert r.first_diff is None
    e = r.by_name()[("pool1", "data")]
    assert e.status == c.DIFFER
    assert e.result.max_abs_diff == pytest.approx(0.5, rel=1e-6)
    assert e.result.rel_diff == pytest.approx(0.5 / float(np.abs(ref).max()), rel=1e-6)
    assert [x.name for x in r.differing] == ["pool1"]
    # Within a loose enough tolerance, they agree.
    assert c.compare_dumps(a, b, rtol=1.0).agree()


def test_the_first_layer_in_forward_order(two_dumps):
    a, b = two_dumps
    for blob in ("norm1", "ip", "conv1"):  # conv1 is relu1's in-place top
        _perturb(b / f"{blob}.data.npy", (0, 0), 1.0)
    r = c.compare_dumps(a, b)
    assert r.first.layer == "relu1" and r.first.name == "conv1"
    assert [e.layer for e in r.differing] == ["relu1", "norm1", "ip"]


def test_a_param_differs_before_its_layers_top(two_dumps):
    a, b = two_dumps
    _perturb(b / "ip.param0.data.npy", (0, 0), 1.0)
    _perturb(b / "ip.data.npy", (0, 0), 1.0)
    r = c.compare_dumps(a, b)
    assert r.first.layer == "ip" and r.first.name == "ip#0" and r.first.kind == "data"


def test_a_perturbed_diff_names_the_layer_whose_backward_computed_it(two_dumps):
    a, b = two_dumps
    _perturb(b / "norm1.diff.npy", (0, 1, 2, 2), 1e-3)  # pool2's backward writes norm1.diff
    _perturb(b / "data.diff.npy", (0, 0, 0, 0), 1e-3)  # conv1's backward, later
    r = c.compare_dumps(a, b)
    assert r.first_data is None
    assert r.first.kind == "diff" and r.first.layer == "pool2" and r.first.name == "norm1"
    assert [e.name for e in r.differing] == ["norm1", "data"]


def test_missing_and_reshaped_arrays_are_reported(two_dumps):
    a, b = two_dumps
    (b / "pool2.diff.npy").unlink()
    np.save(a / "extra.data.npy", np.zeros(3, np.float32))
    np.save(b / "ip.param1.diff.npy", np.zeros(11, np.float32))
    r = c.compare_dumps(a, b)
    by = r.by_name()
    assert by[("pool2", "diff")].status == c.ONLY_A
    assert by[("extra", "data")].status == c.ONLY_A
    assert by[("ip#1", "diff")].status == c.SHAPE
    assert not r.agree() and not r.agree(ignore_missing=True)
    assert r.first.name == "ip#1" and r.first.kind == "diff"
    assert {e.name for e in r.missing} == {"pool2", "extra"}


def test_pycaffe_style_directory_with_a_net_for_the_order(two_dumps, tmp_path):
    a, _ = two_dumps
    p = tmp_path / "pycaffe"
    p.mkdir()
    for f in a.glob("*.npy"):  # no manifest: names only
        shutil.copy(f, p / f.name)
    _perturb(p / "norm1.data.npy", (0, 0, 0, 0), 1.0)
    d = c.read_dump(p)
    assert d.layers is None
    assert d.files["conv1.param0.data.npy"].name == "conv1#0"
    assert d.files["conv1.param0.data.npy"].layer == "conv1"
    r = c.compare_dumps(p, p)
    assert r.agree() and not r.order_known
    r = c.compare_dumps(p, a, layers=c.layers_of_prototxt(LRN_POOL), order_source="net")
    assert r.order_known and r.first.layer == "norm1"
    r = c.compare_dumps(p, a)  # A has no manifest: B's order
    assert r.order_known and r.first.layer == "norm1"


def test_percent_encoded_names_are_decoded(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    np.save(d / "inception_3a%2F1x1.data.npy", np.ones(2, np.float32))
    np.save(d / "inception_3a%2F1x1.param0.diff.npy", np.ones(2, np.float32))
    files = c.read_dump(d).files
    assert files["inception_3a%2F1x1.data.npy"].name == "inception_3a/1x1"
    assert files["inception_3a%2F1x1.param0.diff.npy"].name == "inception_3a/1x1#0"


def test_bad_input_names_the_file(tmp_path, two_dumps):
    a, b = two_dumps
    with pytest.raises(BpinspectError, match="no such directory"):
        c.read_dump(tmp_path / "nope")
    with pytest.raises(BpinspectError, match="not a directory"):
        c.read_dump(a / "manifest.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BpinspectError, match="holds no .npy"):
        c.read_dump(empty)
    (b / "pool1.data.npy").write_bytes(b"not an array")
    with pytest.raises(BpinspectError, match="pool1.data.npy"):
        c.compare_dumps(a, b)
    (b / "manifest.json").write_text("{")
    with pytest.raises(BpinspectError, match="manifest.json"):
        c.read_dump(b)
    (b / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(BpinspectError, match="not a bpinspect manifest"):
        c.read_dump(b)


# ---- a session against a dump ------------------------------------------------------------


def test_session_against_a_dump(two_dumps, xp):
    from bpinspect import backend
    from bpinspect.engine.net import Net

    a, b = two_dumps
    device = backend.CPU if xp is np else backend.select_device("gpu")
    session = Session(Net(LRN_POOL, device=device), injections={"ip": "onehot:3"})
    r = c.compare_session(session, a)
    by = r.by_name()
    assert by[("data", "data")].status == c.AGREE  # inputs and weights are there at once
    assert by[("conv1#0", "data")].status == c.AGREE
    assert by[("pool1", "data")].status == c.PENDING
    assert r.agree()
    while not session.at_end:
        session.step()
    # CPU vs GPU differ in rounding only.
    r = c.compare_session(session, a, rtol=1e-4 if xp is np else 1e-3)
    assert r.agree(), [(e.name, e.kind, e.result) for e in r.differing]
    _perturb(b / "pool2.data.npy", (0, 0, 0, 0), 1.0)
    r = c.compare_session(session, b, names=["pool2", "ip"])
    assert {e.name for e in r.entries} == {"pool2", "ip"}
    assert r.first.layer == "pool2"
    assert to_host(session.array("pool2")).shape == (2, 8, 3, 3)
