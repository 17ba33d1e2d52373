"""bpinspect serve: textual-serve's page for our app, the app starting over its
websocket, a clean stop; bad arguments as one line and exit code 2, before listening."""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bpinspect import cli, cli_serve

ROOT = Path(__file__).resolve().parents[1]
NET = "nets/lrn_pool.prototxt"  # small: the app loads it in a fraction of a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture
def server():
    """``bpinspect serve NET --port P`` running; ``(process, port, page)`` once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bpinspect", "serve", NET, "--port", str(port),
         "--break", "norm1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        page = None
        while page is None:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server did not answer in 60 s"
            time.sleep(0.2)
            page = fetch(f"http://127.0.0.1:{port}/")
        yield process, port, page
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def app_screen(port: int, *wanted: bytes, seconds: float = 60) -> bytes:
    """What the app writes to a browser of 160x50 cells, until all of ``wanted`` is in it.

    The app paints in several frames: its status line can arrive before its schedule."""
    import aiohttp

    received = b""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"http://127.0.0.1:{port}/ws?width=160&height=50") as ws:
        deadline = time.monotonic() + seconds
        while (not all(part in received for part in wanted)
               and time.monotonic() < deadline):
            try:
                message = await asyncio.wait_for(ws.receive(), 5)
            except asyncio.TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.BINARY:
                break  # closed: the app ended
            received += message.data
    return received


def test_serve_gives_textual_serves_page_for_the_net(server):
    process, port, page = server
    assert f"bpinspect {NET}" in page  # the page's title is the app
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page
    assert f"http://127.0.0.1:{port}/static/js/textual.js" in page
    static = fetch(f"http://127.0.0.1:{port}/static/js/textual.js")
    assert static is not None and len(static) > 1000


def test_the_app_starts_over_the_websocket_and_the_server_stops_cleanly(server):
    process, port, _ = server
    screen = asyncio.run(app_screen(port, b"loaded LRNPool", b"norm1"))
    assert b"loaded LRNPool" in screen  # the status line of our app, with the net loaded
    assert b"norm1" in screen  # its schedule, with the layer given to --break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"open http://127.0.0.1:{port} in a browser" in out


def test_the_served_command_is_this_python_with_the_tui_arguments_quoted():
    argv = [NET, "--port", "9001", "--export-dir", "out dir; rm -rf x", "--host=0.0.0.0",
            "--top-diff", "ip=onehot:1"]
    serving, tui = cli_serve.split_arguments(argv)
    assert (serving.host, serving.port) == ("0.0.0.0", 9001)
    assert tui == [NET, "--export-dir", "out dir; rm -rf x", "--top-diff", "ip=onehot:1"]
    command = cli_serve.app_command(tui)
    assert shlex.split(command) == [sys.executable, "-m", "bpinspect", *tui]


def test_public_url_brackets_an_ipv6_host():
    assert cli_serve.public_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert cli_serve.public_url("::1", 8080) == "http://[::1]:8080"


@pytest.mark.parametrize("argv, message", [
    (["serve", "nets/no_such.prototxt"], "net nets/no_such.prototxt: no such file"),
    (["serve", NET, "--top-diff", "ip=sideways"], "top-diff spec 'sideways'"),
    (["serve", NET, "--input", "nowhere.npy"], "no such file"),
])
def test_bad_arguments_exit_2_with_one_line_before_serving(argv, message, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(ROOT)
    code = cli.main(argv)
    _, err = capsys.readouterr()
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("bpinspect")
              and "checking" not in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err


def test_a_net_that_parses_but_does_not_build_is_caught_before_serving(tmp_path, capsys):
    net = tmp_path / "bad.prototxt"
    net.write_text('layer { name: "data" type: "Input" top: "data" '
                   'input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
                   'layer { name: "ip" type: "InnerProduct" bottom: "missing" top: "ip" '
                   'inner_product_param { num_output: 2 } }\n')
    code = cli.main(["serve", str(net), "--port", str(free_port())])
    _, err = capsys.readouterr()
    assert code == 2
    assert "missing" in err.splitlines()[-1] and "Traceback" not in err


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "bpinspect", "serve", NET, "--port",
                               str(port)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(
        f"bpinspect: cannot serve on 127.0.0.1:{port}: "), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv, message", [
    (["serve", "--solver", "nets/digits_solver.prototxt", NET], "not both"),
    (["serve", "--snapshot", "s.solverstate", NET], "--snapshot resumes a solver"),
    (["serve", NET, "--port", "70000"], "invalid port 70000"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_a_python_layer_that_raises_gives_its_line_and_its_traceback(tmp_path, capsys):
    (tmp_path / "bpi_serve_raising_layer.py").write_text(
        "import caffe\n\n\nclass Raising(caffe.Layer):\n"
        "    def setup(self, bottom, top):\n"
        "        raise RuntimeError('no setup today')\n")
    net = tmp_path / "python.prototxt"
    net.write_text('layer { name: "data" type: "Input" top: "data" '
                   'input_param { shape { dim: 1 dim: 2 } } }\n'
                   'layer { name: "py" type: "Python" bottom: "data" top: "out" '
                   'python_param { module: "bpi_serve_raising_layer" layer: "Raising" } }\n')
    code = cli.main(["serve", str(net), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 2
    message = [line for line in err.splitlines() if line.startswith("bpinspect: ")]
    assert len(message) == 1 and "RuntimeError" in message[0]
    assert "bpi_serve_raising_layer.py" in err and "no setup today" in err
