"""``bpinspect train SOLVER``: run iterations headless and print what Caffe's
``debug_info: true`` logs, as tables (every k-th iteration when the run is long),
with Caffe's own one-line iteration and test summaries; stop at the first
non-finite value, naming the iteration, layer and blob (exit 1)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bpinspect.errors import BpinspectError

if TYPE_CHECKING:
    from rich.console import Console

    from bpinspect.session.iterations import IterationRecord
    from bpinspect.session.train_run import IterationRun
    from bpinspect.session.training import TrainingSession

EXIT_NONFINITE = 1


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from bpinspect.cli import MAX_MEMORY_HELP, seed_value

    p.add_argument("solver", metavar="SOLVER.prototxt", help="the solver (text SolverParameter)")
    p.add_argument("--weights", metavar="W.caffemodel",
                   help="start from trained weights (caffe train --weights)")
    p.add_argument("--snapshot", metavar="S.solverstate",
                   help="resume from a Caffe snapshot (caffe train --snapshot)")
    p.add_argument("--iters", type=int, default=None, metavar="N",
                   help="iterations to run (default: up to the solver's max_iter)")
    p.add_argument("--every", type=int, default=None, metavar="K",
                   help="print the debug_info tables every K-th iteration (default: every "
                        "one up to 10 iterations, else a tenth of them)")
    p.add_argument("--out", metavar="DIR",
                   help="write iterations.json (loss, rate, tests, update ratios per "
                        "iteration) and a final snapshot (.caffemodel + .solverstate) here")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="feed a data layer's top from a .npy instead of its source "
                        "(repeatable)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|gpu|gpu:N",
                   help="where the math runs (default auto)")
    p.add_argument("--seed", type=seed_value, default=None,
                   help="seed of fillers, dropout, crops and shuffles (default: the solver's "
                        "random_seed, else 0)")
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)


def run_train(options: argparse.Namespace) -> int:
    from bpinspect.cli import _console, _header
    from bpinspect.io.files import make_directory
    from bpinspect.session.options import training_session_from_options
    from bpinspect.session.train_run import run_iteration

    if options.iters is not None and options.iters < 1:
        raise BpinspectError(f"--iters {options.iters}: expected at least 1")
    if options.every is not None and options.every < 1:
        raise BpinspectError(f"--every {options.every}: expected at least 1")
    if options.out is not None and not options.out.strip():
        raise BpinspectError("--out: an empty path; give a directory")
    session = training_session_from_options(options, history_budget=1 << 28)
    # Created once the solver and its nets loaded (a bad net leaves no directory behind),
    # before the iterations run (a directory that cannot be made stops it at once).
    out = make_directory(options.out, "--out") if options.out else None
    session.breakpoints.set_condition("nonfinite", True)
    solver = session.solver
    todo = options.iters if options.iters is not None else session.max_iter - solver.iter
    every = options.every or (1 if todo <= 10 else max(1, todo // 10))

    console = _console()
    _header(console, session, "bpinspect train:")
    console.print(f"  solver: {options.solver} ({solver.type}), iteration {solver.iter}, "
                  f"max_iter {session.max_iter}, iter_size {session.iter_size}; running "
                  f"{todo} iteration(s), tables every {every}", markup=False)
    status = 0
    ran = 0
    while ran < todo and not session.finished:
        iteration = session.iteration if not session.at_end else solver.iter
        printed = (iteration - session.start_iter) % every == 0 or ran == todo - 1
        run = run_iteration(session, collect=printed)
        ran += 1
        record = session.iterations.last if not run.hits else None
        if printed or run.hits:
            _print_tables(console, run)
        if record is not None and record.iteration == run.iteration:
            _print_summary(console, record, printed or bool(record.tests))
        if run.hits:
            hit = run.hits[0]
            console.print(f"[bold red]stopped at iteration {run.iteration}:[/bold red] "
                          f"{hit.message}", markup=True)
            status = EXIT_NONFINITE
            break
    if out is not None:
        _write_outputs(out, session)
        console.print(f"wrote iterations.json and the snapshot of iteration {solver.iter} to "
                      f"{out}", markup=False)
    return status


def _print_tables(console: Console, run: IterationRun) -> None:
    from bpinspect.cli import _stats_table, add_stat_row

    titles = {"forward": "forward: each top's data",
              "backward": "backward: each bottom's diff and param diff (layer#i: param i)",
              "update": "update: each param's data and diff (the update value)"}
    tables = {d: _stats_table(f"iteration {run.iteration}, {t}") for d, t in titles.items()}
    last_step = None
    for row in run.rows:
        if row.stats is not None:
            add_stat_row(tables[row.step.direction], row, first=row.step.index != last_step)
            last_step = row.step.index
    for direction in ("forward", "backward", "update"):
        if tables[direction].row_count:
            console.print()
            console.print(tables[direction])


def _print_summary(console: Console, record: IterationRecord, detailed: bool) -> None:
    """Caffe's log lines, with the update ratios added."""
    for test in record.tests:
        for name, value in test.outputs.items():
            console.print(f"Iteration {record.iteration}, Testing net (#{test.net_index}): "
                          f"{name} = {value:.6g}", markup=False)
    console.print(f"Iteration {record.iteration}, loss = {record.smoothed_loss:.6g} "
                  f"(this iteration {record.loss:.6g}), lr = {record.rate:.6g}"
                  + (f", gradients clipped by {record.clip_scale:.4g}"
                     if record.clip_scale is not None else ""), markup=False)
    if detailed:
        for batch in record.batches:
            console.print(f"  batch {batch}", markup=False)
    if detailed and record.params:
        worst = record.max_ratio
        ratios = ", ".join(f"{p.param} {p.ratio:.2e}" if p.ratio == p.ratio
                           else f"{p.param} n/a (w was 0)" for p in record.params)
        console.print(f"  update ratio ‖Δw‖/‖w‖: {ratios}", markup=False)
        if worst is not None:
            console.print(f"  largest: {worst[0]} {worst[1]:.2e} (about 1e-3 is healthy)",
                          markup=False)


def _write_outputs(out: Path, session: TrainingSession) -> None:
    from bpinspect.io.files import write_atomic

    records: list[dict[str, Any]] = [
        {"iteration": r.iteration, "loss": r.loss, "smoothed_loss": r.smoothed_loss,
         "rate": r.rate, "batches": r.batches, "clip_scale": r.clip_scale,
         "tests": [{"net": t.net_index, **t.outputs} for t in r.tests],
         "params": {p.param: {"diff_l2": p.diff_l2, "update_l2": p.update_l2,
                              "data_l2": p.data_l2, "ratio": p.ratio,
                              "local_rate": p.local_rate} for p in r.params}}
        for r in session.iterations
    ]
    text = json.dumps({"solver": session.solver.type, "iterations": records}, indent=1,
                      allow_nan=True)
    write_atomic(out / "iterations.json", lambda f: f.write(text.encode()), overwrite=True)
    prefix = os.fspath(out / (Path(session.solver.param.snapshot_prefix).name or
                              session.net.name or "snapshot"))
    session.solver.snapshot(prefix=prefix)
