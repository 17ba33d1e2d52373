"""Text nets (``.prototxt``): parse with protobuf's text format, then upgrade.

Caffe reads a net with ``TextFormat::Parse`` (``ReadProtoFromTextFile``) and
then ``UpgradeNetAsNeeded``; so do we, with ``google.protobuf.text_format``
and ``bpinspect.io.upgrade.upgrade_net``. Like Caffe's parser, ours refuses
unknown fields and a non-repeated field given twice. A syntax error becomes
one line, ``FILE:LINE:COL: message``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from bpinspect.errors import BpinspectError
from bpinspect.io.files import open_for_reading
from bpinspect.io.upgrade import upgrade_net
from bpinspect.proto import caffe_pb2

__all__ = [
    "load_net",
    "load_text_message",
    "parse_net",
    "parse_text_message",
    "read_bytes",
    "read_text",
]

M = TypeVar("M", bound=Message)

_LOCATION = re.compile(r"^\d+(?::\d+)? : ")


def parse_text_message(text: str, message: M, source: str = "<string>") -> M:
    """Parse protobuf text into ``message`` (cleared first) and return it.

    Errors: ``BpinspectError("SOURCE:LINE:COL: message")``, LINE and COL
    counted from 1, the message on one line.
    """
    message.Clear()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise BpinspectError(_describe(e, text, source)) from None
    return message


def parse_net(
    text: str, source: str = "<string>", notes: list[str] | None = None
) -> caffe_pb2.NetParameter:
    """A ``NetParameter`` from prototxt text, upgraded to the current format.

    ``notes``, when given, receives one line per upgrade done (V1 layers, legacy
    inputs, ...), for the user to see.
    """
    try:
        net = parse_text_message(text, caffe_pb2.NetParameter(), source)
    except BpinspectError:
        hint = _solver_hint(text, source)
        if hint:
            raise BpinspectError(hint) from None
        raise
    return upgrade_net(net, source, notes)


def _solver_hint(text: str, source: str) -> str | None:
    """When a net file turns out to be a solver file, say so and name its net."""
    solver = caffe_pb2.SolverParameter()
    try:
        text_format.Parse(text, solver)
    except text_format.ParseError:
        return None
    nets = [solver.net, solver.train_net, *solver.test_net]
    named = [n for n in nets if n]
    where = f"; its net is in {', '.join(repr(n) for n in named)}" if named else ""
    if not named and (solver.HasField("net_param") or solver.HasField("train_net_param")):
        where = "; its net is inline (net_param)"
    return f"{source}: a solver definition (SolverParameter), not a net{where}"


def load_net(
    path: str | os.PathLike[str], notes: list[str] | None = None
) -> caffe_pb2.NetParameter:
    """``parse_net`` on a file; errors name the file (``PATH: no such file``)."""
    return parse_net(read_text(path), str(path), notes)


def load_text_message(path: str | os.PathLike[str], message: M) -> M:
    """Any text-format message from a file (no upgrade), e.g. a ``SolverParameter``."""
    return parse_text_message(read_text(path), message, str(path))


def read_text(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file's content, or a one-line ``BpinspectError`` naming it."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BpinspectError(
            f"{path}: not a text file (byte {e.start} is not UTF-8); is it a binary .caffemodel?"
        ) from None


READ_CHUNK = 16 << 20


def read_bytes(path: str | os.PathLike[str],
               progress: Callable[[int, int], None] | None = None) -> bytes:
    """A file's bytes, or a one-line ``BpinspectError`` saying why not.

    ``progress(bytes_read, size)`` is called as chunks arrive (a caffemodel
    can be hundreds of MB on a slow disk).
    """
    with open_for_reading(path) as f:
        try:
            if progress is None:
                return f.read()
            size = os.fstat(f.fileno()).st_size
            data = bytearray()
            progress(0, size)
            while chunk := f.read(READ_CHUNK):
                data += chunk
                progress(len(data), size)
            return bytes(data)
        except OSError as e:
            raise BpinspectError(f"{path}: cannot read: {e.strerror or e}") from None


def _describe(error: text_format.ParseError, text: str, source: str) -> str:
    """``SOURCE:LINE:COL: message`` from a text_format.ParseError."""
    message = _LOCATION.sub("", str(error), count=1)
    line, column = error.GetLine(), error.GetColumn()
    if line is not None:
        # Some messages repeat the whole offending line in quotes; the
        # location already points there.
        lines = text.split("\n")
        if 1 <= line <= len(lines):
            quoted = f"'{lines[line - 1]}': "
            if message.startswith(quoted):
                message = message[len(quoted) :]
    where = source
    if line is not None:
        where += f":{line}"
        if column is not None:
            where += f":{column}"
    return f"{where}: {' '.join(message.split())}"
