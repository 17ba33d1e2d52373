"""What machine a benchmark ran on: the CPU, and the BLAS NumPy uses with its kernel.

Shared by the benchmarks, which print it beside their figures.
"""

from __future__ import annotations

import os
import platform
import subprocess

import numpy as np

__all__ = ["blas_line", "cpu_name", "forced_kernel_warning"]


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def blas_line() -> str:
    """Which BLAS NumPy runs and its kernel (threadpoolctl when importable, else
    NumPy's build configuration, which does not know the kernel)."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                   if k in os.environ) or "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                return (f"{info.get('internal_api')} {info.get('version')} "
                        f"({info.get('prefix')}), kernel {info.get('architecture', '?')}, "
                        f"{info.get('num_threads')} threads; {env}")
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return (f"{blas.get('name')} {blas.get('version')} (kernel unknown without "
                f"threadpoolctl); {env}")
    except (TypeError, KeyError):
        return f"unknown (see numpy.show_config()); {env}"


def forced_kernel_warning() -> str:
    """A warning when OPENBLAS_CORETYPE forces a kernel (this machine's environment sets
    an older one than its CPU has, which slows NumPy's BLAS by about a third)."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced:
        return ""
    return (f"warning: OPENBLAS_CORETYPE={forced} forces that OpenBLAS kernel; unset it "
            "(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE) to time the kernel NumPy picks")
