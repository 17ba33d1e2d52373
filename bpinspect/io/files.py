"""Reading and writing files with one-line errors, and writing atomically.

Every reader of user files (prototxt, caffemodel, image, .npy) opens them
through :func:`open_for_reading`, so a missing file, a directory or a
permission problem reads the same everywhere. Every writer (caffemodel,
exported .npy, manifest.json) goes through :func:`write_atomic`: the bytes go
to a temporary file beside the target, which then takes its name, so no
reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from bpinspect.errors import BpinspectError


@contextlib.contextmanager
def open_for_reading(path: str | os.PathLike[str], what: str = "a file") -> Iterator[IO[bytes]]:
    """``open(path, "rb")``, or a ``BpinspectError`` naming the file and why not
    (``what`` names what was expected: "is a directory, not an image")."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise BpinspectError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BpinspectError(f"{path}: is a directory, not {what}") from None
    except PermissionError:
        raise BpinspectError(f"{path}: permission denied") from None
    except OSError as e:
        raise BpinspectError(f"{path}: cannot read: {e.strerror or e}") from None
    with f:
        yield f


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any],
                 overwrite: bool = False) -> None:
    """Write through ``write(fileobj)`` into a temporary file, then give it ``path``.

    Without ``overwrite`` an existing ``path`` is an error, decided atomically
    (a hard link fails when the name exists). The file gets the usual
    permissions (0666 less the umask). Nothing is left behind on failure.
    """
    target = Path(path)
    try:
        fd, tmp = _create_temporary(target)
    except FileNotFoundError:
        raise BpinspectError(f"{path}: directory {target.parent} does not exist") from None
    except OSError as e:
        raise BpinspectError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_replace(tmp, target)
    except FileExistsError:
        raise BpinspectError(
            f"{str(target)!r} exists already; not overwriting it (choose another directory)"
        ) from None
    except OSError as e:
        raise BpinspectError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # after a replace it is gone; after a link it is a second name


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new file beside ``target`` (same file system: the rename is atomic)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # a name taken by chance: draw another
            continue


def _link_no_replace(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: check, then rename (not atomic, but close).
        if path.exists():
            raise FileExistsError(str(path)) from None
        os.replace(tmp, path)


def make_directory(directory: str | os.PathLike[str], option: str) -> Path:
    """``directory``, created with its parents when missing (every output option's rule);
    a one-line error naming ``option`` when it cannot be (an empty path is refused: it
    would mean the working directory)."""
    if not os.fspath(directory).strip():
        raise BpinspectError(f"{option}: an empty path; give a directory")
    d = Path(directory).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpinspectError(
            f"{option} {directory}: cannot create the directory: {exc.strerror or exc}"
        ) from None
    return d
