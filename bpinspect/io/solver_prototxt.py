"""Solver files (``solver.prototxt``): a text ``SolverParameter``, upgraded as Caffe does.

Follows ``ReadSolverParamsFromTextFileOrDie`` in ``src/caffe/util/upgrade_proto.cpp``:
parse the text (unknown fields refused, errors ``FILE:LINE:COL: message``), then

1. ``UpgradeSolverAsNeeded``: the deprecated ``solver_type`` enum (``SGD``,
   ``NESTEROV``, ``ADAGRAD``, ``RMSPROP``, ``ADADELTA``, ``ADAM``) becomes the
   ``type`` string and is cleared; giving both ``solver_type`` and ``type`` is an
   error (Caffe's CHECK in ``UpgradeSolverType``).
2. ``UpgradeSnapshotPrefixProperty``: without ``snapshot_prefix``, the prefix is
   the solver file's path without its extension; a prefix naming a directory
   gets the solver file's stem appended.

A parameter built in code (``SolverParameter`` given to a solver) gets step 1
only, as Caffe's ``Solver(const SolverParameter&)`` gets neither.
"""

from __future__ import annotations

import os
import re

from google.protobuf import text_format

from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_text_message, read_text
from bpinspect.proto import caffe_pb2

__all__ = ["SOLVER_TYPES", "load_solver", "parse_solver", "upgrade_solver_type"]

_P = caffe_pb2.SolverParameter

# UpgradeSolverType: the enum value -> the type string.
SOLVER_TYPES: dict[int, str] = {
    _P.SGD: "SGD",
    _P.NESTEROV: "Nesterov",
    _P.ADAGRAD: "AdaGrad",
    _P.RMSPROP: "RMSProp",
    _P.ADADELTA: "AdaDelta",
    _P.ADAM: "Adam",
}


def _line_of(text: str | None, field: str) -> str:
    """``:LINE`` of the first ``field:`` in ``text`` (for messages), or ''."""
    if not text:
        return ""
    match = re.search(rf"^[ \t]*{field}[ \t]*:", text, re.MULTILINE)
    return f":{text.count(chr(10), 0, match.start()) + 1}" if match else ""


def upgrade_solver_type(
    param: caffe_pb2.SolverParameter, source: str, notes: list[str] | None = None,
    text: str | None = None,
) -> caffe_pb2.SolverParameter:
    """``UpgradeSolverAsNeeded``: ``solver_type: ADAM`` becomes ``type: "Adam"``, in place."""
    if not param.HasField("solver_type"):
        return param
    if param.HasField("type"):
        raise BpinspectError(
            f"{source}{_line_of(text, 'solver_type')}: the old solver_type field (enum) and "
            "the new type field (string) cannot both be specified"
        )
    name = SOLVER_TYPES[param.solver_type]  # the parser refuses values outside the enum
    param.type = name
    param.ClearField("solver_type")
    if notes is not None:
        notes.append(f"{source}: upgraded the deprecated solver_type field to type: {name!r}")
    return param


def parse_solver(
    text: str, source: str = "<string>", notes: list[str] | None = None
) -> caffe_pb2.SolverParameter:
    """A ``SolverParameter`` from text, with ``solver_type`` upgraded (no prefix upgrade)."""
    try:
        param = parse_text_message(text, caffe_pb2.SolverParameter(), source)
    except BpinspectError:
        if _is_net(text):
            raise BpinspectError(
                f"{source}: a net definition (NetParameter), not a solver; "
                "a solver file names its net with net: \"...\""
            ) from None
        raise
    return upgrade_solver_type(param, source, notes, text)


def load_solver(
    path: str | os.PathLike[str], notes: list[str] | None = None
) -> caffe_pb2.SolverParameter:
    """``ReadSolverParamsFromTextFileOrDie``: parse, upgrade the type, then the prefix."""
    path = os.fspath(path)
    param = parse_solver(read_text(path), path, notes)
    # UpgradeSnapshotPrefixProperty (boost: replace_extension(), stem()).
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = os.path.splitext(path)[0]
    elif os.path.isdir(param.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(path))[0]
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, stem)
    return param


def _is_net(text: str) -> bool:
    try:
        text_format.Parse(text, caffe_pb2.NetParameter())
    except text_format.ParseError:
        return False
    return True
