"""The list files that name a data layer's inputs, parsed as Caffe parses them.

- ``ImageData``'s ``source`` (``image_data_layer.cpp``, ``DataLayerSetUp``):
  one item per line, ``path label``, split at the **last** space, so a path
  may hold spaces; the label is ``atoi`` of what follows (leading blanks
  and a sign, then digits; 0 when there are none; a line without a space is
  all path, and its label is ``atoi`` of the whole line). Every line counts,
  an empty one too (Caffe would then fail to load the image ``""``).
- ``HDF5Data``'s ``source`` (``hdf5_data_layer.cpp``, ``LayerSetUp``): file
  names separated by any whitespace (``source_file >> line``), so a name
  cannot hold a space.

A list that cannot be read, or names nothing, is a one-line error naming the
layer, the kind of list and the path.
"""

from __future__ import annotations

import re

from bpinspect.errors import BpinspectError

__all__ = ["atoi", "read_hdf5_list", "read_image_list"]

_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def atoi(text: str) -> int:
    """C's ``atoi``: an optional sign and digits after leading whitespace, else 0
    (wrapped to 32 bits, as an ``int``)."""
    match = _ATOI.match(text)
    if not match:
        return 0
    value = int(match.group(1))
    return (value + 2**31) % 2**32 - 2**31


def _read_text(path: str, what: str, where: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        reason = "No such file or directory"
    except IsADirectoryError:
        reason = "Is a directory"
    except OSError as e:
        reason = e.strerror or str(e)
    else:
        return raw.decode("utf-8", errors="surrogateescape")
    raise BpinspectError(f"{where}: cannot open {what} source {path!r}: {reason}")


def read_image_list(path: str, where: str, display: str | None = None) -> list[tuple[str, int]]:
    """``(path, label)`` per line of an ImageData list file (``display`` names it)."""
    name = display or path
    text = _read_text(path, "image list", where)
    lines = text.split("\n")
    if lines and lines[-1] == "":  # getline gives no line after the last newline
        lines.pop()
    items: list[tuple[str, int]] = []
    for line in lines:
        pos = line.rfind(" ")
        if pos < 0:  # find_last_of gives npos: the path is the line, atoi reads it all
            items.append((line, atoi(line)))
        else:
            items.append((line[:pos], atoi(line[pos + 1:])))
    if not items:
        raise BpinspectError(f"{where}: image list source {name!r} is empty")
    return items


def read_hdf5_list(path: str, where: str, display: str | None = None) -> list[str]:
    """The file names in an HDF5Data list file, in order."""
    name = display or path
    names = _read_text(path, "HDF5 list", where).split()
    if not names:
        raise BpinspectError(f"{where}: HDF5 list source {name!r} names no HDF5 file "
                             "(Caffe needs at least one)")
    return names
