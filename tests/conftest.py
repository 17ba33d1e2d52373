"""Shared fixtures: ``xp`` runs a test body on NumPy, and on CuPy where a GPU is."""

from __future__ import annotations

import pytest

from bpinspect import backend


def _xp_params() -> list:
    params = [pytest.param("numpy", id="numpy")]
    gpu_reason = None
    if backend._cupy() is None:
        gpu_reason = "CuPy is not installed (pip install -e '.[gpu]')"
    elif backend.gpu_count() == 0:
        gpu_reason = "CuPy is installed but no GPU is visible"
    marks = [pytest.mark.gpu]
    if gpu_reason:
        marks.append(pytest.mark.skip(reason=gpu_reason))
    params.append(pytest.param("cupy", id="cupy", marks=marks))
    return params


@pytest.fixture(params=_xp_params())
def xp(request):
    """The array module under test: numpy always, cupy when a GPU is present."""
    if request.param == "numpy":
        import numpy

        return numpy
    import cupy

    return cupy


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bpinspect fuzz", "tests/test_fuzz.py")
    group.addoption("--fuzz-cases", type=int, default=None, metavar="N",
                    help="cases of tests/test_fuzz.py in all (default 600; also "
                         "BPINSPECT_FUZZ_CASES)")
    group.addoption("--fuzz-seed", type=int, default=None, metavar="S",
                    help="seed of tests/test_fuzz.py (default 0; also BPINSPECT_FUZZ_SEED)")
