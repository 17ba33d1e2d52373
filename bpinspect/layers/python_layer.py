"""Python layers (``type: "Python"``): the user's own class, run behind the layer contract.

Follows Caffe's ``include/caffe/layers/python_layer.hpp`` and pycaffe's
``Layer``/``Blob``/``BlobVec`` (``python/caffe/_caffe.cpp``)::

    layer { type: "Python" bottom: "pred" bottom: "label" top: "loss"
            python_param { module: "pyloss" layer: "EuclideanLossLayer"
                           param_str: "..." } loss_weight: 1 }

* The module is imported by name, from ``sys.path`` (``PYTHONPATH``), then
  the working directory, then the net file's directory (the last two are
  appended to ``sys.path`` when the module is found there).
* ``import caffe`` in the module: when no Caffe is importable, ``caffe``
  (and ``caffe.io``, ``caffe.proto``, ``caffe.proto.caffe_pb2``) resolve to
  ``bpinspect.caffe``, whose ``Layer`` is :class:`Layer` below; a Caffe
  that is installed is left alone.
* The class is called with the LayerParameter, then gets ``param_str`` and
  ``phase`` (0 TRAIN, 1 TEST: :data:`TRAIN`/:data:`TEST`), then
  ``setup(bottom, top)`` and ``reshape(bottom, top)`` (Caffe's SetUp).
  Every forward first calls ``reshape(bottom, top)``, as Caffe's
  ``Layer::Forward`` does, then ``forward(bottom, top)``; backward calls
  ``backward(top, propagate_down, bottom)``.
* ``self.blobs`` holds the learnable params, added in ``setup`` with
  ``self.blobs.add_blob(*shape)`` and filled by the user's code; the net
  makes them its params (``lr_mult``, shared names and ``.caffemodel``
  weights apply as for any layer).
* The blobs passed in are pycaffe's :class:`Blob` views with ``data``,
  ``diff`` (NumPy arrays, written in place), ``shape``, ``num``,
  ``channels``, ``height``, ``width``, ``count`` and ``reshape(*shape)``. On
  a GPU the user's code still gets NumPy arrays (pycaffe's Python layers
  run on the CPU): they are copied to the host before the call and back
  after it.
* An exception in the user's code becomes a :class:`LayerCodeError` naming
  the layer, module and class, with the traceback of the user's frames only.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from bpinspect import backend
from bpinspect.errors import BpinspectError, LayerCodeError
from bpinspect.layers import base
from bpinspect.layers.registry import register
from bpinspect.proto import caffe_pb2

__all__ = ["TEST", "TRAIN", "Blob", "BlobVec", "Layer", "Phase", "PythonLayer"]

Shape = tuple[int, ...]


class Phase(enum.IntEnum):
    """Caffe's Phase as pycaffe gives it to a Python layer (``self.phase``)."""

    TRAIN = caffe_pb2.TRAIN
    TEST = caffe_pb2.TEST


TRAIN = Phase.TRAIN
TEST = Phase.TEST

_PHASE_OF = {"train": Phase.TRAIN, "test": Phase.TEST}


# ---- pycaffe's Blob, BlobVec and Layer ---------------------------------------------


class Staging:
    """Host copies of device arrays, for code that must see NumPy (pycaffe's CPU view).

    ``array(blob, "data")`` gives the blob's array: itself on the CPU, or a host
    copy made once and kept; ``flush()`` copies every host copy back into the
    device array in place and forgets them. Without a device (``active`` false)
    nothing is copied.
    """

    def __init__(self, active: bool) -> None:
        self.active = active
        self._copies: dict[tuple[int, str], tuple[Any, np.ndarray]] = {}

    def array(self, blob: Any, kind: str) -> Any:
        device_array = getattr(blob, kind)
        if not self.active:
            return device_array
        key = (id(blob), kind)
        held = self._copies.get(key)
        if held is None or held[0] is not blob or held[1].shape != device_array.shape:
            held = (blob, np.array(backend.to_host(device_array)))
            self._copies[key] = held
        return held[1]

    def forget(self, blob: Any) -> None:
        for kind in ("data", "diff"):
            self._copies.pop((id(blob), kind), None)

    def flush(self) -> None:
        for (_, kind), (blob, host) in self._copies.items():
            target = getattr(blob, kind)
            if target.shape == host.shape:
                target[...] = backend.get_array_module(target).asarray(host)
        self._copies.clear()


def _legacy_dim(shape: Shape, axis: int) -> int:
    """Blob::LegacyShape: a missing axis counts as 1 (for blobs of up to 4 axes)."""
    if len(shape) > 4:
        raise BpinspectError(
            f"blob of shape {shape}: num/channels/height/width are only defined for "
            "blobs of up to 4 axes; use .shape"
        )
    return shape[axis] if axis < len(shape) else 1


class Blob:
    """pycaffe's ``caffe.Blob``: a view of one of bpinspect's blobs.

    ``data`` and ``diff`` are the blob's arrays (assigning to them copies the
    values in); ``reshape(*shape)`` reallocates them, zeroed, when the shape
    changes.
    """

    def __init__(self, blob: Any, staging: Staging | None = None) -> None:
        self._blob = blob
        self._staging = staging if staging is not None else Staging(False)

    @property
    def data(self) -> Any:
        return self._staging.array(self._blob, "data")

    @data.setter
    def data(self, value: Any) -> None:
        self.data[...] = value

    @property
    def diff(self) -> Any:
        return self._staging.array(self._blob, "diff")

    @diff.setter
    def diff(self, value: Any) -> None:
        self.diff[...] = value

    @property
    def shape(self) -> Shape:
        return tuple(int(d) for d in self._blob.shape)

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def num(self) -> int:
        return _legacy_dim(self.shape, 0)

    @property
    def channels(self) -> int:
        return _legacy_dim(self.shape, 1)

    @property
    def height(self) -> int:
        return _legacy_dim(self.shape, 2)

    @property
    def width(self) -> int:
        return _legacy_dim(self.shape, 3)

    def reshape(self, *shape: Any) -> None:
        """``blob.reshape(n, c, h, w)`` (or one tuple): any number of axes."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise BpinspectError(f"Blob.reshape{shape}: the dimensions must be integers") from None
        if any(d < 0 for d in dims):
            raise BpinspectError(f"Blob.reshape{dims}: the dimensions must not be negative")
        self._staging.forget(self._blob)
        self._blob.reshape(dims)

    def __repr__(self) -> str:
        return f"<caffe Blob {getattr(self._blob, 'name', '?')!r} shape {self.shape}>"


class _HostBlob:
    """A blob of NumPy arrays that no net owns: what a Python layer's setup sees
    (zeroed bottoms of the right shapes, unshaped tops) and what ``add_blob`` makes."""

    def __init__(self, name: str, shape: Shape | None, dtype: Any = np.float32) -> None:
        self.name = name
        self.shaped = shape is not None
        self.data = np.zeros(shape or (0,), dtype=dtype)
        self.diff = np.zeros(shape or (0,), dtype=dtype)

    @property
    def shape(self) -> Shape:
        return tuple(int(d) for d in self.data.shape)

    def reshape(self, shape: Shape) -> None:
        self.shaped = True
        if tuple(shape) != self.shape:
            self.data = np.zeros(shape, dtype=self.data.dtype)
            self.diff = np.zeros(shape, dtype=self.diff.dtype)


class BlobVec(list):
    """pycaffe's ``BlobVec``: a Python layer's learnable blobs (``self.blobs``)."""

    def add_blob(self, *shape: Any) -> None:
        """Append a zeroed blob of ``shape`` (Caffe's ``BlobVec.add_blob``)."""
        blob = Blob(_HostBlob(f"blobs[{len(self)}]", ()))
        blob.reshape(*shape)
        self.append(blob)


class Layer:
    """pycaffe's ``caffe.Layer``: the base class of a Python layer.

    A subclass defines ``setup(bottom, top)``, ``reshape(bottom, top)``,
    ``forward(bottom, top)`` and ``backward(top, propagate_down, bottom)``;
    before ``setup`` the layer gets ``param_str`` and ``phase``.
    """

    type = "Python"

    def __init__(self, param: Any = None) -> None:
        self.param_str: str = ""
        self.phase: Phase = Phase.TEST
        self.blobs: BlobVec = BlobVec()

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """LayerSetUp: check the bottoms, read ``param_str``, add ``blobs``."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Shape the tops (``top[i].reshape(*shape)``) from the bottoms."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no forward(bottom, top)")

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} defines no backward(top, propagate_down, bottom)"
        )


# ---- `import caffe` without Caffe ---------------------------------------------------

_FACADE = "bpinspect.caffe"
# pycaffe's submodules a layer or script imports by name (``from caffe.coord_map import
# crop``): each is the facade's own, not a second copy under another name.
_FACADE_MODULES = ("", ".io", ".proto", ".proto.caffe_pb2", ".net_spec", ".classifier",
                   ".detector", ".draw", ".coord_map")


def provide_caffe_module() -> bool:
    """Let ``import caffe`` find bpinspect's facade when no Caffe is importable.

    Registers ``caffe``, ``caffe.io``, ``caffe.proto``, ``caffe.proto.caffe_pb2`` and
    pycaffe's other submodules in ``sys.modules`` as the modules of
    ``bpinspect.caffe``; a ``caffe`` already imported, or one that an import
    would find on ``sys.path``, is left alone. True when the facade is (now)
    what ``import caffe`` gives.
    """
    present = sys.modules.get("caffe")
    if present is not None:
        return getattr(present, "__name__", "") == _FACADE
    try:
        if importlib.util.find_spec("caffe") is not None:
            return False
    except (ImportError, ValueError):
        return False
    for suffix in _FACADE_MODULES:
        sys.modules["caffe" + suffix] = importlib.import_module(_FACADE + suffix)
    return True


def _is_real_caffe_layer(cls: type) -> bool:
    """A subclass of an installed Caffe's ``caffe.Layer`` (Boost.Python's
    ``caffe._caffe.Layer``), which bpinspect cannot construct."""
    return any(
        klass.__module__ in ("caffe", "caffe._caffe") and klass.__name__ == "Layer"
        for klass in getattr(cls, "__mro__", ())[1:]
    ) and not issubclass(cls, Layer)


# ---- the user's frames ------------------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bpinspect_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path == _PACKAGE_DIR or path.startswith(_PACKAGE_DIR + os.sep)


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without bpinspect's own frames (nor importlib's)."""
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__)
        if not _bpinspect_frame(frame.filename) and not frame.filename.startswith("<frozen ")
    ]
    lines = ["Traceback (most recent call last; bpinspect's frames left out):\n"]
    lines += traceback.StackSummary.from_list(frames).format()
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- the layer --------------------------------------------------------------------


@register("Python")
class PythonLayer(base.Layer):
    """Runs ``python_param { module layer param_str }``'s class; see the module docstring.

    ``internals()`` gives the user's layer's public array attributes (pyloss's
    ``self.diff``, which its backward reuses), read-only; the object itself is
    ``user_layer``.
    """

    def __init__(self, param: Any, phase: base.Phase = "test") -> None:
        self._user: Any = None
        self._engine_blobs: list[Any] = []
        super().__init__(param, phase)
        pp = param.python_param
        self.module_name: str = pp.module
        self.class_name: str = pp.layer
        self.param_str: str = pp.param_str
        if not self.module_name or not self.class_name:
            self.fail("python_param needs both module and layer (the class name)")

    # The learnable params: the net gives its Blobs here after setup; the user's
    # values (set in its setup) are copied into them, and the user's layer sees them.
    @property  # type: ignore[override]
    def blobs(self) -> list[Any]:
        return self._engine_blobs

    @blobs.setter
    def blobs(self, blobs: list[Any]) -> None:
        self._engine_blobs = list(blobs)
        user = self._user
        if user is None or not blobs:
            return
        own = list(user.blobs)
        for engine_blob, view in zip(self._engine_blobs, own, strict=False):
            initial = view.data
            if isinstance(view, Blob) and isinstance(view._blob, _HostBlob):
                xp = backend.get_array_module(engine_blob.data)
                engine_blob.data[...] = xp.asarray(initial.reshape(engine_blob.shape))
        user.blobs[:] = [Blob(b) for b in self._engine_blobs]

    @property
    def user_layer(self) -> Any:
        """The user's layer object (None before setup)."""
        return self._user

    def internals(self) -> dict[str, Any]:
        out = {}
        for name, value in vars(self._user).items() if self._user is not None else ():
            if not name.startswith("_") and isinstance(value, np.ndarray):
                view = value.view()
                view.flags.writeable = False
                out[name] = view
        return out

    def _where(self) -> str:
        return f"layer {self.name!r} (Python: module {self.module_name}, class {self.class_name})"

    def param_fillers(self) -> list[Any]:
        # Constant 0 (no seeded MSRA filler): the user's setup gives the values.
        return [caffe_pb2.FillerParameter(type="constant") for _ in self.param_shapes]

    # -- loading ------------------------------------------------------------------
    def _search_dirs(self) -> list[str]:
        dirs = [os.getcwd()]
        if self.base_dir:
            dirs.append(os.path.abspath(self.base_dir))
        return dirs

    def _import_module(self) -> Any:
        provide_caffe_module()
        name = self.module_name
        top = name.partition(".")[0]
        if name not in sys.modules and _find(top) is None:
            for directory in self._search_dirs():
                if os.path.exists(os.path.join(directory, top + ".py")) or os.path.isdir(
                    os.path.join(directory, top)
                ):
                    if directory not in sys.path:
                        sys.path.append(directory)
                    importlib.invalidate_caches()
                    break
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise BpinspectError(
                    f"{self._where()}: no module named {name!r} on sys.path (PYTHONPATH), in "
                    f"the working directory or in {self.base_dir or 'the net file directory'}"
                ) from None
            raise self._code_error("importing the module raised", exc) from None
        except Exception as exc:
            raise self._code_error("importing the module raised", exc) from None

    def _make_user_layer(self) -> Any:
        module = self._import_module()
        cls = getattr(module, self.class_name, None)
        where = getattr(module, "__file__", None) or self.module_name
        if cls is None:
            raise BpinspectError(f"{self._where()}: {where} has no {self.class_name!r}")
        if _is_real_caffe_layer(cls):
            raise BpinspectError(
                f"{self._where()}: the class subclasses the caffe.Layer of the Caffe installed "
                f"at {sys.modules['caffe'].__file__}, which only Caffe can run; bpinspect runs "
                "Python layers that subclass bpinspect.caffe.Layer, which `import caffe` gives "
                "where no Caffe is importable"
            )
        user = self._call("constructing the layer", lambda: cls(self.param))
        if not isinstance(getattr(user, "blobs", None), BlobVec):
            user.blobs = BlobVec(getattr(user, "blobs", None) or [])
        return user

    # -- the contract -------------------------------------------------------------
    def _code_error(self, what: str, exc: BaseException) -> LayerCodeError:
        error = LayerCodeError(f"{self._where()}: {what} {_one_line(exc)}", user_traceback(exc))
        error.original = exc  # what the user's code raised, for a script to look at
        return error

    def _call(self, what: str, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except LayerCodeError:
            raise
        except Exception as exc:
            raise self._code_error(f"{what} raised", exc) from None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        bottom = [Blob(_HostBlob(f"bottom[{i}]", tuple(s))) for i, s in enumerate(bottom_shapes)]
        tops = [_HostBlob(f"top[{j}]", None) for j in range(len(self.param.top))]
        top = [Blob(t) for t in tops]
        if self._user is None:
            user = self._make_user_layer()
            user.param_str = self.param_str
            user.phase = _PHASE_OF.get(self.phase, Phase.TEST)
            self._call("setup(bottom, top)", lambda: user.setup(bottom, top))
            self._user = user
            self.param_shapes = [tuple(b.shape) for b in user.blobs]
        self._call("reshape(bottom, top)", lambda: self._user.reshape(bottom, top))
        unshaped = [j for j, t in enumerate(tops) if not t.shaped]
        if unshaped:
            self.fail(
                f"module {self.module_name}, class {self.class_name}: setup/reshape left "
                f"top {', '.join(map(str, unshaped))} without a shape; call "
                "top[i].reshape(*shape) in reshape(bottom, top)"
            )
        return [t.shape for t in tops]

    def _views(self, *vecs: list[Any]) -> tuple[Staging, list[list[Blob]]]:
        arrays = [b.data for vec in vecs for b in vec] + [b.data for b in self._engine_blobs]
        on_device = any(backend.get_array_module(a) is not np for a in arrays)
        staging = Staging(on_device)
        self._user.blobs[:] = [Blob(b, staging) for b in self._engine_blobs]
        return staging, [[Blob(b, staging) for b in vec] for vec in vecs]

    def forward(self, bottom: list[Any], top: list[Any]) -> None:
        staging, (b, t) = self._views(bottom, top)
        try:
            self._call("reshape(bottom, top)", lambda: self._user.reshape(b, t))
            self._call("forward(bottom, top)", lambda: self._user.forward(b, t))
        finally:
            staging.flush()

    def backward(self, top: list[Any], propagate_down: list[bool], bottom: list[Any]) -> None:
        staging, (t, b) = self._views(top, bottom)
        down = [bool(p) for p in propagate_down]
        try:
            self._call("backward(top, propagate_down, bottom)",
                       lambda: self._user.backward(t, down, b))
        finally:
            staging.flush()


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def blob_views(blobs: Iterable[Any], staging: Staging | None = None) -> list[Blob]:
    """pycaffe views of engine blobs (for the facade)."""
    return [Blob(b, staging) for b in blobs]
