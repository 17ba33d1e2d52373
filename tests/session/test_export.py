"""Export: names, atomic writes, no silent overwrite, the manifest."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.io import files
from bpinspect.session import export
from bpinspect.session.export import (
    ExportItem,
    encode_name,
    export_items,
    final_file_name,
    step_file_name,
)


def _item(file="a.data.npy", blob="a", array=None, kind="data"):
    if array is None:
        array = np.arange(6, dtype=np.float32).reshape(2, 3)
    return ExportItem(file, array, blob, "layer", 3, "forward", kind)


def test_encode_name():
    assert encode_name("conv1") == "conv1"
    assert encode_name("inception_3a/1x1") == "inception_3a%2F1x1"
    assert encode_name("a b:c") == "a%20b%3Ac"
    assert encode_name("x.y-z_w") == "x.y-z_w"
    assert encode_name("%") == "%25"  # so decoding is unambiguous
    assert encode_name("é") == "%C3%A9"
    assert step_file_name(7, "forward", "relu1", "conv1", "data") == (
        "step0007-forward-relu1-conv1.data.npy"
    )
    assert final_file_name("pool5/7x7_s1", "diff") == "pool5%2F7x7_s1.diff.npy"


def test_export_writes_loadable_files_and_manifest(tmp_path):
    a = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    b = np.arange(4, dtype=np.float64)
    paths = export_items(tmp_path, [_item("a.data.npy", "a", a), _item("b.diff.npy", "b", b,
                                                                       "diff")])
    assert [p.name for p in paths] == ["a.data.npy", "b.diff.npy"]
    np.testing.assert_array_equal(np.load(paths[0], allow_pickle=False), a)
    np.testing.assert_array_equal(np.load(paths[1], allow_pickle=False), b)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "bpinspect-export"
    entries = {e["file"]: e for e in manifest["files"]}
    assert entries["a.data.npy"] == {"file": "a.data.npy", "blob": "a", "layer": "layer",
                                     "step": 3, "direction": "forward", "kind": "data",
                                     "shape": [2, 3], "dtype": "float32"}
    assert entries["b.diff.npy"]["kind"] == "diff" and entries["b.diff.npy"]["dtype"] == "float64"
    # No temporary file is left behind.
    assert sorted(os.listdir(tmp_path)) == ["a.data.npy", "b.diff.npy", "manifest.json"]


def test_scalar_keeps_its_shape(tmp_path):
    (path,) = export_items(tmp_path, [_item("loss.data.npy", "loss", np.float32(2.5))])
    loaded = np.load(path, allow_pickle=False)
    assert loaded.shape == () and loaded == 2.5
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"][0]["shape"] == []


def test_manifest_is_merged(tmp_path):
    export_items(tmp_path, [_item("a.data.npy")])
    export_items(tmp_path, [_item("b.data.npy", "b")])
    files = [e["file"] for e in json.loads((tmp_path / "manifest.json").read_text())["files"]]
    assert files == ["a.data.npy", "b.data.npy"]


def test_never_overwrites_silently(tmp_path):
    export_items(tmp_path, [_item("a.data.npy")])
    before = (tmp_path / "a.data.npy").read_bytes()
    with pytest.raises(BpinspectError, match="exists already"):
        export_items(tmp_path, [_item("new.data.npy", "new"), _item("a.data.npy",
                                                                    array=np.zeros(3))])
    assert (tmp_path / "a.data.npy").read_bytes() == before
    assert not (tmp_path / "new.data.npy").exists()  # checked before writing anything
    export_items(tmp_path, [_item("a.data.npy", array=np.zeros(3))], overwrite=True)
    np.testing.assert_array_equal(np.load(tmp_path / "a.data.npy"), np.zeros(3))


def test_race_with_an_existing_file_is_caught_atomically(tmp_path, monkeypatch):
    # The name appears between the check and the write: the hard link refuses it.
    (tmp_path / "a.data.npy").write_bytes(b"someone else's")
    monkeypatch.setattr(export.Path, "exists", lambda self: False)
    with pytest.raises(BpinspectError, match="exists already"):
        export.write_atomic(tmp_path / "a.data.npy", lambda f: f.write(b"x"))
    assert (tmp_path / "a.data.npy").read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == ["a.data.npy"]


def test_missing_directory(tmp_path):
    with pytest.raises(BpinspectError, match="does not exist"):
        export_items(tmp_path / "nope", [_item()])
    assert not (tmp_path / "nope").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(BpinspectError, match="not a directory"):
        export_items(tmp_path / "file", [_item()])


def test_read_only_directory(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores the mode bits: fail as the OS would
            def refuse(directory):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(files, "_create_temporary", refuse)
        with pytest.raises(BpinspectError, match="Permission denied") as err:
            export_items(ro, [_item()])
        assert "\n" not in str(err.value)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_save(f, a, allow_pickle=False):
        f.write(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.np, "save", broken_save)
    with pytest.raises(BpinspectError, match="No space left on device"):
        export_items(tmp_path, [_item()])
    assert os.listdir(tmp_path) == []


def test_two_items_with_one_name(tmp_path):
    with pytest.raises(BpinspectError, match="both be written"):
        export_items(tmp_path, [_item("x.npy"), _item("x.npy")])


def test_foreign_manifest_is_left_alone(tmp_path):
    (tmp_path / "manifest.json").write_text('{"mine": true}')
    with pytest.raises(BpinspectError, match="not a bpinspect manifest"):
        export_items(tmp_path, [_item()])
    assert (tmp_path / "manifest.json").read_text() == '{"mine": true}'


def test_exported_files_have_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        export_items(tmp_path, [_item()])
    finally:
        os.umask(old)
    for name in ("a.data.npy", "manifest.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
