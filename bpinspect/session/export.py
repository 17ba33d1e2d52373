"""Export arrays to ``.npy`` files, atomically, with a ``manifest.json``.

Every file is written to a temporary file in the target directory and then
linked into place, so a reader never sees half a file and an existing file is
never replaced unless asked. ``np.load(path, allow_pickle=False)`` opens each.
Blob and layer names are percent-encoded: only letters, digits, ``.``, ``_``
and ``-`` stay as they are (GoogLeNet names such as ``inception_3a/1x1``
contain ``/``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bpinspect.backend import Array, to_host
from bpinspect.errors import BpinspectError
from bpinspect.io.files import write_atomic

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "bpinspect-export"
MANIFEST_VERSION = 1

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def encode_name(name: str) -> str:
    """Percent-encode every character but letters, digits, ``.``, ``_``, ``-``."""
    out = []
    for ch in name:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def step_file_name(step: int, direction: str, layer: str, blob: str, kind: str) -> str:
    """``step0007-forward-relu1-conv1.data.npy``: what the session exports."""
    return f"step{step:04d}-{direction}-{encode_name(layer)}-{encode_name(blob)}.{kind}.npy"


def final_file_name(blob: str, kind: str) -> str:
    """``conv1.data.npy``: what ``bpinspect dump`` writes (final values)."""
    return f"{encode_name(blob)}.{kind}.npy"


@dataclass
class ExportItem:
    """One array to write and what the manifest says about it."""

    file: str  # a file name (no directory)
    array: Array  # host or device; copied to the host when written
    blob: str
    layer: str | None
    step: int | None
    direction: str | None
    kind: str  # "data" | "diff"

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "blob": self.blob,
            "layer": self.layer,
            "step": self.step,
            "direction": self.direction,
            "kind": self.kind,
            "shape": [int(d) for d in self.array.shape],
            "dtype": str(self.array.dtype),
        }


def check_directory(directory: str | os.PathLike[str]) -> Path:
    """The export directory, which must exist and be a directory."""
    d = Path(directory).expanduser()
    if not d.exists():
        raise BpinspectError(f"export directory {str(d)!r} does not exist")
    if not d.is_dir():
        raise BpinspectError(f"export directory {str(d)!r} is not a directory")
    return d


def export_items(
    directory: str | os.PathLike[str],
    items: Sequence[ExportItem],
    *,
    overwrite: bool = False,
    header: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``items`` as ``.npy`` files into ``directory`` and merge the manifest.

    Every target name is checked before anything is written, so a clash
    leaves the directory as it was.
    """
    d = check_directory(directory)
    names = [it.file for it in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise BpinspectError(f"export: two arrays would both be written to {dup!r}")
    if not overwrite:
        for name in names:
            if (d / name).exists():
                raise BpinspectError(
                    f"{str(d / name)!r} exists already; not overwriting it "
                    "(choose another directory)"
                )
    manifest = _read_manifest(d)
    written = []
    for it in items:
        host = np.asarray(to_host(it.array), order="C")  # (ascontiguousarray makes 0-d 1-d)
        write_atomic(d / it.file, lambda f, a=host: np.save(f, a, allow_pickle=False), overwrite)
        written.append(d / it.file)
    files = {e["file"]: e for e in manifest["files"]}
    for it in items:
        files[it.file] = it.manifest_entry()
    manifest["files"] = sorted(files.values(), key=lambda e: e["file"])
    if header:
        manifest.update(header)
    text = json.dumps(manifest, indent=2) + "\n"
    write_atomic(d / MANIFEST, lambda f: f.write(text.encode()), overwrite=True)
    return written


def _read_manifest(d: Path) -> dict[str, Any]:
    path = d / MANIFEST
    fresh: dict[str, Any] = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": []}
    if not path.exists():
        return fresh
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BpinspectError(f"{str(path)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BpinspectError(
            f"{str(path)!r} is not a bpinspect manifest; not touching it "
            "(choose another directory)"
        )
    manifest.setdefault("files", [])
    return manifest
