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
    """An open database: ``len(db)`` records, in key order, by index.

    Both bindings refuse a second open of one database in one process (LMDB:
    "already open in this process"; LevelDB: its lock), which a train and a
    test net on one source, or a net rebuilt while the old one lives, would
    do: so every Database of one directory shares one handle, closed with
    the last of them.
    """

    backend: str = ""
    _shared: ClassVar[dict[tuple[str, str], list[Any]]] = {}  # -> [handle, keys, users]

    def __init__(self, source: str, path: str, where: str) -> None:
        self.source = source  # as the net gives it, for messages
        self.where = where    # "layer 'mnist' (Data)", for messages
        self._id = (self.backend, os.path.realpath(path))
        shared = self._shared.get(self._id)
        if shared is None:
            handle = self._open(path)
            try:
                keys = self._keys(handle)
            except BaseException:
                self._close(handle)
                raise
            shared = [handle, keys, 0]
            self._shared[self._id] = shared
        shared[2] += 1
        self._handle: Any = shared[0]
        self.keys: list[bytes] = shared[1]
        self._closed = False

    def __len__(self) -> int:
        return len(self.keys)

    def value(self, index: int) -> bytes:
        """The value of record ``index`` (0-based, in key order)."""
        value = self._get(self._handle, self.keys[index])
        if value is None:  # a key listed at open time and gone since
            self.fail(f"record {self.keys[index]!r} has disappeared since it was opened")
        return value

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shared = self._shared[self._id]
        shared[2] -= 1
        if shared[2] == 0:
            del self._shared[self._id]
            self._close(shared[0])

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            self.close()

    # What a backend provides; _open raises the one-line error itself.
    @abstractmethod
    def _open(self, path: str) -> Any: ...

    @abstractmethod
    def _keys(self, handle: Any) -> list[bytes]: ...

    @abstractmethod
    def _get(self, handle: Any, key: bytes) -> bytes | None: ...

    @abstractmethod
    def _close(self, handle: Any) -> None: ...

    def fail(self, message: str) -> None:
        raise BpinspectError(f"{self.where}: {self.backend} source {self.source!r}: {message}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} records)"


class _LMDB(Database):
    backend = "LMDB"

    def _open(self, path: str) -> Any:
        import lmdb

        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False)
            return env, env.begin(buffers=False)
        except lmdb.Error as e:
            raise _open_error(self.where, self.backend, self.source,
                              _lmdb_reason(path, e)) from None

    def _keys(self, handle: Any) -> list[bytes]:
        with handle[1].cursor() as cursor:
            return list(cursor.iternext(keys=True, values=False))

    def _get(self, handle: Any, key: bytes) -> bytes | None:
        value: bytes | None = handle[1].get(key)
        return value

    def _close(self, handle: Any) -> None:
        handle[1].abort()
        handle[0].close()


class _LevelDB(Database):
    backend = "LevelDB"

    def _open(self, path: str) -> Any:
        import plyvel

        if not os.path.isfile(os.path.join(path, "CURRENT")):
            raise _open_error(self.where, self.backend, self.source,
                              _missing_reason(path, "LevelDB"))
        try:
            return plyvel.DB(path, create_if_missing=False)
        except (plyvel.Error, OSError) as e:
            raise _open_error(self.where, self.backend, self.source, _plyvel_reason(e)) from None

    def _keys(self, handle: Any) -> list[bytes]:
        return list(handle.iterator(include_value=False))

    def _get(self, handle: Any, key: bytes) -> bytes | None:
        value: bytes | None = handle.get(key)
        return value

    def _close(self, handle: Any) -> None:
        handle.close()


def open_db(source: str, backend: int | str, where: str, base_dir: str | None = None) -> Database:
    """Open ``source`` with ``backend`` (``DataParameter.DB`` value, or "LMDB" /
    "LevelDB"), as ``db::GetDB(backend)->Open(source, READ)``; an empty database
    is an error here (Caffe would read a record that is not there)."""
    name = str(BACKENDS.get(backend, backend)) if isinstance(backend, int) else str(backend)
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
    marker, article = ("data.mdb", "an") if backend == "LMDB" else ("CURRENT", "a")
    return f"not {article} {backend} database (the directory has no {marker})"


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
