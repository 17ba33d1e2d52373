"""The Gates over time tab of an LSTM: each gate and state of one item, time down and
units across, against a float64 LSTM written here from Caffe's formulas; the sequence
starts from cont; [ ] and { } choose the gate and the item."""

from __future__ import annotations

import numpy as np
from textual.widgets import TabbedContent

from bpinspect.backend import to_host
from bpinspect.tui.view_data import TAB_GATES
from bpinspect.tui.widgets.gates_pane import GatesPane

from .conftest import NETS, make_app, make_session
from .test_app import select_layer, settle

INPUTS = [f"data={NETS / 'lstm_data.npy'}", f"cont={NETS / 'lstm_cont.npy'}"]


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def lstm_reference(x, cont, w_xc, b_c, w_hc):
    """Caffe's LSTM from a zero start state: (gates i, f, o, g, c, h), each (T, N, H)."""
    steps, n = cont.shape
    hdim = w_hc.shape[1]
    h, c = np.zeros((n, hdim)), np.zeros((n, hdim))
    out = {k: np.zeros((steps, n, hdim)) for k in "ifogch"}
    for t in range(steps):
        a = x[t] @ w_xc.T + b_c + (cont[t][:, None] * h) @ w_hc.T
        i, f, o = (sigmoid(a[:, k * hdim:(k + 1) * hdim]) for k in range(3))
        g = np.tanh(a[:, 3 * hdim:])
        kept = np.where(cont[t][:, None] == 0, 0.0, cont[t][:, None] * f * c)
        c = kept + i * g
        h = o * np.tanh(c)
        for k, v in zip("ifogch", (i, f, o, g, c, h), strict=True):
            out[k][t] = v
    return out


def test_recurrent_view_against_a_float64_lstm() -> None:
    session = make_session("lstm_sequence.prototxt", input=INPUTS)
    session.run_to("lstm1", "forward")
    params = [to_host(b.data).astype(np.float64) for b in session.net.params["lstm1"]]
    x = np.load(NETS / "lstm_data.npy").astype(np.float64)
    cont = np.load(NETS / "lstm_cont.npy").astype(np.float64)
    expected = lstm_reference(x, cont, *params)
    for n in range(3):
        for k, name in enumerate("ifogch"):
            view = session.recurrent_view("lstm1", n, k)
            assert view.names == tuple("ifogch") and view.names[view.index] == name
            np.testing.assert_allclose(view.plane, expected[name][:, n], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(view.time_mean[name], expected[name][:, n].mean(axis=1),
                                       rtol=1e-5, atol=1e-6)
        assert view.resets == tuple(int(t) for t in np.flatnonzero(cont[:, n] == 0))
    assert session.recurrent_view("lstm1", 1, 0).resets == (0, 4)
    near = (expected["f"] < 0.01) | (expected["f"] > 0.99)
    assert view.saturated["f"] == np.mean(near)
    assert "c" not in view.saturated and "h" not in view.saturated  # unbounded states


async def test_gates_tab_follows_the_lstm_and_its_keys() -> None:
    app = make_app("lstm_sequence.prototxt", input=INPUTS, top_diff=["scores=ones"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        app.main_screen.layer_list.focus()
        await pilot.press("n", "n")  # input, lstm1 forward
        await settle(pilot)
        await select_layer(pilot, "lstm1")
        tabs = app.main_screen.query_one(TabbedContent)
        assert tabs.get_tab(TAB_GATES).display  # the layer's own tab is offered
        tabs.active = TAB_GATES
        await settle(pilot)
        pane = app.main_screen.query_one(GatesPane)
        assert pane.view is not None and pane.view.names[pane.view.index] == "i"
        info = str(pane.query_one("#gates-info").render())
        assert "12 time steps × 3 items × 16 units" in info
        assert "new sequence (cont 0) at t = 0, 7" in info  # item 0
        pane.focus()
        await pilot.press("right_square_bracket", "right_curly_bracket")
        await settle(pilot)
        assert pane.view.names[pane.view.index] == "f" and pane.view.n == 1
        assert "t = 0, 4" in str(pane.query_one("#gates-info").render())
        await select_layer(pilot, "scores")  # not recurrent: the tab goes away
        assert tabs.active != TAB_GATES and not tabs.get_tab(TAB_GATES).display
