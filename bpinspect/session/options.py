"""Build a Session from the command line's options (shared by the TUI, dump, check)."""

from __future__ import annotations

import argparse
from typing import Any

from bpinspect.errors import BpinspectError
from bpinspect.session.diffspec import parse_assignment
from bpinspect.session.history import DEFAULT_BUDGET
from bpinspect.session.schedule import BOTH, DIRECTIONS
from bpinspect.session.session import Session


def memory_limits(options: argparse.Namespace, history_budget: int = 0) -> Any:
    """The context in which nets plan their memory: ``--max-memory`` (else what the
    device has) and the session's history budget (``bpinspect.engine.memory``)."""
    from bpinspect.engine.memory import limits, parse_size

    text = getattr(options, "max_memory", None)
    return limits(parse_size(text) if text is not None else None, history_budget)


def load_net(options: argparse.Namespace, dtype: Any = None, progress: Any = None,
             history_budget: int = 0) -> Any:
    """The Net of ``options.net`` with its weights, phase, device and seed
    (``progress``: see ``bpinspect.engine.net.Progress``), its memory planned within
    ``--max-memory`` and beside ``history_budget`` bytes of history."""
    from bpinspect import backend
    from bpinspect.engine.net import Net

    device = backend.select_device(getattr(options, "device", None) or "auto")
    kwargs = {} if dtype is None else {"dtype": dtype}
    with memory_limits(options, history_budget):
        return Net(options.net, weights=getattr(options, "weights", None),
                   phase=getattr(options, "phase", None) or "test", device=device,
                   seed=getattr(options, "seed", 0) or 0, progress=progress,
                   feeds=feed_shapes(options), **kwargs)


def feed_shapes(options: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """The shapes of the ``.npy`` files given with ``--input NAME=FILE``: a data layer
    (Data, ImageData, ...) whose top is given one is fed from it instead of its source."""
    from bpinspect.io.inputs import npy_shape

    shapes = {}
    for text in getattr(options, "input", None) or []:
        name, sep, path = text.partition("=")
        if sep and name and path.lower().endswith(".npy"):
            shapes[name] = npy_shape(path)
    return shapes


def load_solver(options: argparse.Namespace, progress: Any = None,
                history_budget: int = 0) -> Any:
    """The solver of ``options.solver`` (``--weights`` to start from, or ``--snapshot``
    to resume from), on the device and with the seed asked for."""
    from bpinspect import backend
    from bpinspect.engine.solver import get_solver

    weights = getattr(options, "weights", None)
    snapshot = getattr(options, "snapshot", None)
    if weights and snapshot:
        raise BpinspectError("give --snapshot to resume training or --weights to start from "
                             "trained weights, not both (as caffe train)")
    device = backend.select_device(getattr(options, "device", None) or "auto")
    with memory_limits(options, history_budget):
        solver = get_solver(options.solver, device=device,
                            seed=getattr(options, "seed", None), weights=weights,
                            feeds=feed_shapes(options))
    if snapshot:
        solver.restore(snapshot)
        solver.net.notes.append(
            f"resumed from {snapshot} at iteration {solver.iter}: a .solverstate holds no "
            "data position, so the data layers read from their first record again, as a "
            "resumed Caffe does")
    return solver


def training_session_from_options(options: argparse.Namespace, progress: Any = None,
                                  **session_kwargs: Any) -> Any:
    """The TrainingSession that ``bpinspect --solver SOLVER`` (and ``train``) runs."""
    from bpinspect.session.training import TrainingSession

    injections = [parse_assignment(t) for t in getattr(options, "top_diff", None) or []]
    solver = load_solver(options, progress,
                         session_kwargs.get("history_budget", DEFAULT_BUDGET))
    inputs, sources = read_inputs(solver.net, options)
    session = TrainingSession(
        solver,
        inputs=inputs,
        injections=[(blob, spec.text) for blob, spec in injections],
        seed=getattr(options, "seed", None) or 0,
        export_dir=getattr(options, "export_dir", None) or ".",
        **session_kwargs,
    )
    session.input_sources.update(sources)
    for text in getattr(options, "breaks", None) or []:
        session.breakpoints.add(*parse_break(text))
    conditions = session.training_conditions
    conditions.loss_nonfinite = True  # training's first question: where did the NaN start
    if getattr(options, "break_loss_above", None) is not None:
        conditions.set_loss_above(options.break_loss_above)
    if getattr(options, "break_ratio_above", None) is not None:
        conditions.set_ratio_above(options.break_ratio_above)
    for iteration in getattr(options, "break_iter", None) or []:
        conditions.add_iteration(iteration)
    return session


def parse_input_option(text: str, inputs: list[str]) -> tuple[str, str]:
    """``NAME=FILE``, or ``FILE`` for the net's first input."""
    name, sep, path = text.partition("=")
    if not sep:
        if not inputs:
            raise BpinspectError(f"--input {text}: the net has no input blobs")
        return inputs[0], text
    if not name or not path:
        raise BpinspectError(f"--input {text}: expected NAME=FILE, e.g. data=cat.jpg")
    return name, path


def read_inputs(net: Any, options: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The arrays of ``--input`` and, per blob, the file it came from."""
    from bpinspect.io.inputs import load_input, parse_mean

    mean = parse_mean(options.mean) if getattr(options, "mean", None) else None
    arrays: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for text in getattr(options, "input", None) or []:
        name, path = parse_input_option(text, net.inputs)
        if name not in net.inputs:
            raise BpinspectError(
                f"--input {text}: {name!r} is not an input blob of the net "
                f"(inputs: {', '.join(net.inputs) or 'none'})"
            )
        arrays[name] = load_input(path, net.blobs[name].shape, mean=mean, blob=name)
        sources[name] = path
    return arrays, sources


def parse_break(text: str) -> tuple[str, str]:
    """``--break LAYER`` (both directions) or ``LAYER:forward`` / ``LAYER:backward``."""
    layer, sep, direction = text.rpartition(":")
    if sep and direction in DIRECTIONS:
        return layer, direction
    return text, BOTH


def session_from_options(options: argparse.Namespace, progress: Any = None,
                         **session_kwargs: Any) -> Session:
    """The Session that ``bpinspect NET [options]`` debugs; BpinspectError on bad input.

    ``options`` has the fields that ``bpinspect.cli`` defines: net, weights, input,
    mean, top_diff, phase, device, seed and, for the TUI, breaks and export_dir.
    """
    if getattr(options, "solver", None):
        return training_session_from_options(options, progress, **session_kwargs)
    injections = [parse_assignment(t) for t in getattr(options, "top_diff", None) or []]
    net = load_net(options, progress=progress,
                   history_budget=session_kwargs.get("history_budget", DEFAULT_BUDGET))
    inputs, sources = read_inputs(net, options)
    session = Session(
        net,
        inputs=inputs,
        injections=[(blob, spec.text) for blob, spec in injections],
        seed=getattr(options, "seed", 0) or 0,
        export_dir=getattr(options, "export_dir", None) or ".",
        **session_kwargs,
    )
    session.input_sources.update(sources)
    for text in getattr(options, "breaks", None) or []:
        session.breakpoints.add(*parse_break(text))
    return session


def validate_options(options: argparse.Namespace) -> None:
    """What is wrong with the TUI's arguments themselves, found cheaply before the app
    starts (the net or solver is built later, in the worker): missing files, a prototxt
    that does not parse, --top-diff specs, --input syntax, --export-dir."""
    from pathlib import Path

    from bpinspect.io.prototxt import load_net as parse_net_file

    solver = getattr(options, "solver", None)
    files = [("--solver", solver), ("net", getattr(options, "net", None)),
             ("--weights", getattr(options, "weights", None)),
             ("--snapshot", getattr(options, "snapshot", None))]
    for what, path in files:
        if path is not None and not Path(path).is_file():
            raise BpinspectError(f"{what} {path}: no such file")
    if solver:
        from bpinspect.io.solver_prototxt import load_solver as parse_solver_file

        parse_solver_file(solver)
    else:
        parse_net_file(options.net)
    for text in getattr(options, "top_diff", None) or []:
        parse_assignment(text)
    memory_limits(options)  # --max-memory parses
    for text in getattr(options, "input", None) or []:
        path = text.partition("=")[2] or text
        if not Path(path).is_file():
            raise BpinspectError(f"--input {text}: no such file {path!r}")
    compare = getattr(options, "compare", None)
    if compare is not None:
        from bpinspect.session.compare import read_dump

        try:
            read_dump(compare)
        except BpinspectError as exc:
            raise BpinspectError(f"--compare {compare}: {exc}") from None
    rtol = getattr(options, "compare_rtol", None)
    if rtol is not None and not rtol >= 0:
        raise BpinspectError(f"--compare-rtol {rtol}: expected a tolerance of 0 or more")
    # One rule for every output directory (dump --out too): created when missing.
    export_dir = getattr(options, "export_dir", None)
    if export_dir is not None:
        from bpinspect.io.files import make_directory

        make_directory(export_dir, "--export-dir")
