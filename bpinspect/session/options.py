"""Build a Session from the command line's options (shared by the TUI, dump, check)."""

from __future__ import annotations

import argparse
from typing import Any

from bpinspect.errors import BpinspectError
from bpinspect.session.diffspec import parse_assignment
from bpinspect.session.schedule import BOTH, DIRECTIONS
from bpinspect.session.session import Session


def load_net(options: argparse.Namespace, dtype: Any = None, progress: Any = None) -> Any:
    """The Net of ``options.net`` with its weights, phase, device and seed
    (``progress``: see ``bpinspect.engine.net.Progress``)."""
    from bpinspect import backend
    from bpinspect.engine.net import Net

    device = backend.select_device(getattr(options, "device", None) or "auto")
    kwargs = {} if dtype is None else {"dtype": dtype}
    return Net(options.net, weights=getattr(options, "weights", None),
               phase=getattr(options, "phase", None) or "test", device=device,
               seed=getattr(options, "seed", 0) or 0, progress=progress, **kwargs)


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
        arrays[name] = load_input(path, net.blobs[name].shape, mean=mean)
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
    injections = [parse_assignment(t) for t in getattr(options, "top_diff", None) or []]
    net = load_net(options, progress=progress)
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
