"""The console's evaluation: echo, print, persistent names, blob()/diff() at the viewed
step, tracebacks of the user's frames only, bounded output, interruption."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from bpinspect.session.console import MAX_OUTPUT, Console
from bpinspect.session.schedule import FORWARD
from bpinspect.session.session import Session


@pytest.fixture
def session(lrn_pool_net):
    return Session(lrn_pool_net, seed=0)


def test_expressions_echo_statements_run_and_names_persist(session, capsys):
    console = Console(session)
    assert console.run("x = 6 * 7").output == ""
    assert console.run("x").output == "42"
    assert console.run("print('a', x); x + 1").output == "a 42\n43"
    assert console.run("_ * 2").output == "86"  # the last echoed value
    assert console.run("None").output == ""
    assert console.run("for i in range(3): print(i)").output == "0\n1\n2"
    assert console.run("def twice(v): return 2 * v").status == "ok"
    assert console.run("twice(x)").output == "84"
    assert console.run("net.name, type(session).__name__, np.pi").output == \
        "('LRNPool', 'Session', 3.141592653589793)"
    assert capsys.readouterr().out == ""  # print went to the console, not the terminal


def test_blob_and_diff_read_the_viewed_step_as_copies(session):
    net = session.net
    conv1 = session.step_of("conv1", FORWARD).index
    while session.cursor <= conv1:
        session.step()
    before_relu = net.blobs["conv1"].data.copy()
    assert (before_relu < 0).any()
    session.step()  # relu1 runs in place on conv1
    after_relu = net.blobs["conv1"].data.copy()
    assert not (after_relu < 0).any()

    console = Console(session)
    console.run("live = blob('conv1')")
    np.testing.assert_array_equal(console.namespace["live"], after_relu)
    # The blob table shows conv1's top as conv1's forward wrote it: the viewed step.
    console.run("seen = blob('conv1')", viewed={("conv1", None, "data"): conv1})
    np.testing.assert_array_equal(console.namespace["seen"], before_relu)
    console.run("seen[...] = 7; w = blob('conv1#0'); b = blob('conv1', 1)")
    np.testing.assert_array_equal(net.blobs["conv1"].data, after_relu)  # a copy
    np.testing.assert_array_equal(console.namespace["w"], net.params["conv1"][0].data)
    np.testing.assert_array_equal(console.namespace["b"], net.params["conv1"][1].data)
    early = console.run("diff('conv1')").output.splitlines()[-1]
    assert early.endswith("BpinspectError: conv1 has no diff at the step viewed")
    session.inject("ip", "onehot:3")
    session.continue_()
    console.run("d = diff('conv1')", viewed={})
    assert np.abs(console.namespace["d"]).sum() > 0
    np.testing.assert_array_equal(console.namespace["d"], net.blobs["conv1"].diff)


def test_an_exception_shows_the_users_frames_only(session):
    console = Console(session)
    console.run("def f(v):\n    return v / 0")
    result = console.run("f(1)")
    assert result.status == "error"
    lines = result.output.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert '<console #2>", line 1, in <module>' in result.output
    assert '<console #1>", line 2, in f' in result.output
    assert "return v / 0" in result.output  # the line of the earlier input, quoted
    assert "bpinspect" not in result.output

    missing = console.run("blob('nope')")
    assert missing.status == "error"
    assert missing.output.splitlines()[-1].endswith("BpinspectError: no blob named 'nope'")
    assert "console.py" not in missing.output and "session.py" not in missing.output

    bad = console.run("1 +")
    assert bad.status == "error" and "SyntaxError" in bad.output and "Traceback" not in bad.output
    assert console.run("raise SystemExit(3)").status == "error"  # the app goes on
    assert console.run("1 + 1").output == "2"


def test_output_is_bounded_with_a_note(session):
    console = Console(session)
    result = console.run("for i in range(100000): print(i)")
    total = sum(len(str(i)) + 1 for i in range(100000))
    text, note = result.output.rsplit("\n", 1)
    assert len(text) <= MAX_OUTPUT and text.startswith("0\n1\n2\n")
    assert note == f"… output truncated: {total:,} characters, the first {MAX_OUTPUT:,} shown"
    huge = console.run("'x' * 1_000_000")
    assert len(huge.output) < MAX_OUTPUT + 100
    assert "1,000,003 characters" in huge.output  # the repr and its newline


def _cancel_in(seconds: float):
    flag = threading.Event()
    threading.Timer(seconds, flag.set).start()
    return flag.is_set


@pytest.mark.parametrize("source", [
    "while True: pass",
    "n = 0\nwhile True:\n    try:\n        n += 1\n    except Exception:\n        pass",
    "def spin():\n    while True: pass\nspin()",
    "total = sum(i * i for i in range(10**12))",
])
def test_cancel_interrupts_a_long_loop(session, source):
    console = Console(session)
    tracing = sys.gettrace()
    started = time.perf_counter()
    result = console.run(source, cancel=_cancel_in(0.2))
    assert time.perf_counter() - started < 1.5
    assert result.status == "interrupted" and result.output == "interrupted"
    assert sys.gettrace() is tracing  # put back
    assert console.run("40 + 2", cancel=lambda: False).output == "42"
