"""An LSTM without expose_hidden carries its end state into the next forward (as Caffe's
does). A debugger that steps back over its forward, or restarts the pass, must run the
same forward again: the carried state goes back to what that forward started from."""

from __future__ import annotations

import numpy as np

from bpinspect.backend import to_host
from tests.tui.conftest import NETS, make_session


def lstm_session(tmp_path):
    cont = np.ones((12, 3), np.float32)  # no sequence starts: the carry matters at t = 0
    np.save(tmp_path / "cont.npy", cont)
    return make_session("lstm_sequence.prototxt", top_diff=["scores=ones"],
                        input=[f"data={NETS / 'lstm_data.npy'}",
                               f"cont={tmp_path / 'cont.npy'}"])


def lstm_top(session) -> np.ndarray:
    return to_host(session.net.blobs["lstm1"].data).copy()


def test_step_back_and_restart_replay_the_same_forward(tmp_path) -> None:
    session = lstm_session(tmp_path)
    layer = session.net.layers[session.net.layer_index("lstm1")]
    session.run_to("lstm1", "forward")  # through lstm1's forward
    assert session.last_step.layer_name == "lstm1"
    first = lstm_top(session)
    assert layer.carry is not None  # the end state, for the next forward

    session.step_back()  # over lstm1's forward
    assert layer.carry is None
    session.step()
    np.testing.assert_array_equal(lstm_top(session), first)

    session.continue_()  # the whole pass, then the same pass again
    session.restart()
    session.continue_()
    again = session.array("lstm1", "data", step=session.step_of("lstm1", "forward").index)
    np.testing.assert_array_equal(to_host(again), first)


def test_a_second_forward_continues_from_the_first(tmp_path) -> None:
    """Outside the debugger's undo, the carry works as in Caffe: the second forward
    starts where the first ended, so with cont all 1 its output differs."""
    session = lstm_session(tmp_path)
    net = session.net
    i = net.layer_index("lstm1")
    session.run_to("lstm1", "forward")
    net.undo_forward(i)  # as if the session had not run it
    net.forward_layer(i)
    first = lstm_top(session)
    net.forward_layer(i)
    assert not np.allclose(lstm_top(session), first)
    net.undo_forward(i)
    net.forward_layer(i)  # the second again, from the first's end state
    second = lstm_top(session)
    net.undo_forward(i)
    net.undo_forward(i)  # both undone: from zeros again
    net.forward_layer(i)
    np.testing.assert_array_equal(lstm_top(session), first)
    net.forward_layer(i)
    np.testing.assert_array_equal(lstm_top(session), second)
