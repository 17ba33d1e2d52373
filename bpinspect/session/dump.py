"""``bpinspect dump``'s work, without its printing: a full pass with the
statistics of what each step produced (Caffe's ``debug_info``), and the final
values of every blob and param written to ``.npy``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bpinspect.io.files import make_directory
from bpinspect.session.export import ExportItem, encode_name, export_items, final_file_name
from bpinspect.session.schedule import FORWARD, Step
from bpinspect.session.session import Cancel, Progress, Session
from bpinspect.session.stats import BlobStats
from bpinspect.session.units import UNIT_LAYER_TYPES, UnitRow, unit_row


@dataclass(frozen=True)
class StatRow:
    step: Step
    blob: str  # a blob, or "layer#i" for a param
    kind: str  # "data" | "diff"
    stats: BlobStats | None  # None for a skipped step (then ``blob`` is "")


def run_pass(session: Session, progress: Progress | None = None,
             cancel: Cancel | None = None, units: list[UnitRow] | None = None) -> list[StatRow]:
    """Run the rest of the pass; the statistics of each step's outputs, taken
    right after that step (before an in-place layer overwrites them). With a
    ``units`` list, each ReLU, Sigmoid and TanH forward step appends its dead or
    saturated units to it (``bpinspect.session.units``), taken then too."""
    by_step: dict[int, list[StatRow]] = {}
    total = sum(1 for s in session.schedule[session.cursor:] if not s.skipped)
    done = 0
    while not session.at_end:
        if cancel is not None and cancel():
            break
        result = session.step()
        if result is None:
            break
        rows = by_step.setdefault(result.step.index, [])
        for name, kind, param in result.produced:
            label = name if param is None else f"{name}#{param}"
            rows.append(StatRow(result.step, label, kind, session.stats(name, kind, param=param)))
        step = result.step
        if units is not None and step.direction == FORWARD and step.layer_type in UNIT_LAYER_TYPES:
            top = session.net.top_names[step.layer_name][0]
            units.append(unit_row(step.layer_name, step.layer_type, top,
                                  session.net.blobs[top].data, step=step.index))
        done += 1
        if progress is not None:
            progress(done, total, result.step)
    out: list[StatRow] = []
    for step in session.schedule:
        if step.skipped:
            out.append(StatRow(step, "", "", None))
        else:
            out.extend(by_step.get(step.index, []))
    return out


def write_final(session: Session, directory: str | os.PathLike[str],
                overwrite: bool = False) -> list[Path]:
    """Every blob's current data and diff, every param's data and diff, and
    manifest.json, into ``directory`` (created when missing)."""
    d = make_directory(directory, "--out")
    net = session.net
    items: list[ExportItem] = []
    for blob in net.blobs:
        layer = net.layer_names[net.producer_index(blob)]
        for kind in ("data", "diff"):
            a = getattr(net.blobs[blob], kind)
            items.append(ExportItem(final_file_name(blob, kind), a, blob, layer, None, None, kind))
    for layer, params in net.params.items():
        for j, p in enumerate(params):
            for kind in ("data", "diff"):
                items.append(ExportItem(
                    f"{encode_name(layer)}.param{j}.{kind}.npy", getattr(p, kind),
                    f"{layer}#{j}", layer, None, None, kind,
                ))
    header = session.manifest_header()
    # The forward order, so that ``bpinspect diff`` can say where two dumps part.
    header["layers"] = [
        {"name": name, "type": layer.type, "bottoms": list(net.bottom_names[name]),
         "tops": list(net.top_names[name])}
        for name, layer in zip(net.layer_names, net.layers, strict=True)
    ]
    return export_items(d, items, overwrite=overwrite, header=header)
