"""``bpinspect serve NET [options]``: the TUI in a web browser, through textual-serve.

The server runs ``python -m bpinspect NET [options]`` (this same Python, the
user's arguments each shell-quoted) once per browser tab that connects. The
arguments are checked, and the net or solver built once, before anything
listens, so that a bad net is one line on stderr and exit code 2 rather than a
page whose app dies on load.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from bpinspect.errors import BpinspectError, LayerCodeError, error_details

DEFAULT_HOST = "127.0.0.1"  # loopback: the debugger runs code (Python layers) on this machine
DEFAULT_PORT = 8000


def port_number(text: str) -> int:
    """``--port``: 1 to 65535 (0, "any free port", would make the printed address wrong)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text}: expected 1 to 65535")
    return value


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The options of serving; every other option is the TUI's, passed on."""
    group = p.add_argument_group("serving")
    group.add_argument("--host", default=DEFAULT_HOST,
                       help=f"the address to listen on (default {DEFAULT_HOST}, this machine "
                            "only; 0.0.0.0 for every interface)")
    group.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                       help=f"the port to listen on (default {DEFAULT_PORT})")
    group.add_argument("--public-url", metavar="URL",
                       help="the address browsers reach the server at, when it is not "
                            "http://HOST:PORT (behind a proxy, or with --host 0.0.0.0)")


def build_serve_parser() -> argparse.ArgumentParser:
    """The TUI's parser, with the serving options added."""
    from bpinspect.cli import build_tui_parser

    p = build_tui_parser()
    p.prog = "bpinspect serve"
    p.description = ("Serve the debugger in a web browser: the same app and options as "
                     "bpinspect NET (or --solver SOLVER), one app per browser tab.")
    p.epilog = None
    # No abbreviations: the serving options are taken out of the command line by name,
    # and an abbreviated one would be passed on to the app.
    p.allow_abbrev = False
    add_serve_arguments(p)
    return p


def split_arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """``(serving options, the TUI's arguments)`` from ``bpinspect serve``'s arguments."""
    serving = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_serve_arguments(serving)
    options, rest = serving.parse_known_args(list(argv))
    return options, rest


def app_command(tui_arguments: Sequence[str]) -> str:
    """The shell command that runs the TUI with ``tui_arguments``, in this Python."""
    return shlex.join([sys.executable, "-m", "bpinspect", *tui_arguments])


def public_url(host: str, port: int) -> str:
    """``http://HOST:PORT``, an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def check_loads(options: argparse.Namespace) -> None:
    """What the app would find wrong when it starts: the arguments, then the net or
    solver built once, as the TUI's load does. It is built in a child process, so
    that what it took (a GPU's memory pool, a CUDA context) is given back before
    the apps start and plan their memory from what is free."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        problem = pool.submit(load_problem, options).result()
    if problem is not None:
        message, details = problem
        raise LayerCodeError(message, details) if details else BpinspectError(message)


def load_problem(options: argparse.Namespace) -> tuple[str, str] | None:
    """In the child: the error of loading ``options`` as its line and details (a Python
    layer's traceback), or None when it loads."""
    from bpinspect.session.options import session_from_options, validate_options

    try:
        validate_options(options)
        session_from_options(options, history_budget=0)
    except BpinspectError as exc:  # as text: the exception itself may not pickle
        return str(exc), error_details(exc)
    return None


def run_serve(options: argparse.Namespace, argv: Sequence[str]) -> int:
    """Check ``options`` (the TUI's, parsed from ``argv``), then serve until stopped."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise BpinspectError("bpinspect serve needs the textual-serve package "
                             "(pip install textual-serve)") from None
    what = options.net or options.solver
    print(f"bpinspect serve: checking {what}", file=sys.stderr, flush=True)
    check_loads(options)

    serving, tui_arguments = split_arguments(argv)
    url = serving.public_url or public_url(serving.host, serving.port)

    class _Server(Server):
        async def on_startup(self, app: object) -> None:  # our line, not textual-serve's logo
            print(f"bpinspect serve: open {url} in a browser (Ctrl+C stops)", flush=True)

    server = _Server(app_command(tui_arguments), host=serving.host, port=serving.port,
                     title=f"bpinspect {what}", public_url=url)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the host is not this machine's
        raise BpinspectError(f"cannot serve on {serving.host}:{serving.port}: "
                             f"{exc.strerror or exc}") from None
    return 0
