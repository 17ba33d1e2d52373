"""``bpinspect diff A B``: compare two dumps (``bpinspect dump --out``, or ``.npy`` files
saved from pycaffe under the same names) array by array, and say where they part.

Exit 0 when they agree, 1 when they differ (or an array is on one side only, unless
``--common``), 2 on bad input (one line naming the file)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bpinspect.session.compare import Comparison, EntryComparison

EXIT_DIFFER = 1


def add_diff_arguments(p: argparse.ArgumentParser) -> None:
    from bpinspect.session.compare import DEFAULT_ATOL, DEFAULT_RTOL

    p.add_argument("a", metavar="A", help="a dump directory (the reference)")
    p.add_argument("b", metavar="B", help="the dump directory to compare with A")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL, metavar="R",
                   help="relative tolerance: an array differs when max|a-b| > atol + "
                        f"rtol * max|a| (default {DEFAULT_RTOL:g})")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL, metavar="A",
                   help=f"absolute tolerance (default {DEFAULT_ATOL:g})")
    p.add_argument("--net", metavar="NET.prototxt",
                   help="the net, for the layer order when neither dump has a manifest "
                        "with it (e.g. .npy files saved from pycaffe)")
    p.add_argument("--phase", choices=("train", "test"), default="test",
                   help="the phase of --net (default test)")
    p.add_argument("--common", action="store_true",
                   help="compare only the arrays both sides have; one on one side only "
                        "is listed but does not make them differ")
    p.add_argument("--differing", action="store_true",
                   help="list only the arrays that differ or are missing")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def _row(e: EntryComparison) -> list[str]:
    from bpinspect.session import compare as c

    r = e.result
    shape = ""
    diff = rel = ""
    if r is not None:
        shape = _shape(r.shape_a) if r.same_shape else f"{_shape(r.shape_a)} vs {_shape(r.shape_b)}"
        if r.same_shape:
            diff, rel = f"{r.max_abs_diff:.4g}", f"{r.rel_diff:.3g}"
            if r.nonfinite_mismatch:
                diff += f" ({r.nonfinite_mismatch} nan/inf apart)"
    verdict = {
        c.AGREE: "[green]ok[/green]", c.DIFFER: "[bold red]DIFFER[/bold red]",
        c.SHAPE: "[bold red]SHAPE[/bold red]", c.ONLY_A: "[yellow]only in A[/yellow]",
        c.ONLY_B: "[yellow]only in B[/yellow]", c.PENDING: "[dim]pending[/dim]",
    }[e.status]
    return [e.layer or "", e.name, e.kind, shape, diff, rel, verdict]


def print_comparison(report: Comparison, differing_only: bool = False,
                     ignore_missing: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bpinspect.cli import _console

    console = _console()
    console.print(f"[bold]bpinspect diff:[/bold] A {escape(report.a)}", markup=True)
    console.print(f"                B {escape(report.b)}", markup=True)
    console.print(f"  an array differs when max|a-b| > {report.atol:g} + {report.rtol:g} * "
                  "max|a| (--atol, --rtol)", markup=False)
    if report.order_known:
        console.print(f"  pass order from the {report.order_source}: forward data in layer "
                      "order, then backward diffs in reverse layer order", markup=False)
    else:
        console.print("  no layer order known (no manifest with layers; give --net "
                      "NET.prototxt): arrays in name order", markup=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, justify in (("layer", "left"), ("blob", "left"), ("", "left"),
                         ("shape", "left"), ("max|a-b|", "right"),
                         ("max|a-b|/max|a|", "right"), ("", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for e in report.entries:
        if differing_only and not (e.differs or e.missing):
            continue
        table.add_row(*(escape(v) if i < 6 else v for i, v in enumerate(_row(e))))
    if table.row_count:
        console.print()
        console.print(table)
    console.print()
    n = len(report.entries)
    missing = report.missing
    if missing:
        a_only = sum(1 for e in missing if e.status == "only_a")
        console.print(f"{len(missing)} array(s) on one side only ({a_only} only in A, "
                      f"{len(missing) - a_only} only in B)"
                      + (": not compared (--common)" if ignore_missing else ""), markup=False)
    if report.agree(ignore_missing):
        console.print(f"[green]A and B agree[/green]: {n - len(missing)} arrays within the "
                      "tolerance")
        return
    differing = report.differing
    console.print(f"[bold red]A and B differ[/bold red]: {len(differing)} of "
                  f"{n - len(missing)} arrays")
    for label, div in (("first data difference (forward order)", report.first_data),
                       ("first diff difference (backward order)", report.first_diff)):
        if div is None:
            continue
        r = div.entry.result
        detail = ""
        if r is not None and r.same_shape:
            detail = f", max|a-b| {r.max_abs_diff:.4g}, relative {r.rel_diff:.3g}"
        elif r is not None:
            detail = f", shapes {_shape(r.shape_a)} vs {_shape(r.shape_b)}"
        console.print(f"  {label}: {div.describe()}{detail}", markup=False)
    first = report.first
    if first is not None:
        console.print(f"they part at layer {first.layer!r}, in its "
                      f"{'data (forward)' if first.kind == 'data' else 'diff (backward)'}",
                      markup=False)


def run_diff(options: argparse.Namespace) -> int:
    from bpinspect.errors import BpinspectError
    from bpinspect.session.compare import compare_dumps, layers_of_prototxt, read_dump

    for name in ("rtol", "atol"):
        value = getattr(options, name)
        if not value >= 0:
            raise BpinspectError(f"--{name} {value}: expected a number >= 0")
    a, b = read_dump(options.a), read_dump(options.b)
    layers = None
    source = ""
    if options.net:
        layers = layers_of_prototxt(options.net, options.phase)
        source = f"net file {options.net}"
    report = compare_dumps(a, b, rtol=options.rtol, atol=options.atol, layers=layers,
                           order_source=source)
    print_comparison(report, options.differing, options.common)
    return 0 if report.agree(options.common) else EXIT_DIFFER
