"""Compare two runs: two dumps, or a live session against a dump.

A *dump* is a directory of ``.npy`` files as ``bpinspect dump --out DIR`` writes
them (``<blob>.data.npy``, ``<blob>.diff.npy``, ``<layer>.param<j>.data.npy`` /
``.diff.npy``, names percent-encoded, and ``manifest.json``), or the same names
saved from pycaffe (``np.save('conv1.data.npy', net.blobs['conv1'].data)``, and
``net.params['conv1'][0].data`` as ``conv1.param0.data.npy``), without a manifest.
Arrays are matched by file name.

For each array the comparison gives both shapes, ``max |a - b|`` and
``max |a - b| / max |a|`` (side A is the reference), over the positions where
both values are finite; a NaN or Inf on one side that the other does not have
at the same position is counted in ``nonfinite_mismatch``. Two arrays *agree*
when their shapes are equal, their non-finite values match, and::

    max |a - b| <= atol + rtol * max |a|

**Where the runs part.** Values are put in the order the pass computes them:
the forward pass in layer order (a layer's params, then its tops' data), then
the backward pass in reverse layer order (the diffs a layer's backward writes:
its bottoms' diffs and its params' diffs; a top diff nobody computes, such as
an injected one, first of all). ``first_data`` is the first layer in forward
order whose param or top data differs; ``first_diff`` is the first layer in
backward order whose diffs differ (a backward bug at layer L makes every diff
below L differ: L is the one to look at); ``first`` is ``first_data`` when the
data differs anywhere, else ``first_diff``. The order comes from the ``layers``
that a dump's manifest records, else from a net prototxt given by the caller;
without either the values are compared in name order and ``order_known`` is
False.

Comparison runs with the array module of the arrays (a session's CuPy arrays
stay on the GPU, the dump's side is copied to them), in chunks, in float64;
only scalars cross to the host.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bpinspect.backend import Array, get_array_module
from bpinspect.errors import BpinspectError
from bpinspect.session.export import MANIFEST, MANIFEST_FORMAT, encode_name, final_file_name

if TYPE_CHECKING:
    from bpinspect.session.session import Session

__all__ = [
    "AGREE",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "DIFFER",
    "ONLY_A",
    "ONLY_B",
    "PENDING",
    "SHAPE",
    "ArrayComparison",
    "Comparison",
    "Divergence",
    "Dump",
    "DumpFile",
    "EntryComparison",
    "LayerOrder",
    "compare_arrays",
    "compare_dumps",
    "compare_session",
    "layers_of_net",
    "layers_of_prototxt",
    "read_dump",
]

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 0.0
CHUNK = 1 << 22  # elements compared at a time (32 MiB per float64 side)

# An entry's status.
AGREE = "agree"
DIFFER = "differ"  # same shape, values part beyond the tolerance
SHAPE = "shape"  # the shapes differ
ONLY_A = "only_a"  # the array is missing from side B
ONLY_B = "only_b"  # the array is missing from side A
PENDING = "pending"  # a live session has not computed it yet (compare_session)

_FILE = re.compile(r"^(?P<stem>.+?)(?:\.param(?P<param>\d+))?\.(?P<kind>data|diff)\.npy$")


# ---- one pair of arrays ------------------------------------------------------------


@dataclass(frozen=True)
class ArrayComparison:
    """Two arrays, side by side (``a`` is the reference)."""

    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    max_abs_diff: float  # max |a - b| where both are finite (0.0 for empty arrays)
    max_abs_a: float  # max |a| over a's finite values
    nonfinite_mismatch: int  # positions where a NaN/Inf on one side is not on the other
    rtol: float
    atol: float

    @property
    def same_shape(self) -> bool:
        return self.shape_a == self.shape_b

    @property
    def rel_diff(self) -> float:
        """``max |a - b| / max |a|``: 0 when equal, inf when a is all zero and b is not."""
        if self.max_abs_diff == 0.0:
            return 0.0
        if self.max_abs_a == 0.0:
            return float("inf")
        return self.max_abs_diff / self.max_abs_a

    @property
    def agree(self) -> bool:
        return (self.same_shape and self.nonfinite_mismatch == 0
                and self.max_abs_diff <= self.atol + self.rtol * self.max_abs_a)


def compare_arrays(a: Array, b: Array, rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL) -> ArrayComparison:
    """Compare ``a`` with ``b`` (NumPy, memory-mapped NumPy or CuPy; where one side is
    on the GPU the other is copied there). Arrays of different shapes are not
    compared value by value (``max_abs_diff`` is NaN)."""
    shape_a = tuple(int(d) for d in a.shape)
    shape_b = tuple(int(d) for d in b.shape)
    nan = float("nan")
    if shape_a != shape_b:
        return ArrayComparison(shape_a, shape_b, nan, _max_abs(a), 0, rtol, atol)
    xp = get_array_module(a, b)
    fa, fb = a.reshape(-1), b.reshape(-1)
    max_diff = max_a = 0.0
    mismatch = 0
    with np.errstate(all="ignore"):
        for start in range(0, int(fa.size), CHUNK):
            x = xp.asarray(fa[start:start + CHUNK], dtype=xp.float64)
            y = xp.asarray(fb[start:start + CHUNK], dtype=xp.float64)
            finite_x, finite_y = xp.isfinite(x), xp.isfinite(y)
            both = finite_x & finite_y
            same_nonfinite = (x == y) | (xp.isnan(x) & xp.isnan(y))
            d = xp.where(both, xp.abs(x - y), 0.0)
            ax = xp.where(finite_x, xp.abs(x), 0.0)
            bad = xp.count_nonzero(~both & ~same_nonfinite)
            small = xp.stack([d.max(), ax.max(), bad.astype(xp.float64)])
            hd, ha, hb = (float(v) for v in _host(small))
            max_diff, max_a = max(max_diff, hd), max(max_a, ha)
            mismatch += int(hb)
    return ArrayComparison(shape_a, shape_b, max_diff, max_a, mismatch, rtol, atol)


def _host(a: Array) -> np.ndarray:
    from bpinspect.backend import to_host

    return to_host(a)


def _max_abs(a: Array) -> float:
    xp = get_array_module(a)
    if a.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        x = xp.asarray(a, dtype=xp.float64)
        return float(xp.where(xp.isfinite(x), xp.abs(x), 0.0).max())


# ---- dumps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerOrder:
    """What the pass order needs of one layer: its name, type, bottoms and tops."""

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]


@dataclass(frozen=True)
class DumpFile:
    """One ``.npy`` file of a dump and what it holds."""

    file: str  # the file name, the key by which the two sides are matched
    name: str  # "conv1" for a blob, "conv1#0" for a layer's param 0
    kind: str  # "data" | "diff"
    blob: str | None  # the blob's name (None for a param)
    layer: str | None  # a param's layer; a blob's producer, when a manifest says so
    param: int | None  # the param's index (None for a blob)


@dataclass
class Dump:
    """A directory of ``.npy`` files, read by :func:`read_dump` (arrays load lazily)."""

    directory: Path
    files: dict[str, DumpFile]
    layers: list[LayerOrder] | None  # forward order, from the manifest (None: not known)
    header: dict[str, Any] = field(default_factory=dict)  # the manifest, less its files

    def load(self, file: str) -> np.ndarray:
        """The array of ``file``, memory-mapped; BpinspectError naming it if unreadable."""
        path = self.directory / file
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise BpinspectError(f"{str(path)!r} cannot be read as a .npy file: {exc}") from None
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            raise BpinspectError(f"{str(path)!r}: expected an array of numbers, got "
                                 f"{getattr(a, 'dtype', type(a).__name__)}")
        return a


def read_dump(directory: str | os.PathLike[str]) -> Dump:
    """The files of a dump directory (``bpinspect dump --out``, ``export``, or ``.npy``
    files named as pycaffe would save them); BpinspectError naming the path when it is
    missing, not a directory, has an unreadable manifest, or holds no ``.npy`` file."""
    d = Path(directory).expanduser()
    if not d.exists():
        raise BpinspectError(f"{str(d)!r}: no such directory")
    if not d.is_dir():
        raise BpinspectError(f"{str(d)!r} is not a directory (a dump is a directory of .npy "
                             "files, as bpinspect dump --out writes)")
    manifest: dict[str, Any] = {}
    mpath = d / MANIFEST
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise BpinspectError(f"{str(mpath)!r} cannot be read as JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise BpinspectError(f"{str(mpath)!r} is not a bpinspect manifest")
    described: dict[str, dict[str, Any]] = {}
    for e in manifest.get("files", []):
        if isinstance(e, dict) and isinstance(e.get("file"), str):
            described[e["file"]] = e
    files: dict[str, DumpFile] = {}
    for path in sorted(d.iterdir()):
        if path.suffix != ".npy" or not path.is_file():
            continue
        f = _describe_file(path.name, described.get(path.name))
        if f is not None:
            files[f.file] = f
    if not files:
        raise BpinspectError(f"{str(d)!r} holds no .npy files named <blob>.data.npy, "
                             "<blob>.diff.npy or <layer>.param<i>.data.npy")
    layers = None
    if isinstance(manifest.get("layers"), list):
        try:
            layers = [LayerOrder(str(e["name"]), str(e.get("type", "")),
                                 tuple(e.get("bottoms", ())), tuple(e.get("tops", ())))
                      for e in manifest["layers"]]
        except (KeyError, TypeError) as exc:
            raise BpinspectError(f"{str(mpath)!r}: bad 'layers' entry ({exc})") from None
    header = {k: v for k, v in manifest.items() if k not in ("files", "layers")}
    return Dump(d, files, layers, header)


def _describe_file(file: str, entry: dict[str, Any] | None) -> DumpFile | None:
    if entry is not None and entry.get("kind") in ("data", "diff") and entry.get("blob"):
        name = str(entry["blob"])
        layer = entry.get("layer")
        param = None
        owner, sep, j = name.rpartition("#")
        if sep and j.isdigit():
            layer, param = owner, int(j)
        return DumpFile(file, name, entry["kind"], None if param is not None else name,
                        layer, param)
    m = _FILE.match(file)
    if m is None:
        return None
    stem = urllib.parse.unquote(m["stem"])
    if m["param"] is not None:
        j = int(m["param"])
        return DumpFile(file, f"{stem}#{j}", m["kind"], None, stem, j)
    return DumpFile(file, stem, m["kind"], stem, None, None)


def layers_of_net(net: Any) -> list[LayerOrder]:
    """The forward order of a built :class:`~bpinspect.engine.net.Net`."""
    return [LayerOrder(name, layer.type, tuple(net.bottom_names[name]),
                       tuple(net.top_names[name]))
            for name, layer in zip(net.layer_names, net.layers, strict=True)]


def layers_of_prototxt(path: str | os.PathLike[str], phase: str = "test") -> list[LayerOrder]:
    """The forward order of a net file, as the Net would build it (phase filter and
    Split layers), without building it."""
    from bpinspect.engine.insert_splits import insert_splits
    from bpinspect.engine.net import _PHASES, filter_net
    from bpinspect.io.prototxt import load_net

    param = load_net(path)
    param.state.phase = _PHASES[phase]
    param = insert_splits(filter_net(param))
    return [LayerOrder(lp.name, lp.type, tuple(lp.bottom), tuple(lp.top)) for lp in param.layer]


# ---- a whole comparison ----------------------------------------------------------------


@dataclass(frozen=True)
class EntryComparison:
    """One array (a blob's or a param's data or diff) of both sides."""

    file: str
    name: str  # "conv1", or "conv1#0" for a param
    kind: str  # "data" | "diff"
    layer: str | None  # data: the layer that produced it; diff: the layer whose backward did
    status: str  # AGREE, DIFFER, SHAPE, ONLY_A, ONLY_B, PENDING
    result: ArrayComparison | None  # None when one side is missing
    order: tuple[Any, ...]  # the sort key of the pass order

    @property
    def differs(self) -> bool:
        """Values or shapes part (a missing array is not counted here)."""
        return self.status in (DIFFER, SHAPE)

    @property
    def missing(self) -> bool:
        return self.status in (ONLY_A, ONLY_B)


@dataclass(frozen=True)
class Divergence:
    """Where the runs part: a layer, and the first array of it that differs."""

    layer: str | None
    name: str  # the blob, or "layer#j" for a param
    kind: str  # "data" | "diff"
    entry: EntryComparison

    def describe(self) -> str:
        where = f"layer {self.layer!r}" if self.layer else "an array of no known layer"
        step = "forward" if self.kind == "data" else "backward"
        return f"{where} ({step}): {self.name} {self.kind}"


@dataclass(frozen=True)
class Comparison:
    """The report of :func:`compare_dumps` / :func:`compare_session`."""

    a: str  # what side A is (a directory, or "session")
    b: str
    rtol: float
    atol: float
    entries: list[EntryComparison]  # in pass order (see the module docstring)
    order_known: bool
    order_source: str  # "manifest of A", "net file X", ..., or "" when not known

    @property
    def differing(self) -> list[EntryComparison]:
        return [e for e in self.entries if e.differs]

    @property
    def missing(self) -> list[EntryComparison]:
        return [e for e in self.entries if e.missing]

    @property
    def first_data(self) -> Divergence | None:
        """The first array, in forward order, whose data differs."""
        return self._first("data")

    @property
    def first_diff(self) -> Divergence | None:
        """The first array, in backward order, whose diff differs."""
        return self._first("diff")

    @property
    def first(self) -> Divergence | None:
        """Where the runs part: :attr:`first_data` if any, else :attr:`first_diff`."""
        return self.first_data or self.first_diff

    def _first(self, kind: str) -> Divergence | None:
        for e in self.entries:
            if e.kind == kind and e.differs:
                return Divergence(e.layer, e.name, e.kind, e)
        return None

    def agree(self, ignore_missing: bool = False) -> bool:
        """Nothing differs (and, unless ``ignore_missing``, nothing is missing)."""
        return not self.differing and (ignore_missing or not self.missing)

    def by_name(self) -> dict[tuple[str, str], EntryComparison]:
        """``(name, kind) -> entry``, e.g. ``("conv1", "diff")``, ``("conv1#0", "data")``:
        what a blob table looks up to mark each blob."""
        return {(e.name, e.kind): e for e in self.entries}


Loader = Callable[[], Any]  # returns the array, or None when not computed yet


@dataclass(frozen=True)
class _Side:
    files: dict[str, DumpFile]
    load: Callable[[str], Any]


def _pass_order(layers: Sequence[LayerOrder] | None) -> Callable[[DumpFile], tuple[Any, ...]]:
    """Sort key and layer attribution of each array (see the module docstring)."""
    if layers is None:
        return lambda f: (2, f.name, f.kind)
    index = {lay.name: i for i, lay in enumerate(layers)}
    n = len(layers)
    producer: dict[str, int] = {}
    consumer: dict[str, int] = {}
    for i, lay in enumerate(layers):
        for t in lay.tops:
            producer[t] = i  # the last writer (an in-place layer)
        for b in lay.bottoms:
            consumer.setdefault(b, i)  # the last backward to write its diff is the first reader

    def key(f: DumpFile) -> tuple[Any, ...]:
        if f.param is not None:
            i = index.get(f.layer or "")
            if i is None:
                return (2, f.name, f.kind)
            return (0, i, 0, f.name) if f.kind == "data" else (1, -i, 1, f.name)
        blob = f.blob or f.name
        if f.kind == "data":
            return (0, producer[blob], 1, blob) if blob in producer else (2, blob, f.kind)
        if blob in consumer:
            return (1, -consumer[blob], 0, blob)
        if blob in producer:  # a top nobody reads: its diff is seeded or injected
            return (1, -n, 0, blob)
        return (2, blob, f.kind)

    return key


def _layer_of(f: DumpFile, layers: Sequence[LayerOrder] | None,
              order: tuple[Any, ...]) -> str | None:
    if f.param is not None:
        return f.layer
    if layers is None or order[0] == 2:
        return f.layer
    if f.kind == "data":
        return layers[order[1]].name
    i = -order[1]
    if i == len(layers):  # seeded or injected at the top of its producer
        return next(lay.name for lay in reversed(layers) if (f.blob or f.name) in lay.tops)
    return layers[i].name


def _compare(a_name: str, b_name: str, a: _Side, b: _Side, layers: Sequence[LayerOrder] | None,
             order_source: str, rtol: float, atol: float) -> Comparison:
    if rtol < 0 or atol < 0:
        raise BpinspectError(f"tolerances must not be negative (rtol {rtol}, atol {atol})")
    key = _pass_order(layers)
    entries = []
    for file in sorted(set(a.files) | set(b.files)):
        f = a.files.get(file) or b.files[file]
        order = key(f)
        layer = _layer_of(f, layers, order)
        if file not in b.files:
            entries.append(EntryComparison(file, f.name, f.kind, layer, ONLY_A, None, order))
            continue
        if file not in a.files:
            entries.append(EntryComparison(file, f.name, f.kind, layer, ONLY_B, None, order))
            continue
        x, y = a.load(file), b.load(file)
        if x is None or y is None:
            entries.append(EntryComparison(file, f.name, f.kind, layer, PENDING, None, order))
            continue
        r = compare_arrays(x, y, rtol, atol)
        status = SHAPE if not r.same_shape else AGREE if r.agree else DIFFER
        entries.append(EntryComparison(file, f.name, f.kind, layer, status, r, order))
    entries.sort(key=lambda e: e.order)
    return Comparison(a_name, b_name, rtol, atol, entries, layers is not None, order_source)


def compare_dumps(a: str | os.PathLike[str] | Dump, b: str | os.PathLike[str] | Dump, *,
                  rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                  layers: Sequence[LayerOrder] | None = None,
                  order_source: str = "") -> Comparison:
    """Compare every array of dump ``a`` with the one of the same file name in ``b``.

    The pass order is ``layers`` when given (e.g. :func:`layers_of_prototxt`), else
    the layers that A's manifest records, else B's; BpinspectError (naming the file)
    for a missing directory or an unreadable file.
    """
    da = a if isinstance(a, Dump) else read_dump(a)
    db = b if isinstance(b, Dump) else read_dump(b)
    if layers is None:
        if da.layers is not None:
            layers, order_source = da.layers, f"manifest of {da.directory}"
        elif db.layers is not None:
            layers, order_source = db.layers, f"manifest of {db.directory}"
    return _compare(str(da.directory), str(db.directory), _Side(da.files, da.load),
                    _Side(db.files, db.load), layers, order_source if layers else "", rtol, atol)


def session_files(session: Session) -> dict[str, tuple[DumpFile, Loader]]:
    """The arrays of a session under the file names that ``bpinspect dump`` gives them."""
    net = session.net
    out: dict[str, tuple[DumpFile, Loader]] = {}
    for blob in net.blobs:
        for kind in ("data", "diff"):
            f = DumpFile(final_file_name(blob, kind), blob, kind, blob, None, None)
            out[f.file] = (f, lambda b=blob, k=kind: session.array(b, k))
    for layer, params in net.params.items():
        for j in range(len(params)):
            for kind in ("data", "diff"):
                f = DumpFile(f"{encode_name(layer)}.param{j}.{kind}.npy", f"{layer}#{j}", kind,
                             None, layer, j)
                out[f.file] = (f, lambda n=layer, k=kind, p=j: session.array(n, k, param=p))
    return out


def compare_session(session: Session, dump: str | os.PathLike[str] | Dump, *,
                    rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                    names: Iterable[str] | None = None) -> Comparison:
    """Compare the session's current values (side A, on its device) with a dump (B).

    An array the session has not computed yet (a diff before the backward pass)
    is PENDING, not a difference. ``names`` limits the comparison to those blobs
    and params (``"conv1"``, ``"conv1#0"``), e.g. the ones a blob table shows.
    What a TUI opened with ``--compare DUMP`` calls after each step.
    """
    d = dump if isinstance(dump, Dump) else read_dump(dump)
    mine = session_files(session)
    keep = None if names is None else set(names)
    if keep is not None:
        mine = {k: v for k, v in mine.items() if v[0].name in keep}
        dfiles = {k: v for k, v in d.files.items() if v.name in keep}
    else:
        dfiles = d.files
    side_a = _Side({k: v[0] for k, v in mine.items()}, lambda file: mine[file][1]())
    side_b = _Side(dfiles, d.load)
    return _compare("session", str(d.directory), side_a, side_b, layers_of_net(session.net),
                    "the session's net", rtol, atol)
