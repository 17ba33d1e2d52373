"""LMDB and LevelDB sources opened as Caffe's db::GetDB + cursor: records in
bytewise key order, random access by index, relative sources, one-line errors."""

from __future__ import annotations

import os

import lmdb
import plyvel
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.io.db import open_db, resolve_path

WHERE = "layer 'mnist' (Data)"
# Inserted out of order; bytewise order puts b"10" before b"9" and b"\xff" last.
RECORDS = {b"9": b"nine", b"10": b"ten", b"\xff": b"last", b"00000000": b"zero", b"a": b"A"}
SORTED = [b"00000000", b"10", b"9", b"a", b"\xff"]


def write_lmdb(path, records):
    env = lmdb.open(str(path), map_size=1 << 22)
    with env.begin(write=True) as txn:
        for k, v in records.items():
            txn.put(k, v)
    env.close()


def write_leveldb(path, records):
    db = plyvel.DB(str(path), create_if_missing=True)
    for k, v in records.items():
        db.put(k, v)
    db.close()


@pytest.mark.parametrize(("backend", "write"), [("LMDB", write_lmdb), ("LevelDB", write_leveldb)])
def test_records_come_in_bytewise_key_order_with_random_access(tmp_path, backend, write):
    write(tmp_path / "db", RECORDS)
    db = open_db(str(tmp_path / "db"), backend, WHERE)
    assert len(db) == 5
    assert db.keys == SORTED
    assert [db.value(i) for i in (4, 0, 2)] == [b"last", b"zero", b"nine"]
    db.close()


def test_backend_is_caffes_enum_value(tmp_path):
    write_lmdb(tmp_path / "l", {b"k": b"v"})
    write_leveldb(tmp_path / "d", {b"k": b"v"})
    assert open_db(str(tmp_path / "l"), 1, WHERE).backend == "LMDB"
    assert open_db(str(tmp_path / "d"), 0, WHERE).backend == "LevelDB"


def test_lmdb_opened_without_a_lock_file(tmp_path):
    write_lmdb(tmp_path / "db", {b"k": b"v"})
    os.remove(tmp_path / "db" / "lock.mdb")
    open_db(str(tmp_path / "db"), "LMDB", WHERE)
    assert sorted(os.listdir(tmp_path / "db")) == ["data.mdb"]


def test_one_leveldb_opened_twice_in_one_process(tmp_path):
    write_leveldb(tmp_path / "db", {b"k": b"v"})
    a = open_db(str(tmp_path / "db"), "LevelDB", WHERE)
    b = open_db(str(tmp_path / "db"), "LevelDB", WHERE)  # LevelDB's lock would refuse this
    a.close()
    assert b.value(0) == b"v"
    b.close()
    c = open_db(str(tmp_path / "db"), "LevelDB", WHERE)
    assert c.value(0) == b"v"
    c.close()


def test_relative_source_from_cwd_else_base_dir(tmp_path, monkeypatch):
    net_dir, cwd = tmp_path / "net", tmp_path / "cwd"
    net_dir.mkdir()
    cwd.mkdir()
    write_lmdb(net_dir / "db", {b"k": b"beside the net"})
    monkeypatch.chdir(cwd)
    assert open_db("db", "LMDB", WHERE, base_dir=str(net_dir)).value(0) == b"beside the net"
    write_lmdb(cwd / "db", {b"k": b"in the working directory"})
    assert open_db("db", "LMDB", WHERE, base_dir=str(net_dir)).value(0) == (
        b"in the working directory")
    assert resolve_path("missing", str(net_dir)) == "missing"


def error_of(*args, **kwargs):
    with pytest.raises(BpinspectError) as info:
        open_db(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_source_names_layer_backend_and_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert error_of("examples/mnist/mnist_train_lmdb", "LMDB", WHERE) == (
        "layer 'mnist' (Data): cannot open LMDB source 'examples/mnist/mnist_train_lmdb': "
        "No such file or directory")
    assert error_of("nope", "LevelDB", WHERE) == (
        "layer 'mnist' (Data): cannot open LevelDB source 'nope': No such file or directory")


def test_wrong_backend_says_which_it_is(tmp_path):
    write_lmdb(tmp_path / "l", {b"k": b"v"})
    write_leveldb(tmp_path / "d", {b"k": b"v"})
    message = error_of(str(tmp_path / "l"), "LevelDB", WHERE)
    assert message.startswith(f"{WHERE}: cannot open LevelDB source '{tmp_path / 'l'}': ")
    assert "an LMDB: set backend: LMDB" in message
    assert "a LevelDB: set backend: LEVELDB" in error_of(str(tmp_path / "d"), "LMDB", WHERE)


def test_not_a_database(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "file").write_text("x")
    assert error_of(str(tmp_path / "empty_dir"), "LMDB", WHERE).endswith(
        "not an LMDB database (the directory has no data.mdb)")
    assert error_of(str(tmp_path / "empty_dir"), "LevelDB", WHERE).endswith(
        "not a LevelDB database (the directory has no CURRENT)")
    assert "Not a directory" in error_of(str(tmp_path / "file"), "LMDB", WHERE)


def test_empty_database_is_an_error(tmp_path):
    write_lmdb(tmp_path / "db", {})
    assert error_of(str(tmp_path / "db"), "LMDB", WHERE) == (
        f"{WHERE}: cannot open LMDB source '{tmp_path / 'db'}': the database holds no records")


def test_unknown_backend(tmp_path):
    assert "unknown database backend 7" in error_of(str(tmp_path), 7, WHERE)
