"""RNN, LSTM, LSTMUnit: forward against element-by-element float64 loops written from
Caffe's unrolled nets (lstm_layer.cpp, rnn_layer.cpp, lstm_unit_layer.cpp), gradients
by central differences, Caffe's TestForward (one batch = step by step), a net."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.engine.blob import Blob
from bpinspect.engine.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.io.prototxt import parse_net
from bpinspect.session.gradcheck import check_layer, numerical_gradient

from ._harness import assert_passed, blob, make_layer, run_forward


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def dot(w, row, v):
    return sum(w[row, k] * v[k] for k in range(len(v)))


def ref_lstm(x, cont, w_xc, b_c, w_hc, h0, c0, xs=None, w_s=None):
    """Caffe's LSTM, one number at a time: h_conted = cont_t h_{t-1}; gate inputs
    W_xc x_t + b_c (+ W_xc_static x_static) + W_hc h_conted; rows i, f, o, g;
    c_t = (cont_t == 0 ? 0 : cont_t sigmoid(f')) c_{t-1} + i g; h_t = o tanh(c_t)."""
    t_steps, n = cont.shape
    hdim = w_hc.shape[1]
    xf = x.reshape(t_steps, n, -1)
    h = np.zeros((t_steps, n, hdim))
    c = np.zeros((t_steps, n, hdim))
    for b in range(n):
        hp, cp = list(h0[b]), list(c0[b])
        for t in range(t_steps):
            hc = [cont[t, b] * v for v in hp]
            pre = []
            for r in range(4 * hdim):
                v = dot(w_xc, r, xf[t, b]) + b_c[r] + dot(w_hc, r, hc)
                if xs is not None:
                    v += dot(w_s, r, xs.reshape(n, -1)[b])
                pre.append(v)
            for d in range(hdim):
                i = sig(pre[d])
                f = 0.0 if cont[t, b] == 0 else cont[t, b] * sig(pre[hdim + d])
                o = sig(pre[2 * hdim + d])
                g = math.tanh(pre[3 * hdim + d])
                c[t, b, d] = f * cp[d] + i * g
                h[t, b, d] = o * math.tanh(c[t, b, d])
            hp, cp = list(h[t, b]), list(c[t, b])
    return h, c


def ref_rnn(x, cont, w_xh, b_h, w_hh, w_ho, b_o, h0, xs=None, w_s=None):
    """Caffe's RNN: h_t = tanh(W_xh x_t + b_h (+ W_xh_static x_static) + W_hh cont_t h_{t-1}),
    o_t = tanh(W_ho h_t + b_o)."""
    t_steps, n = cont.shape
    hdim = w_hh.shape[0]
    xf = x.reshape(t_steps, n, -1)
    h = np.zeros((t_steps, n, hdim))
    o = np.zeros((t_steps, n, hdim))
    for b in range(n):
        hp = list(h0[b])
        for t in range(t_steps):
            hc = [cont[t, b] * v for v in hp]
            for r in range(hdim):
                v = dot(w_xh, r, xf[t, b]) + b_h[r] + dot(w_hh, r, hc)
                if xs is not None:
                    v += dot(w_s, r, xs.reshape(n, -1)[b])
                h[t, b, r] = math.tanh(v)
            for r in range(hdim):
                o[t, b, r] = math.tanh(dot(w_ho, r, h[t, b]) + b_o[r])
            hp = list(h[t, b])
    return h, o


def text(num_output, expose=False):
    return f"recurrent_param {{ num_output: {num_output} expose_hidden: {str(expose).lower()} }}"


# cont: a reset in the middle of stream 0, stream 1 continues from the start state,
# stream 2 starts at t = 0 and resets at t = 3.
CONT = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 1], [1, 1, 0]], dtype=float)


def inputs(static, seed=0, t=4, n=3, features=(2, 3)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (t, n) + features)
    xs = rng.uniform(-1, 1, (n, 2, 2)) if static else None
    return rng, x, xs


def params_for(layer, rng, scale=0.5):
    return [rng.uniform(-scale, scale, s) for s in layer.param_shapes]


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("expose", [False, True])
def test_lstm_forward(xp, static, expose):
    rng, x, xs = inputs(static)
    layer = make_layer("LSTM", text(5, expose))
    n, hdim = 3, 5
    h0 = rng.uniform(-1, 1, (1, n, hdim))
    c0 = rng.uniform(-1, 1, (1, n, hdim))
    bottoms = [x, CONT] + ([xs] if static else []) + ([h0, c0] if expose else [])
    layer.setup([b.shape for b in bottoms])
    assert layer.param_shapes == ([(20, 6), (20,)] + ([(20, 4)] if static else []) + [(20, 5)])
    params = params_for(layer, rng)
    _, tops = run_forward(layer, xp, bottoms, params)
    w_s = params[2] if static else None
    start_h = h0[0] if expose else np.zeros((n, hdim))
    start_c = c0[0] if expose else np.zeros((n, hdim))
    h, c = ref_lstm(x, CONT, params[0], params[1], params[-1], start_h, start_c, xs, w_s)
    np.testing.assert_allclose(to_host(tops[0].data), h, rtol=1e-12, atol=1e-13)
    if expose:
        assert len(tops) == 3
        np.testing.assert_allclose(to_host(tops[1].data), h[-1:], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(to_host(tops[2].data), c[-1:], rtol=1e-12, atol=1e-13)
    got = layer.internals()
    np.testing.assert_allclose(to_host(got["c"]), c, rtol=1e-12, atol=1e-13)
    for name in "ifog":
        assert got[name].shape == (4, n, hdim)
    # The gates are the activations: h = o tanh(c) and c = cont f c_prev + i g.
    np.testing.assert_allclose(to_host(got["o"]) * np.tanh(c), h, rtol=1e-12, atol=1e-13)
    assert np.all(to_host(got["f"]) > 0) and np.all(to_host(got["f"]) < 1)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("expose", [False, True])
def test_rnn_forward(xp, static, expose):
    rng, x, xs = inputs(static, seed=1)
    layer = make_layer("RNN", text(4, expose))
    n, hdim = 3, 4
    h0 = rng.uniform(-1, 1, (1, n, hdim))
    bottoms = [x, CONT] + ([xs] if static else []) + ([h0] if expose else [])
    layer.setup([b.shape for b in bottoms])
    assert layer.param_shapes == ([(4, 6), (4,)] + ([(4, 4)] if static else [])
                                  + [(4, 4), (4, 4), (4,)])
    params = params_for(layer, rng)
    _, tops = run_forward(layer, xp, bottoms, params)
    r = 3 if static else 2
    start = h0[0] if expose else np.zeros((n, hdim))
    h, o = ref_rnn(x, CONT, params[0], params[1], params[r], params[r + 1], params[r + 2],
                   start, xs, params[2] if static else None)
    np.testing.assert_allclose(to_host(tops[0].data), o, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_host(layer.internals()["h"]), h, rtol=1e-12, atol=1e-13)
    if expose:
        np.testing.assert_allclose(to_host(tops[1].data), h[-1:], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("type_name", ["LSTM", "RNN"])
@pytest.mark.parametrize("static", [False, True])
def test_gradients(xp, type_name, static):
    rng, x, xs = inputs(static, seed=2)
    # Every stream starts at t = 0: the state carried from the previous forward
    # (which the checker's many forwards would change) plays no part.
    cont = CONT.copy()
    cont[0] = 0
    bottoms = [x, cont] + ([xs] if static else [])
    layer = make_layer(type_name, text(3))
    layer.setup([b.shape for b in bottoms])
    params = params_for(layer, rng, 0.8)
    layer = make_layer(type_name, text(3))
    down = [True, False] + ([True] if static else [])
    results = check_layer(layer, [xp.asarray(b) for b in bottoms], [xp.asarray(p) for p in params],
                          propagate_down=down)
    assert len(results) == sum(down) + len(params)
    assert_passed(results)


def top0_gradcheck(layer, xp, bottoms, params, checked):
    """Central differences of <top[0], R> only (Caffe reads no diff of the end-state
    tops); returns (analytic, numeric) pairs for the checked bottoms and every param."""
    bottom_blobs, tops = run_forward(layer, xp, bottoms, params)
    r = xp.asarray(np.random.default_rng(5).standard_normal(tops[0].shape))
    for t in tops:
        t.diff = xp.asarray(np.random.default_rng(6).standard_normal(t.shape))
    tops[0].diff = r.copy()
    for p in layer.blobs:
        p.diff = xp.zeros(p.shape)
    down = [i in checked for i in range(len(bottoms))]
    layer.backward(tops, down, bottom_blobs)

    def objective():
        layer.forward(bottom_blobs, tops)
        return float(to_host((tops[0].data * r).sum()))

    pairs = []
    for target in [bottom_blobs[i] for i in checked] + layer.blobs:
        coords = [tuple(int(v) for v in np.unravel_index(k, target.shape))
                  for k in range(target.data.size)]
        numeric = numerical_gradient(objective, target.data, coords, 1e-6)
        pairs.append((to_host(target.diff).ravel(), numeric))
    return bottom_blobs, pairs


@pytest.mark.parametrize("type_name", ["LSTM", "RNN"])
def test_exposed_hidden_gradients_as_caffe(xp, type_name):
    """expose_hidden: x, x_static and the params by central differences (cont 1 at the
    first step, so the start state matters); the start states get a zero diff and the
    end-state top diffs are not read, as in Caffe (its unrolled net shares only their data)."""
    rng, x, xs = inputs(True, seed=3)
    cont = CONT.copy()
    cont[0] = 1
    states = 2 if type_name == "LSTM" else 1
    starts = [rng.uniform(-1, 1, (1, 3, 3)) for _ in range(states)]
    bottoms = [x, cont, xs] + starts
    layer = make_layer(type_name, text(3, True))
    layer.setup([b.shape for b in bottoms])
    params = params_for(layer, rng, 0.8)
    checked = [0, 2] + [3 + k for k in range(states)]
    bottom_blobs, pairs = top0_gradcheck(layer, xp, bottoms, params, checked)
    state_pairs = pairs[2:2 + states]
    for analytic, numeric in pairs[:2] + pairs[2 + states:]:
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    for analytic, numeric in state_pairs:
        assert np.all(analytic == 0)
        assert np.abs(numeric).max() > 1e-3  # the true derivative, which Caffe drops


def test_no_gradient_to_cont(xp):
    layer = make_layer("LSTM", text(2))
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    bottoms, tops = run_forward(layer, xp, [np.ones((2, 1, 3)), np.zeros((2, 1))],
                                [np.zeros(s) for s in [(8, 3), (8,), (8, 2)]])
    tops[0].diff = xp.ones(tops[0].shape)
    for p in layer.blobs:
        p.diff = xp.zeros(p.shape)
    with pytest.raises(BpinspectError, match="continuation"):
        layer.backward(tops, [True, True], bottoms)


@pytest.mark.parametrize("type_name", ["LSTM", "RNN"])
def test_caffe_test_forward_step_by_step(xp, type_name):
    """Caffe's TestForward: three steps in one batch (cont 0, 1, 1) equal three
    one-step forwards, the state carried between them; with cont 0 everywhere the
    steps after the first differ."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 3, 2))
    cont = np.array([[0, 0], [1, 1], [1, 1]], dtype=float)
    whole = make_layer(type_name, text(7))
    whole.setup([x.shape, cont.shape])
    params = [rng.normal(0, 0.2, s) for s in whole.param_shapes]
    _, tops = run_forward(whole, xp, [x, cont], params)
    full = to_host(tops[0].data)
    for reset in (False, True):
        step = make_layer(type_name, text(7))
        xb, cb = blob(xp, x[:1]), blob(xp, cont[:1])
        (shape,) = step.setup([xb.shape, cb.shape])
        step.blobs = [blob(xp, p) for p in params]
        out = Blob("top", shape, xp, xb.dtype)
        for t in range(3):
            xb.data = xp.asarray(x[t:t + 1])
            cb.data = xp.asarray(np.zeros((1, 2)) if reset else cont[t:t + 1])
            step.forward([xb, cb], [out])
            if reset and t > 0:
                assert np.all(to_host(out.data)[0] != full[t])
            else:
                np.testing.assert_allclose(to_host(out.data)[0], full[t], rtol=1e-12, atol=1e-14)
        step.reset()
        assert step.carry is None


def ref_unit(c_prev, a, cont):
    hdim = c_prev.shape[2]
    c, h = np.zeros_like(c_prev), np.zeros_like(c_prev)
    for n in range(c_prev.shape[1]):
        for d in range(hdim):
            i, o = sig(a[0, n, d]), sig(a[0, n, 2 * hdim + d])
            f = 0.0 if cont[0, n] == 0 else cont[0, n] * sig(a[0, n, hdim + d])
            g = math.tanh(a[0, n, 3 * hdim + d])
            c[0, n, d] = f * c_prev[0, n, d] + i * g
            h[0, n, d] = o * math.tanh(c[0, n, d])
    return c, h


@pytest.mark.parametrize("cont", [[0, 0, 0], [1, 0, 1], [0.5, 1, 0.25]])
def test_lstm_unit(xp, cont):
    rng = np.random.default_rng(8)
    c_prev = rng.uniform(-1, 1, (1, 3, 7))
    a = rng.uniform(-1, 1, (1, 3, 28))
    cont = np.array([cont], dtype=float)
    layer = make_layer("LSTMUnit", bottoms=("c_prev", "x", "cont"), tops=("c", "h"))
    _, tops = run_forward(layer, xp, [c_prev, a, cont])
    c, h = ref_unit(c_prev, a, cont)
    np.testing.assert_allclose(to_host(tops[0].data), c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_host(tops[1].data), h, rtol=1e-12, atol=1e-14)
    assert set(layer.internals()) == set("ifog")
    np.testing.assert_allclose(to_host(layer.internals()["g"]), np.tanh(a[:, :, 21:]), rtol=1e-12)
    layer = make_layer("LSTMUnit", bottoms=("c_prev", "x", "cont"), tops=("c", "h"))
    assert_passed(check_layer(layer, [xp.asarray(v) for v in (c_prev, a, cont)],
                              propagate_down=[True, True, False]))
    assert not layer.allow_force_backward(2)


def test_bad_shapes():
    with pytest.raises(BpinspectError, match="cont must have the shape"):
        make_layer("LSTM", text(2)).setup([(3, 2, 4), (3, 1)])
    with pytest.raises(BpinspectError, match="num_output"):
        make_layer("RNN", "").setup([(3, 2, 4), (3, 2)])
    with pytest.raises(BpinspectError, match="c0 must have the shape"):
        make_layer("LSTM", text(2, True)).setup([(3, 2, 4), (3, 2), (1, 2, 2), (1, 2, 3)])
    with pytest.raises(BpinspectError, match="bottom blobs"):
        make_layer("LSTM", text(2, True)).check_blob_counts(3, 3)
    with pytest.raises(BpinspectError, match="4 \\* H"):
        make_layer("LSTMUnit").setup([(1, 2, 3), (1, 2, 8), (1, 2)])


NET = """
name: "lstm"
force_backward: true
layer { name: "data" type: "Input" top: "x" top: "cont"
  input_param { shape { dim: 4 dim: 2 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
  recurrent_param { num_output: 5
    weight_filler { type: "uniform" min: -0.3 max: 0.3 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 2 axis: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "target" type: "Input" top: "t" input_param { shape { dim: 4 dim: 2 dim: 2 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def test_lstm_net_forward_backward():
    net = Net(parse_net(NET, "<test>"), dtype=np.float64)
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (4, 2, 3))
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)
    net.blobs["x"].data[...] = x
    net.blobs["cont"].data[...] = cont
    net.blobs["t"].data[...] = 0.2
    loss = sum(net.forward_layer(i) for i in range(len(net.layers)))
    w_xc, b_c, w_hc = (to_host(b.data) for b in net.params["lstm"])
    assert w_xc.shape == (20, 3) and b_c.shape == (20,) and w_hc.shape == (20, 5)
    np.testing.assert_array_equal(b_c, np.float32(0.1))  # the filler value is a float field
    h, _ = ref_lstm(x, cont, w_xc, b_c, w_hc, np.zeros((2, 5)), np.zeros((2, 5)))
    np.testing.assert_allclose(to_host(net.blobs["h"].data), h, rtol=1e-12, atol=1e-13)
    w_ip, b_ip = (to_host(b.data) for b in net.params["ip"])
    y = h @ w_ip.T + b_ip
    np.testing.assert_allclose(loss, ((y - 0.2) ** 2).sum() / 2 / 4, rtol=1e-12)
    net.clear_param_diffs()
    net.seed_loss_diffs()
    for i in reversed(range(len(net.layers))):
        net.backward_layer(i)
    i_lstm = net.layer_names.index("lstm")
    assert not net.bottom_need_backward[i_lstm][1]  # cont: no gradient
    # The weight diff against central differences of the whole net's loss.
    w = net.params["lstm"][2]

    def objective():
        return sum(net.forward_layer(i) for i in range(len(net.layers)))

    coords = [(0, 0), (7, 3), (19, 4)]
    numeric = numerical_gradient(objective, w.data, coords, 1e-6)
    np.testing.assert_allclose([to_host(w.diff)[c] for c in coords], numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(to_host(net.blobs["x"].diff)).max() > 0
