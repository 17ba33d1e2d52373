"""``bpinspect time NET``: ``caffe time``'s benchmark and table: per layer the mean
forward and backward time over N iterations (after a warm-up pass), the memory of
its tops and params, and the Average Forward pass / Backward pass /
Forward-Backward and Total Time lines."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bpinspect.session.layer_cost import TimeReport

DEFAULT_ITERATIONS = 50  # caffe time's default


def add_time_arguments(p: argparse.ArgumentParser) -> None:
    from bpinspect.cli import MAX_MEMORY_HELP

    p.add_argument("net", metavar="NET.prototxt", help="the net (text prototxt)")
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, metavar="N",
                   help=f"timed forward-backward passes (default {DEFAULT_ITERATIONS}, as "
                        "caffe time)")
    p.add_argument("--warmup", type=int, default=1, metavar="K",
                   help="untimed passes first (default 1, as caffe time)")
    p.add_argument("--phase", choices=("train", "test"), default="train",
                   help="which layers the net keeps (default train, as caffe time)")
    p.add_argument("--weights", metavar="W.caffemodel",
                   help="trained weights (default: a seeded MSRA filler)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE",
                   help="an input blob from an image or a .npy (repeatable); default: "
                        "seeded noise")
    p.add_argument("--mean", metavar="B,G,R|FILE",
                   help="mean subtracted from image inputs")
    p.add_argument("--device", default="auto", metavar="auto|cpu|gpu|gpu:N",
                   help="where the math runs (default auto: the first GPU if CuPy sees one)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weight filler, dropout masks and random inputs (default 0)")
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def print_report(report: TimeReport, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bpinspect.cli import _console
    from bpinspect.engine.memory import format_bytes

    console = _console()
    console.print(title, markup=False)
    console.print(f"  device: {report.device}", markup=False)
    console.print(f"  {report.warmup} warm-up pass(es), then {report.iterations} timed "
                  f"iteration(s); initial loss {report.initial_loss:.6g}", markup=False)
    table = Table(title="Average time per layer", title_justify="left", box=None,
                  header_style="bold", pad_edge=False, title_style="bold")
    for col, justify in (("layer", "left"), ("type", "left"), ("forward ms", "right"),
                         ("backward ms", "right"), ("tops", "right"), ("params", "right"),
                         ("", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for c in report.layers:
        note = "" if c.need_backward else "no backward"
        if c.in_place:
            note = ", ".join(filter(None, [note, f"in place: {', '.join(c.in_place)}"]))
        table.add_row(escape(c.name), escape(c.type), _ms(c.forward_mean_ms),
                      _ms(c.backward_mean_ms) if c.need_backward else "-",
                      format_bytes(c.top_bytes), format_bytes(c.param_bytes) if c.param_bytes
                      else "", escape(note))
    console.print()
    console.print(table)
    console.print()
    console.print(f"Average Forward pass: {report.forward_ms:.3f} ms.", markup=False)
    console.print(f"Average Backward pass: {report.backward_ms:.3f} ms.", markup=False)
    console.print(f"Average Forward-Backward: {report.forward_backward_ms:.3f} ms.",
                  markup=False)
    console.print(f"Total Time: {report.total_ms:.3f} ms.", markup=False)
    console.print(f"Memory: tops {format_bytes(report.top_bytes)}, params "
                  f"{format_bytes(report.param_bytes)} (data and diff)", markup=False)


def run_time(options: argparse.Namespace) -> int:
    from bpinspect.errors import BpinspectError
    from bpinspect.session.layer_cost import time_net
    from bpinspect.session.options import session_from_options

    if options.iterations < 1:
        raise BpinspectError(f"--iterations {options.iterations}: expected at least 1")
    if options.warmup < 0:
        raise BpinspectError(f"--warmup {options.warmup}: expected 0 or more")
    # The session sets the inputs (given, or seeded noise) as a pass would.
    session = session_from_options(options, history_budget=0)
    net = session.net
    report = time_net(net, iterations=options.iterations, warmup=options.warmup)
    print_report(report, f"bpinspect time: net {net.name!r} ({net.source}), phase {net.phase}")
    return 0
