"""Caffe's databases, read as Caffe reads them: ``db::GetDB(backend)`` + a cursor.

Follows ``src/caffe/util/db.cpp``, ``db_lmdb.cpp`` and ``db_leveldb.cpp``: a
``Data`` layer's ``source`` is an LMDB environment (a directory holding
``data.mdb``) or a LevelDB directory, chosen by ``data_param.backend``
(LEVELDB unless set, as in ``caffe.proto``). Records come in key order,
bytewise, as both databases sort their keys, and a record is found by its
index in that order (the key list is read once; ImageNet's 1.3M keys fit).

The formats are read through their own bindings (``lmdb``, ``plyvel``),
never by hand. LMDB is opened read-only without its lock file (Caffe opens
it ``MDB_RDONLY``; ``lock=False`` lets a database on a read-only disk, or
one a training run is writing next to, be read too). LevelDB has no
read-only mode: like Caffe, opening takes its lock, so a LevelDB that a
running Caffe holds cannot be opened at the same time.

Every failure is one line naming the layer, the backend and the source.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from bpinspect.errors import BpinspectError

__all__ = ["BACKENDS", "Database", "open_db", "resolve_path"]

# DataParameter.DB: LEVELDB = 0, LMDB = 1.
BACKENDS = {0: "LevelDB", 1: "LMDB"}


def resolve_path(path: str, base_dir: str | None) -> str:
    """``path`` as Caffe opens it (from the working directory); failing that, under
    ``base_dir`` (the net file's directory) when it exists there."""
    if os.path.isabs(path) or os.path.exists(path) or not base_dir:
        return path
    beside = os.path.join(base_dir, path)
    return beside if os.path.exists(beside) else path


class Database(ABC):
    """An open database: ``len(db)`` records, in key order, by index."""

    backend: str = ""

    def __init__(self, source: str, where: str) -> None:
        self.source = source  # as the net gives it, for messages
        self.where = where    # "layer 'mnist' (Data)", for messages
        self.keys: list[bytes] = []

    def __len__(self) -> int:
        return len(self.keys)

    def value(self, index: int) -> bytes:
        """The value of record ``index`` (0-based, in key order)."""
        value = self._get(self.keys[index])
        if value is None:  # a key listed at open time and gone since
            self.fail(f"record {self.keys[index]!r} has disappeared since it was opened")
        return value

    @abstractmethod
    def _get(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def fail(self, message: str) -> None:
        raise BpinspectError(f"{self.where}: {self.backend} source {self.source!r}: {message}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} records)"


class _LMDB(Database):
    backend = "LMDB"

    def __init__(self, source: str, path: str, where: str) -> None:
        import lmdb

        super().__init__(source, where)
        try:
            self._env = lmdb.open(path, readonly=True, lock=False, readahead=False,
                                  max_readers=1)
            self._txn = self._env.begin(buffers=False)
            with self._txn.cursor() as cursor:
                self.keys = list(cursor.iternext(keys=True, values=False))
        except lmdb.Error as e:
            raise _open_error(where, self.backend, source, _lmdb_reason(path, e)) from None

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._txn.get(key)
        return value

    def close(self) -> None:
        self._txn.abort()
        self._env.close()


class _LevelDB(Database):
    backend = "LevelDB"
    # A LevelDB is locked by the process that opens it, against the same process
    # too: a train and a test net on one database, or a net rebuilt while the old
    # one lives, share one handle (path -> [handle, users]).
    _open: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, source: str, path: str, where: str) -> None:
        import plyvel

        super().__init__(source, where)
        if not os.path.isfile(os.path.join(path, "CURRENT")):
            raise _open_error(where, self.backend, source, _missing_reason(path, "LevelDB"))
        self._path = os.path.realpath(path)
        shared = self._open.get(self._path)
        try:
            if shared is None:
                shared = [plyvel.DB(path, create_if_missing=False), 0]
            self._db: Any = shared[0]
            self.keys = list(self._db.iterator(include_value=False))
        except (plyvel.Error, OSError) as e:
            raise _open_error(where, self.backend, source, _plyvel_reason(e)) from None
        shared[1] += 1
        self._open[self._path] = shared
        self._closed = False

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shared = self._open[self._path]
        shared[1] -= 1
        if shared[1] == 0:
            del self._open[self._path]
            shared[0].close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            self.close()


def open_db(source: str, backend: int | str, where: str, base_dir: str | None = None) -> Database:
    """Open ``source`` with ``backend`` (``DataParameter.DB`` value, or "LMDB" /
    "LevelDB"), as ``db::GetDB(backend)->Open(source, READ)``; an empty database
    is an error here (Caffe would read a record that is not there)."""
    name = BACKENDS.get(backend, backend) if isinstance(backend, int) else str(backend)
    path = resolve_path(source, base_dir)
    if name.lower() == "lmdb":
        db: Database = _LMDB(source, path, where)
    elif name.lower() == "leveldb":
        db = _LevelDB(source, path, where)
    else:
        raise BpinspectError(f"{where}: unknown database backend {backend!r} for source "
                             f"{source!r} (LMDB or LEVELDB)")
    if not len(db):
        db.close()
        raise _open_error(where, db.backend, source, "the database holds no records")
    return db


# ---- why a database did not open --------------------------------------------------


def _open_error(where: str, backend: str, source: str, reason: str) -> BpinspectError:
    return BpinspectError(f"{where}: cannot open {backend} source {source!r}: {reason}")


def _missing_reason(path: str, backend: str) -> str:
    """Why ``path`` is not a ``backend`` database, with a hint at the other backend."""
    if not os.path.exists(path):
        return "No such file or directory"
    if not os.path.isdir(path):
        return f"Not a directory (a {backend} database is a directory)"
    if backend == "LevelDB" and os.path.isfile(os.path.join(path, "data.mdb")):
        return "not a LevelDB database; it holds data.mdb, an LMDB: set backend: LMDB"
    if backend == "LMDB" and os.path.isfile(os.path.join(path, "CURRENT")):
        return "not an LMDB database; it holds CURRENT, a LevelDB: set backend: LEVELDB"
    marker = "data.mdb" if backend == "LMDB" else "CURRENT"
    return f"not a {backend} database (the directory has no {marker})"


def _lmdb_reason(path: str, error: Exception) -> str:
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        return _missing_reason(path, "LMDB")
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _plyvel_reason(error: Exception) -> str:
    text = str(error)
    if text.startswith(("b'", 'b"')):  # plyvel gives the status as bytes' repr
        text = text[2:-1]
    return " ".join(text.split())
