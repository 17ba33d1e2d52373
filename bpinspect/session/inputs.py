"""Input blobs from files: ``.npy`` arrays as they are, images the way
pycaffe's ``caffe.io.Transformer`` prepares them for CaffeNet (resize to the
blob's H x W, RGB to BGR, 0..255, minus the mean, channels first)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpinspect.errors import BpinspectError

Shape = tuple[int, ...]


def parse_mean(text: str | None, channels: int) -> np.ndarray | None:
    """``--mean``: ``B,G,R`` numbers, or a ``.npy``/``.binaryproto`` file.

    Returns a per-channel vector (C,) or a (C, H, W) array.
    """
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) > 1 or _is_number(text):
        try:
            values = np.array([float(p) for p in parts], np.float32)
        except ValueError:
            raise BpinspectError(f"--mean {text}: expected B,G,R numbers or a file") from None
        if len(values) == 1:
            values = np.repeat(values, channels)
        if len(values) != channels:
            raise BpinspectError(
                f"--mean {text}: {len(values)} values for an input of {channels} channels"
            )
        return values
    path = Path(text).expanduser()
    if not path.exists():
        raise BpinspectError(f"--mean {text}: no such file")
    if path.suffix == ".binaryproto":
        from bpinspect.io.caffemodel import read_binaryproto

        mean = np.asarray(read_binaryproto(path), np.float32)
    else:
        try:
            mean = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise BpinspectError(f"--mean {text}: cannot read it as .npy: {exc}") from None
    while mean.ndim > 3 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim not in (1, 3) or mean.shape[0] != channels:
        raise BpinspectError(
            f"--mean {text}: shape {mean.shape}, expected ({channels},) or ({channels}, H, W)"
        )
    return mean


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_input(path: str | os.PathLike[str], shape: Shape, mean: np.ndarray | None,
               name: str = "?") -> np.ndarray:
    """The array for input blob ``name`` of ``shape`` from a ``.npy`` or an image file."""
    p = Path(path).expanduser()
    where = f"--input {name}={path}"
    if not p.exists():
        raise BpinspectError(f"{where}: no such file")
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise BpinspectError(f"{where}: cannot read it as .npy: {exc}") from None
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            raise BpinspectError(f"{where}: not a numeric .npy array")
        return a
    return load_image(p, shape, mean, where)


def load_image(path: Path, shape: Shape, mean: np.ndarray | None, where: str) -> np.ndarray:
    """(C, H, W) float32, BGR, 0..255 minus ``mean``: caffe.io.Transformer's CaffeNet recipe."""
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 4 or shape[1] not in (1, 3):
        raise BpinspectError(
            f"{where}: an image fits an (N, 3, H, W) or (N, 1, H, W) blob, this one is {shape}"
        )
    channels, height, width = shape[1], shape[2], shape[3]
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            img = img.resize((width, height), Image.Resampling.BILINEAR)
            a = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise BpinspectError(f"{where}: not an image or .npy file ({exc})") from None
    a = a[:, :, ::-1].transpose(2, 0, 1) if channels == 3 else a[None]  # RGB -> BGR, CHW
    if mean is not None:
        if mean.ndim == 3 and mean.shape[1:] != (height, width):
            mean = mean.reshape(channels, -1).mean(axis=1)  # per channel, as the examples do
        a = a - (mean[:, None, None] if mean.ndim == 1 else mean)
    return np.ascontiguousarray(a, dtype=np.float32)
