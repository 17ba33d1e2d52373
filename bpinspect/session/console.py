"""A Python console on a session's live blobs: the TUI's ``!``, with no UI in it.

The one place bpinspect evaluates text. Each input runs in one namespace that
persists between inputs and holds ``net``, ``session``, ``np`` and
``blob(name)`` / ``diff(name)``: NumPy copies of a blob's (or ``"conv1#0"``, a
param's) data and diff at the step being viewed, as the blob table shows them
(``run``'s ``viewed``; a blob it does not name: the session's current state).

Statements and expressions both work; an input whose last statement is an
expression echoes its repr, as the Python REPL does, and keeps it in ``_``.
``print`` writes to the input's output, which is bounded (``MAX_OUTPUT``
characters, then a note of how much was left out). An exception becomes its
traceback without bpinspect's own frames.

``cancel()`` interrupts an input within its own code (see ``_tracer``).
"""

from __future__ import annotations

import ast
import builtins
import linecache
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from bpinspect.backend import to_host
from bpinspect.errors import BpinspectError

MAX_OUTPUT = 20_000  # characters of one input's output kept; the rest is counted
INTERRUPTED = "interrupted"
FILENAME = "<console #{}>"  # each input's code, so a traceback can quote its lines
_PACKAGE = str(Path(__file__).resolve().parents[1])  # bpinspect's frames leave tracebacks

# (blob or layer, param index or None, "data" | "diff") -> the step whose values the
# blob table shows (None: the current state).
Viewed = Mapping[tuple[str, int | None, str], int | None]


@dataclass(frozen=True)
class ConsoleResult:
    """What one input printed and echoed, and how it ended."""

    output: str
    status: str  # "ok" | "error" | "interrupted"


class Interrupted(BaseException):
    """Raised in the user's code when ``cancel()`` turns true. A BaseException: the
    user's ``except Exception`` does not swallow it."""


class _BoundedText:
    """A text sink keeping the first ``limit`` characters and counting the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def write(self, text: str) -> int:
        self.total += len(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        out = "".join(self.parts)
        if self.total > self.kept:
            out += (f"\n… output truncated: {self.total:,} characters, the first "
                    f"{self.kept:,} shown")
        return out


class Console:
    """One namespace over ``session``, and the evaluation of inputs in it."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.viewed: Viewed = {}
        """The steps the blob table shows (set by each ``run``)."""
        self.inputs = 0
        """How many inputs have run (each input's code is ``<console #n>``)."""
        self._out = _BoundedText(MAX_OUTPUT)
        self.namespace: dict[str, Any] = {
            "__name__": "__console__",
            "__builtins__": builtins,
            "net": session.net,
            "session": session,
            "np": np,
            "blob": self.blob,
            "diff": self.diff,
            "print": self._print,
        }

    # ------------------------------------------------------------------ the names
    def blob(self, name: str, param: int | None = None) -> np.ndarray:
        """``name``'s data at the step viewed (``"conv1#0"`` or ``("conv1", 0)``: a param)."""
        return self._value(name, param, "data")

    def diff(self, name: str, param: int | None = None) -> np.ndarray:
        """``name``'s diff at the step viewed."""
        return self._value(name, param, "diff")

    def _value(self, name: str, param: int | None, kind: str) -> np.ndarray:
        if param is None and "#" in name:
            layer, _, index = name.rpartition("#")
            if not index.isdigit():
                raise BpinspectError(f"{name!r}: a param is LAYER#INDEX, e.g. conv1#0")
            name, param = layer, int(index)
        step = self.viewed.get((name, param, kind))
        value = self.session.array(name, kind, step=step, param=param)
        label = name if param is None else f"{name}#{param}"
        if value is None:
            raise BpinspectError(f"{label} has no {kind} at the step viewed")
        return np.array(to_host(value), copy=True)  # the user may write to it

    def _print(self, *args: Any, file: Any = None, **kwargs: Any) -> None:
        """``print`` to the input's output (unless the user names another file)."""
        builtins.print(*args, file=self._out if file in (None, sys.stdout) else file,
                       **kwargs)

    # ------------------------------------------------------------------ evaluation
    def run(self, source: str, viewed: Viewed | None = None,
            cancel: Callable[[], bool] | None = None) -> ConsoleResult:
        """Run one input; never raises (the user's exception is in the output)."""
        if viewed is not None:
            self.viewed = viewed
        self.inputs += 1
        filename = FILENAME.format(self.inputs)
        # Kept for tracebacks, also of functions this input defines and a later one calls.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        self._out = out = _BoundedText(MAX_OUTPUT)
        status = "ok"
        previous = sys.gettrace()
        try:
            body, last = _split(source, filename)
            sys.settrace(_tracer(cancel) if cancel is not None else previous)
            try:
                exec(body, self.namespace)
                value = eval(last, self.namespace) if last is not None else None
            finally:
                sys.settrace(previous)
            if value is not None:
                self.namespace["_"] = value
                out.write(repr(value) + "\n")
        except Interrupted:
            out.write(INTERRUPTED + "\n")
            status = "interrupted"
        except BaseException as exc:  # SystemExit, KeyboardInterrupt too: the app goes on
            out.write(_user_traceback(exc))
            status = "error"
        return ConsoleResult(out.text().rstrip("\n"), status)


def _split(source: str, filename: str) -> tuple[Any, Any]:
    """The input compiled as statements, and its last statement when that is an
    expression (to echo), compiled alone (None otherwise)."""
    tree = ast.parse(source, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), last


def _tracer(cancel: Callable[[], bool]) -> Callable[..., Any]:
    """A trace function that raises Interrupted at the next instruction of the user's
    code once ``cancel()`` is true.

    Why a trace function rather than PyThreadState_SetAsyncExc on the worker: the
    exception then arises only in frames compiled from console inputs, never inside
    bpinspect or numpy (a Session half-way through a step called from the console
    finishes it) and never after the input has returned (an asynchronous exception
    can land late, in the worker's own code). Opcode events, not line events:
    ``while True: pass`` jumps to its own line and so makes no line event after the
    first. It makes the user's own Python loops about four times slower; other
    frames are not traced and run at full speed. What neither way can stop is one
    long call into C (``time.sleep(60)``, a huge matrix product): the input stops
    when it returns.
    """

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if cancel():
            raise Interrupted
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith("<console #"):
            return None
        if cancel():
            raise Interrupted
        frame.f_trace_opcodes = True
        return local

    return calls


def _user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without bpinspect's frames (the console's exec, blob())."""
    if isinstance(exc, SyntaxError):
        return "".join(traceback.format_exception_only(type(exc), exc))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_PACKAGE)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    return "".join(lines + traceback.format_exception_only(type(exc), exc))
