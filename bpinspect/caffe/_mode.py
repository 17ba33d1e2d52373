"""pycaffe's global mode: CPU or GPU, the device id, the random seed.

``caffe.set_mode_gpu()`` / ``caffe.set_device(n)`` choose where the nets
built afterwards run (bpinspect's CuPy backend); ``set_random_seed`` seeds
their fillers and stochastic layers. Nets already built keep their device.
"""

from __future__ import annotations

from bpinspect.backend import CPU, Device, select_device

_state: dict[str, int | bool | None] = {"gpu": False, "device": 0, "seed": None}


def set_mode_cpu() -> None:
    """Run the nets built from now on with NumPy."""
    _state["gpu"] = False


def set_mode_gpu() -> None:
    """Run the nets built from now on on the GPU (CuPy); an error there if none."""
    _state["gpu"] = True


def set_device(device_id: int) -> None:
    """The GPU that ``set_mode_gpu`` nets use."""
    _state["device"] = int(device_id)


def set_random_seed(seed: int) -> None:
    """The seed of the fillers and stochastic layers of the nets built from now on."""
    _state["seed"] = int(seed)


def current_device() -> Device:
    if not _state["gpu"]:
        return CPU
    return select_device(f"gpu:{_state['device']}")


def current_seed() -> int:
    """The seed set by ``set_random_seed`` (0 before, bpinspect's default)."""
    seed = _state["seed"]
    return 0 if seed is None else int(seed)


def seed_was_set() -> bool:
    return _state["seed"] is not None
