"""Memory planned before it is allocated: what a net needs, from its shapes alone.

Caffe logs ``Memory required for data: N`` once its tops are shaped; here the
Net, once every layer's ``setup`` has given its top and param shapes and
before any array exists, asks :func:`plan_net` what it all comes to:

- **blobs**: every blob's data and diff (an in-place top is its bottom's blob);
- **params**: every learnable param's data and diff (a shared param once);
- **im2col**: the largest column buffer a convolution lays out (the batch is
  cut in chunks of ``COL_BUDGET`` bytes, as ``layers/conv.py`` does);
- **history**: what the debugger's history may keep of a pass, up to its
  budget (a pass records every blob's data and diff and every param diff);

and when that does not fit in what is available, the machine's free memory
(or the GPU's, asked of CuPy through ``backend``) or ``--max-memory``, it
stops with one line naming the largest blob, its layer and shape, what is
needed and what is available. Sizes are Python ints: a dim of 10^12 or
2^31 - 1 is planned (and refused), never overflowed.

The limit and the history budget come from :func:`limits`, a context the
command line sets around building a session (a Net made in a script gets
the machine's memory and no history).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bpinspect.errors import BpinspectError

__all__ = [
    "BlobNeed",
    "Limits",
    "MemoryPlan",
    "available_memory",
    "format_bytes",
    "limits",
    "parse_size",
    "plan",
    "plan_net",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Limits:
    """What a net may use: ``max_bytes`` (``--max-memory``; None: what the device has)
    and the history budget reserved beside it."""

    max_bytes: int | None = None
    history_budget: int = 0


_LIMITS: ContextVar[Limits | None] = ContextVar("bpinspect_memory_limits", default=None)


@contextlib.contextmanager
def limits(max_bytes: int | None = None, history_budget: int = 0) -> Iterator[Limits]:
    """Nets built inside plan with this limit and history budget."""
    value = Limits(max_bytes, max(0, int(history_budget)))
    token = _LIMITS.set(value)
    try:
        yield value
    finally:
        _LIMITS.reset(token)


def current_limits() -> Limits:
    """The limits nets plan with here: those of :func:`limits`, else the device's."""
    return _LIMITS.get() or Limits()


# ---- sizes ----------------------------------------------------------------------

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "--max-memory") -> int:
    """``4G``, ``512M``, ``1.5GiB``, ``100000`` (bytes) as bytes (K, M, G, T: powers
    of 1024); a one-line error naming ``what`` otherwise."""
    m = _SIZE.match(str(text))
    if m is None:
        raise BpinspectError(f"{what} {text}: expected a size such as 4G, 512M or 1000000 "
                             "(bytes)")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not math.isfinite(value) or value < 1 or value > 1 << 62:
        raise BpinspectError(f"{what} {text}: expected a size of at least 1 byte, such as 4G")
    return int(value)


def format_bytes(n: int) -> str:
    """``1.26 GiB``, ``212 MiB``, ``3.5 KiB``, ``12 B`` (powers of 1024)."""
    if n < 1024:
        return f"{int(n)} B"
    value, units = n / 1024.0, ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    while value >= 1023.5 and len(units) > 1:
        value /= 1024.0
        units.pop(0)
    return f"{value:.0f} {units[0]}" if 100 <= value < 1e6 else f"{value:.3g} {units[0]}"


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# ---- what is available ------------------------------------------------------------


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _host_available() -> tuple[int | None, str]:
    """The host's available memory: MemAvailable, within a cgroup's limit."""
    available: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    where = "this machine"
    limit = _read_int("/sys/fs/cgroup/memory.max")  # cgroup v2 ("max" reads as None)
    if limit is not None:
        used = _read_int("/sys/fs/cgroup/memory.current") or 0
        if available is None or limit - used < available:
            available, where = max(0, limit - used), "this container"
    return available, where


def available_memory(device: Any) -> tuple[int | None, str]:
    """(bytes free where ``device`` computes, where that is); None when unknown."""
    if getattr(device, "is_gpu", False):
        from bpinspect import backend

        return backend.gpu_free_memory(device), device.name
    return _host_available()


# ---- the plan ---------------------------------------------------------------------


@dataclass(frozen=True)
class BlobNeed:
    """One blob: its name, the layer that produces it, its shape and bytes (data+diff)."""

    name: str
    layer: str
    shape: Shape
    nbytes: int


@dataclass(frozen=True)
class MemoryPlan:
    """What a net needs, in bytes, and what was available when it was planned."""

    blobs: int  # every blob's data and diff
    params: int  # every param's data and diff
    im2col: int  # the largest column buffer
    history: int  # what the history may keep, within its budget
    caffe_data: int  # Caffe's "Memory required for data": every top's data, in-place too
    largest: BlobNeed | None
    available: int | None
    where: str  # what ``available`` is: "this machine", a GPU's name, "--max-memory"

    @property
    def total(self) -> int:
        return self.blobs + self.params + self.im2col + self.history

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available

    @property
    def short(self) -> str:
        """``1.26 GiB``: the net's own figure (the TUI header)."""
        return format_bytes(self.total)

    @property
    def available_text(self) -> str:
        """``23.1 GiB free (this machine)``, ``4 GiB allowed (--max-memory)``."""
        verb = "allowed" if self.where == "--max-memory" else "free"
        return f"{format_bytes(self.available or 0)} {verb} ({self.where})"

    def summary(self) -> str:
        """One line for ``dump``: the total of what is available, its parts (blobs and
        params with their diffs), and the figure Caffe logs for the same net."""
        history = f", history up to {format_bytes(self.history)}" if self.history else ""
        of = f" of {self.available_text}" if self.available is not None else ""
        return (f"{format_bytes(self.total)}{of}: blobs {format_bytes(self.blobs)}, params "
                f"{format_bytes(self.params)}, im2col {format_bytes(self.im2col)}{history} "
                f"(Caffe: \"Memory required for data: {self.caffe_data}\")")

    def error(self, net: str) -> str:
        """The one line that says why the net does not fit."""
        largest = ""
        if self.largest is not None:
            b = self.largest
            largest = (f"; the largest blob is {b.name!r} of layer {b.layer!r}, shape "
                       f"{_shape_text(b.shape)} ({format_bytes(b.nbytes)} with its diff)")
        hint = "" if self.where == "--max-memory" else " (--max-memory sets the limit)"
        return (f"{net}: needs {format_bytes(self.total)} of memory (blobs "
                f"{format_bytes(self.blobs)}, params {format_bytes(self.params)}, im2col "
                f"{format_bytes(self.im2col)}, history {format_bytes(self.history)}) but "
                f"only {self.available_text}{largest}{hint}")


def plan(
    blobs: Sequence[tuple[str, str, Shape]],
    params: Sequence[Shape],
    im2col: int,
    itemsize: int,
    caffe_data: int,
    device: Any = None,
    current: Limits | None = None,
) -> MemoryPlan:
    """The plan of ``blobs`` ((name, producing layer, shape), each once), ``params``
    (each once), the largest ``im2col`` buffer (bytes), for ``itemsize`` bytes per
    value, within ``current`` (default: the context's :func:`limits`)."""
    current = current if current is not None else current_limits()
    needs = [BlobNeed(name, layer, tuple(shape), 2 * itemsize * math.prod(shape))
             for name, layer, shape in blobs]
    blob_bytes = sum(b.nbytes for b in needs)
    param_bytes = 2 * itemsize * sum(math.prod(s) for s in params)
    history = min(current.history_budget, blob_bytes + param_bytes // 2)
    largest = max(needs, key=lambda b: b.nbytes, default=None)
    if current.max_bytes is not None:
        available, where = current.max_bytes, "--max-memory"
    else:
        available, where = available_memory(device)
    return MemoryPlan(blob_bytes, param_bytes, im2col, history, caffe_data * itemsize,
                      largest, available, where)


def _im2col_bytes(layer: Any, bottom_shapes: Sequence[Shape], top_shapes: Sequence[Shape],
                  itemsize: int) -> int:
    """The col buffer a Convolution (or Deconvolution) lays out, in bytes: 2-D
    (``layers/conv.py``) or N-D (``layers/conv_nd.py``: any number of spatial axes
    after its ``channel_axis``, the axes before it folded into the images)."""
    geometry = getattr(layer, "geometry", None)
    if geometry is None or getattr(layer, "type", "") not in ("Convolution", "Deconvolution"):
        return 0
    from bpinspect.layers.conv import COL_BUDGET

    kernel = getattr(geometry, "kernel", None) or (geometry.kh, geometry.kw)
    axis = int(getattr(layer, "channel_axis", 1))
    transposed = bool(getattr(layer, "transposed", False))
    conv_in, conv_out = (top_shapes, bottom_shapes) if transposed else (bottom_shapes, top_shapes)
    if not conv_in or not conv_out or len(conv_in[0]) != axis + 1 + len(kernel):
        return 0
    n = math.prod(int(d) for d in conv_in[0][:axis])
    c = int(conv_in[0][axis])
    out_cells = math.prod(int(d) for d in conv_out[0][axis + 1:])
    per_image = c * math.prod(kernel) * out_cells * itemsize
    if n <= 0 or per_image <= 0:
        return 0
    chunks = max(1, -(-n * per_image // COL_BUDGET))
    return int(-(-n // chunks) * per_image)


def plan_net(net: Any) -> MemoryPlan:
    """The plan of a Net whose layers are set up and whose blobs are not allocated yet:
    ``net.blobs`` maps names to objects with a ``shape``; raises a ``BpinspectError``
    when the net does not fit (see the module docstring)."""
    itemsize = int(net.dtype.itemsize)
    producers: dict[str, str] = {}
    caffe_data = 0
    im2col = 0
    for i, layer in enumerate(net.layers):
        name = net.layer_names[i]
        tops = [b.shape for b in net._top_vecs[i]]
        for blob in net._top_vecs[i]:
            producers.setdefault(blob.name, name)
        caffe_data += sum(math.prod(s) for s in tops)
        bottoms = [b.shape for b in net._bottom_vecs[i]]
        im2col = max(im2col, _im2col_bytes(layer, bottoms, tops, itemsize))
    blobs = [(name, producers.get(name, "?"), tuple(b.shape)) for name, b in net.blobs.items()]
    params: list[Shape] = []
    shared: set[str] = set()
    for i, layer in enumerate(net.layers):
        lp = net.param.layer[i]
        for j, shape in enumerate(layer.param_shapes):
            spec = lp.param[j].name if j < len(lp.param) else ""
            if spec and spec in shared:
                continue
            if spec:
                shared.add(spec)
            params.append(tuple(int(d) for d in shape))
    result = plan(blobs, params, im2col, itemsize, caffe_data, net.device)
    if not result.fits:
        raise BpinspectError(result.error(net.source))
    return result
