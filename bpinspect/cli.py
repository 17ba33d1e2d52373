"""The command line: ``bpinspect NET`` (the TUI), ``bpinspect dump``, ``bpinspect check``.

Every user error is one line on stderr, ``bpinspect: <message>``, and exit
code 2 (argparse's own usage errors too); a gradient check that fails exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bpinspect import __version__
from bpinspect.errors import EXIT_USAGE, BpinspectError, error_details

if TYPE_CHECKING:  # rich and the session load only when a command runs
    from rich.console import Console
    from rich.table import Table

    from bpinspect.session.dump import StatRow
    from bpinspect.session.session import Session

EXIT_CHECK_FAILED = 1
COMMANDS = ("dump", "check", "train", "diff", "time")

DESCRIPTION = """\
A terminal debugger for backpropagation in Caffe nets.

  bpinspect NET [options]          step through forward and backward in the TUI
  bpinspect --solver SOLVER        step through training iterations in the TUI
  bpinspect train SOLVER           run iterations headless, print Caffe's debug_info
  bpinspect dump NET --out DIR     run forward + backward, write every blob to .npy
  bpinspect check NET              check every layer's gradient numerically
  bpinspect diff A B               compare two dumps; where do they part
  bpinspect time NET               time each layer's forward and backward (caffe time)
  bpinspect serve NET [options]    the TUI in a web browser (textual-serve)
"""

TOP_DIFF_HELP = (
    "inject a top diff (repeatable): BLOB=SPEC with SPEC one of onehot:C, onehot:C@N, "
    "ones, zeros, const:X, randn:seed=S,scale=X, npy:FILE; backward starts at the layer "
    "that produces BLOB, as pycaffe's net.backward(BLOB=...)"
)

MAX_MEMORY_HELP = (
    "the most memory the net may take, e.g. 4G or 512M (default: what the device has "
    "free); a net that needs more stops before anything is allocated"
)


def seed_value(text: str) -> int:
    """``--seed``: a whole number that every generator takes (0 to 2^64 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected a whole number") \
            from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"invalid seed {text}: expected 0 to 2^64 - 1")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in our one-line form (still exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def add_net_options(p: argparse.ArgumentParser, net_optional: bool = False) -> None:
    """The options every way in shares: what to load, and how to run it."""
    p.add_argument("net", metavar="NET.prototxt", nargs="?" if net_optional else None,
                   help="the net (text prototxt)" + (" (or --solver)" if net_optional else ""))
    p.add_argument("--weights", metavar="W.caffemodel",
                   help="trained weights (default: a seeded MSRA filler, said so on screen)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE",
                   help="an input blob from an image or a .npy (repeatable); FILE alone "
                        "fills the first input")
    p.add_argument("--mean", metavar="B,G,R|FILE",
                   help="mean subtracted from image inputs: B,G,R values, or a .npy / "
                        ".binaryproto file")
    p.add_argument("--top-diff", action="append", default=[], metavar="BLOB=SPEC",
                   help=TOP_DIFF_HELP)
    p.add_argument("--phase", choices=("train", "test"), default="test",
                   help="which layers the net keeps (include/exclude), default test")
    p.add_argument("--device", default="auto", metavar="auto|cpu|gpu|gpu:N",
                   help="where the math runs (default auto: the first GPU if CuPy sees one)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="seed of the weight filler, dropout masks and random inputs (default 0)")
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)


def build_tui_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bpinspect",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="bpinspect dump --help and bpinspect check --help describe the headless ways in.",
    )
    p.add_argument("--version", action="version", version=f"bpinspect {__version__}")
    add_net_options(p, net_optional=True)
    p.add_argument("--break", dest="breaks", action="append", default=[], metavar="LAYER",
                   help="stop before LAYER (repeatable); LAYER:forward or LAYER:backward for "
                        "one direction")
    training = p.add_argument_group("training (with --solver)")
    training.add_argument("--solver", metavar="SOLVER.prototxt",
                          help="debug training: the solver's train net, one iteration at a "
                               "time (forward, backward, update)")
    training.add_argument("--snapshot", metavar="S.solverstate",
                          help="resume from a Caffe snapshot (caffe train --snapshot)")
    training.add_argument("--break-loss-above", type=float, metavar="X",
                          help="stop when a pass's loss is above X (NaN/Inf always stops)")
    training.add_argument("--break-ratio-above", type=float, metavar="R",
                          help="stop after an update whose ‖Δw‖/‖w‖ is above R for any param")
    training.add_argument("--break-iter", type=int, action="append", default=[], metavar="N",
                          help="stop at the start of iteration N (repeatable)")
    p.add_argument("--compare", metavar="DUMP",
                   help="mark each blob's agreement with this dump (a directory as "
                        "bpinspect dump --out writes, or .npy files saved from pycaffe)")
    p.add_argument("--compare-rtol", type=float, default=None, metavar="R",
                   help="relative tolerance of --compare (default 1e-4)")
    p.add_argument("--export-dir", metavar="DIR", help="where exports go (default: .)")
    p.set_defaults(seed=None)  # with --solver: the solver's random_seed unless --seed is given
    return p


def build_dump_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bpinspect dump",
        description="Run a full forward and backward pass and write, into DIR, every blob's "
                    "final data and diff (<blob>.data.npy, <blob>.diff.npy), every param "
                    "(<layer>.param<i>.data.npy / .diff.npy) and manifest.json; print each "
                    "layer's statistics (Caffe's debug_info, readable).",
    )
    add_net_options(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory (created if missing)")
    p.add_argument("--force", action="store_true",
                   help="replace files of an earlier dump in DIR")
    return p


def build_check_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bpinspect check",
        description="Check every layer's backward numerically, at the net's real shapes: "
                    "central differences in float64 at sampled coordinates of every bottom "
                    "and param, points at a kink (ReLU at 0, tied maxima) left out. Exits 1 "
                    "when a layer fails.",
    )
    add_net_options(p)
    p.add_argument("--coords", type=int, default=8, metavar="N",
                   help="coordinates sampled per bottom and per param (default 8)")
    p.add_argument("--eps", type=float, default=None, metavar="E",
                   help="step of the central differences (default 1e-6 of the value's scale)")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="largest relative error that passes (default 1e-4)")
    return p


def parse_args(argv: Sequence[str]) -> tuple[str, argparse.Namespace]:
    """``(command, options)`` with command "tui", "serve" or one of ``COMMANDS``."""
    argv = list(argv)
    if argv and argv[0] == "serve":  # the TUI's options, served: checked as the TUI's
        from bpinspect.cli_serve import build_serve_parser

        parser = build_serve_parser()
        return "serve", check_tui_options(parser, parser.parse_args(argv[1:]))
    if argv and argv[0] in COMMANDS:
        command = argv[0]
        parser = {"dump": build_dump_parser, "check": build_check_parser,
                  "train": build_train_parser, "diff": build_diff_parser,
                  "time": build_time_parser}[command]()
        return command, parser.parse_args(argv[1:])
    parser = build_tui_parser()
    return "tui", check_tui_options(parser, parser.parse_args(argv))


def check_tui_options(parser: argparse.ArgumentParser,
                      options: argparse.Namespace) -> argparse.Namespace:
    """The TUI's rules that argparse cannot say: a net or a solver, --snapshot with one."""
    if (options.net is None) == (options.solver is None):
        parser.error("give a net (NET.prototxt) or --solver SOLVER.prototxt, not both"
                     if options.net else "give a net (NET.prototxt) or --solver SOLVER.prototxt")
    if options.snapshot and not options.solver:
        parser.error("--snapshot resumes a solver: give --solver SOLVER.prototxt too")
    return options


def build_train_parser() -> argparse.ArgumentParser:
    from bpinspect.cli_train import add_train_arguments

    p = _Parser(
        prog="bpinspect train",
        description="Run a solver's iterations headless and print what Caffe's debug_info "
                    "logs, readable: per layer the forward data, the backward diffs and the "
                    "update, with Caffe's iteration and test lines. Stops at the first NaN "
                    "or Inf, naming the iteration, layer and blob (exit 1).",
    )
    add_train_arguments(p)
    return p


def build_diff_parser() -> argparse.ArgumentParser:
    from bpinspect.cli_diff import add_diff_arguments

    p = _Parser(
        prog="bpinspect diff",
        description="Compare two dumps (bpinspect dump --out, or .npy files saved from "
                    "pycaffe under the same names): per blob and param, data and diff, "
                    "the shapes, max|a-b| and max|a-b|/max|a|, and the first layer where "
                    "they part. Exits 0 when they agree, 1 when they differ.",
    )
    add_diff_arguments(p)
    return p


def build_time_parser() -> argparse.ArgumentParser:
    from bpinspect.cli_time import add_time_arguments

    p = _Parser(
        prog="bpinspect time",
        description="Time each layer's forward and backward, as caffe time: one "
                    "forward-backward to warm up, then the mean over N iterations, the "
                    "totals, and each layer's memory (tops and params).",
    )
    add_time_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command, options = parse_args(argv)
        if command == "dump":
            return run_dump(options)
        if command == "check":
            return run_check(options)
        if command == "train":
            from bpinspect.cli_train import run_train

            return run_train(options)
        if command == "diff":
            from bpinspect.cli_diff import run_diff

            return run_diff(options)
        if command == "time":
            from bpinspect.cli_time import run_time

            return run_time(options)
        if command == "serve":
            from bpinspect.cli_serve import run_serve

            return run_serve(options, argv[1:])
        return run_tui(options)
    except BpinspectError as exc:
        print(f"bpinspect: {exc}", file=sys.stderr)
        if error_details(exc):  # a Python layer's own traceback
            print(error_details(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bpinspect: interrupted", file=sys.stderr)
        return 130


def run_tui(options: argparse.Namespace) -> int:
    from bpinspect.tui.app import run_app  # the TUI is only imported on this path

    return int(run_app(options) or 0)


# ---- dump -----------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    # Never narrower than the tables need: a wrapped line beats a cut-off number
    # (and a pipe would get rich's 80 columns).
    console = Console(highlight=False, soft_wrap=False)
    if console.width < 160:
        console = Console(highlight=False, width=160)
    return console


def _num(v: float | None) -> str:
    if v is None:
        return ""
    if v != v:  # NaN
        return "nan"
    return f"{v:.4g}"


def _header(console: Console, session: Session, title: str) -> None:
    net = session.net
    console.print(f"[bold]{title}[/bold] net {net.name!r} ({net.source})", markup=True)
    console.print(f"  phase: {net.phase}   device: {net.device.name}", markup=False)
    console.print(f"  weights: {net.weights_source}", markup=False)
    console.print(f"  memory: {net.memory.summary()}", markup=False)
    for blob, inj in session.injections.items():
        console.print(f"  top diff: {blob}={inj.spec}", markup=False)
    for note in session.notes:
        console.print(f"  note: {note}", markup=False)


def _stats_table(title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, header_style="bold",
                  pad_edge=False, title_style="bold")
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("layer", no_wrap=True, max_width=28)
    table.add_column("type", no_wrap=True)
    table.add_column("blob", no_wrap=True, max_width=28)
    table.add_column("", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    for col in ("min", "max", "mean", "std", "L2"):
        table.add_column(col, justify="right", no_wrap=True, min_width=10)
    table.add_column("zeros", justify="right", no_wrap=True)
    table.add_column("nan/inf", justify="right", no_wrap=True)
    return table


def add_stat_row(table: Table, row: StatRow, first: bool) -> None:
    """One blob's statistics after a step; the step's own columns on its first row."""
    step, s = row.step, row.stats
    assert s is not None
    bad = s.nan + s.inf
    table.add_row(
        str(step.index) if first else "", step.layer_name if first else "",
        step.layer_type if first else "", row.blob, row.kind,
        "x".join(str(d) for d in s.shape) or "scalar", _num(s.min), _num(s.max),
        _num(s.mean), _num(s.std), _num(s.l2), f"{100 * s.frac_zero:.1f}%",
        f"[red]{s.nan}/{s.inf}[/red]" if bad else "0",
    )


def run_dump(options: argparse.Namespace) -> int:
    from bpinspect.session.dump import run_pass, write_final
    from bpinspect.session.options import session_from_options

    session = session_from_options(options, history_budget=0)
    units: list = []
    rows = run_pass(session, units=units)
    paths = write_final(session, options.out, overwrite=options.force)

    console = _console()
    _header(console, session, "bpinspect dump:")
    tables = {"forward": _stats_table("forward: each top's data"),
              "backward": _stats_table("backward: each bottom's diff and param diff "
                                       "(layer#i: param i)")}
    skipped = []
    last_step = None
    for row in rows:
        step = row.step
        if row.stats is None:
            skipped.append(step)
            continue
        add_stat_row(tables[step.direction], row, first=step.index != last_step)
        last_step = step.index
    console.print()
    console.print(tables["forward"])
    console.print()
    console.print(tables["backward"])
    if units:
        from bpinspect.cli_units import print_units

        console.print()
        print_units(console, units)
    if skipped:
        console.print()
        console.print("[bold]backward steps skipped[/bold]")
        for step in skipped:
            console.print(f"  {step.index:>4}  {step.layer_name} ({step.layer_type}): "
                          f"{step.reason}", markup=False)
    console.print()
    console.print(f"wrote {len(paths)} files and manifest.json to {options.out}", markup=False)
    return 0


# ---- check ----------------------------------------------------------------------


def run_check(options: argparse.Namespace) -> int:
    from rich.table import Table

    from bpinspect.session import netcheck
    from bpinspect.session.options import load_net, read_inputs
    from bpinspect.session.session import Session

    if options.coords < 1:
        raise BpinspectError(f"--coords {options.coords}: expected at least 1")
    net = load_net(options)
    inputs, _ = read_inputs(net, options)
    # The session sets the inputs as the debugger would; those not given get unit
    # Gaussian noise, as Caffe's own gradient tests fill bottoms (image-scale noise
    # saturates a loss, whose clamped log then has no derivative to check against).
    session = Session(net, inputs=inputs, seed=options.seed, history_budget=0, noise_std=1.0)
    eps = options.eps if options.eps is not None else netcheck.DEFAULT_EPS
    threshold = options.threshold if options.threshold is not None else netcheck.DEFAULT_THRESHOLD
    results = netcheck.check_net(net, max_coords=options.coords, eps=eps, threshold=threshold,
                                 seed=options.seed)

    console = _console()
    _header(console, session, "bpinspect check:")
    console.print(f"  {options.coords} coordinates per bottom and param, float64, "
                  f"eps {eps:g}, threshold {threshold:g} (relative error)")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, justify in (("layer", "left"), ("type", "left"), ("checked", "left"),
                         ("coords", "right"), ("kinks", "right"), ("max rel err", "right"),
                         ("worst: analytic", "right"), ("numeric", "right"), ("", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    failed = []
    for lc in results:
        if not lc.results:
            table.add_row(lc.layer, lc.type, f"[dim]{lc.note}[/dim]", "", "", "", "", "", "")
            continue
        if not lc.passed:
            failed.append(lc.layer)
        for k, r in enumerate(lc.results):
            verdict = "[green]ok[/green]" if r.passed else "[bold red]FAIL[/bold red]"
            table.add_row(
                lc.layer if k == 0 else "", lc.type if k == 0 else "", r.what, str(r.checked),
                str(lc.kinks) if k == 0 else "", f"{r.max_rel_error:.2e}",
                _num(r.analytic_at_worst) if r.checked else "",
                _num(r.numeric_at_worst) if r.checked else "", verdict,
            )
    console.print(table)
    if failed:
        console.print(f"[bold red]{len(failed)} layer(s) failed:[/bold red] {', '.join(failed)}")
        return EXIT_CHECK_FAILED
    console.print(f"all {sum(1 for r in results if r.results)} layers with a gradient passed")
    return 0
