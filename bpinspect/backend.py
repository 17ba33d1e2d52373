"""Which array module runs the math: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports cupy. Layer code asks for the module of
its inputs (``get_array_module``) and is written once against it; only this
module knows how to choose a device, wait for it, and copy to the host.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpinspect.errors import BpinspectError

Array = Any  # numpy.ndarray or cupy.ndarray


def _cupy() -> types.ModuleType | None:
    try:
        import cupy
    except Exception:  # ImportError, or a CUDA library that fails to load
        return None
    return cupy


def get_array_module(*arrays: Any) -> types.ModuleType:
    """numpy, or cupy when any argument is a CuPy array (as chainer's backend)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


def to_host(a: Array) -> np.ndarray:
    """A NumPy copy (or view, on the CPU) of an array from either module."""
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def synchronize(xp: types.ModuleType) -> None:
    """Wait for queued device work (a no-op on the CPU), e.g. around a timing."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def rng(seed: int, xp: types.ModuleType = np) -> Any:
    """A seeded generator of the module's own kind; never the global state."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


@dataclass(frozen=True)
class Device:
    """Where a net runs: the array module and a name to show the user."""

    xp: types.ModuleType
    name: str
    index: int | None = None

    @property
    def is_gpu(self) -> bool:
        return self.xp is not np

    def asarray(self, a: Any, dtype: Any = np.float32) -> Array:
        """Copy host data onto this device (a no-op copy-free view on the CPU)."""
        return self.xp.asarray(a, dtype=dtype)

    def use(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which this device is CuPy's current one (nothing on the CPU)."""
        if self.is_gpu:
            return self.xp.cuda.Device(self.index)
        return contextlib.nullcontext()


CPU = Device(np, "CPU (NumPy)")


def gpu_count() -> int:
    cupy = _cupy()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def gpu_free_memory(device: Device) -> int | None:
    """Bytes a new allocation on ``device`` can get: the driver's free memory plus
    what CuPy's pool holds unused; None when CuPy cannot say."""
    cupy = _cupy()
    if cupy is None or not device.is_gpu:
        return None
    try:
        with device.use():
            free, _total = cupy.cuda.runtime.memGetInfo()
            return int(free) + int(cupy.get_default_memory_pool().free_bytes())
    except Exception:
        return None


def _gpu_device(index: int) -> Device:
    cupy = _cupy()
    assert cupy is not None
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    if isinstance(name, bytes):
        name = name.decode()
    return Device(cupy, f"GPU {index}: {name} (CuPy)", index)


def select_device(spec: str = "auto") -> Device:
    """Parse ``--device``: auto | cpu | gpu | gpu:N."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return CPU
    if spec == "auto":
        return _gpu_device(0) if gpu_count() > 0 else CPU
    if spec == "gpu" or spec.startswith("gpu:"):
        index_text = spec.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise BpinspectError(f"--device {spec}: expected gpu:N with N a number")
        index = int(index_text)
        if _cupy() is None:
            raise BpinspectError(
                f"--device {spec}: CuPy is not installed (pip install -e '.[gpu]')"
            )
        count = gpu_count()
        if index >= count:
            raise BpinspectError(f"--device {spec}: no such GPU ({count} found)")
        return _gpu_device(index)
    raise BpinspectError(f"--device {spec}: expected auto, cpu, gpu or gpu:N")
