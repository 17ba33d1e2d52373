"""Top-diff specs: the small language behind ``--top-diff BLOB=SPEC`` and the
TUI's inject box. A spec is parsed by this grammar, never evaluated as code::

    spec    := "ones" | "zeros"
             | "const:" FLOAT
             | "onehot:" INT [ "@" INT ]          class along axis 1 [only at item]
             | "randn" [ ":" kv ("," kv)* ]       kv := ("seed" "=" INT | "scale" "=" FLOAT)
             | "npy:" PATH                         np.load(PATH, allow_pickle=False)

``onehot:281`` puts 1 at channel 281 of every batch item (the whole plane of
that channel when the blob has spatial axes) and 0 elsewhere, as the seed 003
thread does for ``fc8``; ``onehot:281@0`` only at item 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bpinspect import backend
from bpinspect.errors import BpinspectError

Shape = tuple[int, ...]

_INT = r"[0-9]+"
_FLOAT = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_ONEHOT = re.compile(rf"onehot:({_INT})(?:@({_INT}))?")
_CONST = re.compile(rf"const:({_FLOAT})")
_KV = re.compile(rf"(seed)=({_INT})|(scale)=({_FLOAT})")

FORMS = "ones, zeros, const:X, onehot:C, onehot:C@N, randn:seed=S,scale=X, npy:PATH"


@dataclass(frozen=True)
class DiffSpec:
    """A parsed spec; ``build(shape)`` makes the host array."""

    text: str
    kind: str  # "ones" | "zeros" | "const" | "onehot" | "randn" | "npy"
    value: float = 0.0  # const
    channel: int = 0  # onehot
    item: int | None = None  # onehot@item
    seed: int = 0  # randn
    scale: float = 1.0  # randn
    path: str = ""  # npy

    def build(self, shape: Shape, dtype: Any = np.float32, blob: str = "?") -> np.ndarray:
        """The diff for a blob of ``shape``; a clear error when it cannot fit."""
        shape = tuple(int(d) for d in shape)
        where = f"top diff {blob}={self.text}"
        if self.kind == "ones":
            return np.ones(shape, dtype)
        if self.kind == "zeros":
            return np.zeros(shape, dtype)
        if self.kind == "const":
            return np.full(shape, self.value, dtype)
        if self.kind == "randn":
            gen = backend.rng(self.seed)
            return (gen.standard_normal(shape) * self.scale).astype(dtype)
        if self.kind == "onehot":
            if len(shape) < 2:
                raise BpinspectError(
                    f"{where}: onehot needs a channel axis (axis 1), blob {blob} has shape "
                    f"{shape}"
                )
            if self.channel >= shape[1]:
                raise BpinspectError(
                    f"{where}: class {self.channel} is out of range for blob {blob} of shape "
                    f"{shape} (channels 0..{shape[1] - 1})"
                )
            if self.item is not None and self.item >= shape[0]:
                raise BpinspectError(
                    f"{where}: item {self.item} is out of range for blob {blob} of shape "
                    f"{shape} (batch items 0..{shape[0] - 1})"
                )
            diff = np.zeros(shape, dtype)
            items = slice(None) if self.item is None else self.item
            diff[items, self.channel] = 1
            return diff
        assert self.kind == "npy"
        return _load_npy(self.path, shape, dtype, where)


def parse_spec(text: str) -> DiffSpec:
    """Parse one spec (the part after ``BLOB=``); BpinspectError names the spec."""
    spec = text.strip()
    if spec in ("ones", "zeros"):
        return DiffSpec(spec, spec)
    if m := _CONST.fullmatch(spec):
        return DiffSpec(spec, "const", value=float(m.group(1)))
    if m := _ONEHOT.fullmatch(spec):
        item = int(m.group(2)) if m.group(2) is not None else None
        return DiffSpec(spec, "onehot", channel=int(m.group(1)), item=item)
    if spec == "randn" or spec.startswith("randn:"):
        seed, scale = 0, 1.0
        args = spec[len("randn:"):] if spec != "randn" else ""
        seen: set[str] = set()
        for part in args.split(",") if args else []:
            m = _KV.fullmatch(part.strip())
            if m is None:
                raise BpinspectError(
                    f"top-diff spec {text!r}: {part.strip()!r} is not seed=INT or scale=FLOAT"
                )
            key = m.group(1) or m.group(3)
            if key in seen:
                raise BpinspectError(f"top-diff spec {text!r}: {key} given twice")
            seen.add(key)
            if key == "seed":
                seed = int(m.group(2))
            else:
                scale = float(m.group(4))
        return DiffSpec(spec, "randn", seed=seed, scale=scale)
    if spec.startswith("npy:"):
        path = spec[len("npy:"):]
        if not path:
            raise BpinspectError(f"top-diff spec {text!r}: npy: needs a file path")
        return DiffSpec(spec, "npy", path=path)
    raise BpinspectError(f"top-diff spec {text!r} is not one of: {FORMS}")


def parse_assignment(text: str) -> tuple[str, DiffSpec]:
    """``BLOB=SPEC`` (as ``--top-diff`` takes it) -> (blob, spec)."""
    blob, sep, spec = text.partition("=")
    if not sep or not blob.strip():
        raise BpinspectError(f"--top-diff {text!r}: expected BLOB=SPEC, e.g. fc8=onehot:281")
    return blob.strip(), parse_spec(spec)


def _load_npy(path: str, shape: Shape, dtype: Any, where: str) -> np.ndarray:
    from bpinspect.io.inputs import load_npy  # the header checked before the data is read

    p = Path(path).expanduser()
    if not p.exists():
        raise BpinspectError(f"{where}: no such file {str(p)!r}")
    try:
        loaded = load_npy(p)
    except BpinspectError as exc:
        reason = str(exc).removeprefix(f"{p}: ")
        raise BpinspectError(f"{where}: cannot read {str(p)!r} as .npy: {reason}") from None
    if tuple(loaded.shape) != shape:
        raise BpinspectError(
            f"{where}: {str(p)!r} has shape {tuple(loaded.shape)}, the blob has {shape}"
        )
    return loaded.astype(dtype)
