"""Every solver type, several iterations, against an independent float64 reference.

The reference below is written from Caffe's documented rules (sgd_solver.cpp
and its siblings, the .cu kernels' formulas), with its own forward and
backward of the little net; it never calls bpinspect. Only the initial
weights are taken from the solver's net (they come from its fillers).

The net: x -> ip1 (weight "w1", bias b1) -> tanh -> ip2 (weight "w1" shared,
bias b2 frozen with lr_mult 0) -> ip3 (W3, b3) -> EuclideanLoss against t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpinspect.engine.solver import get_solver
from bpinspect.io.solver_prototxt import parse_solver

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "h"
  param { name: "w1" decay_mult: 0.5 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.6 }
                        bias_filler { type: "constant" value: 0.2 } } }
layer { name: "act" type: "TanH" bottom: "h" top: "a" }
layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "h2"
  param { name: "w1" lr_mult: 1.5 } param { lr_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.6 }
                        bias_filler { type: "constant" value: 0.3 } } }
layer { name: "ip3" type: "InnerProduct" bottom: "h2" top: "out"
  param { lr_mult: 0.5 decay_mult: 2 } param { lr_mult: 1 decay_mult: 0 }
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.6 }
                        bias_filler { type: "constant" value: -0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "target" top: "loss" }
"""

# Learnable params in Caffe's order, with (lr_mult, decay_mult) as Net::AppendParam
# settles them: w1's lr_mult comes from ip2 (ip1 does not set it), its decay_mult
# from ip1; ip2's own weight is w1 itself.
KEYS = [("ip1", 0), ("ip1", 1), ("ip2", 1), ("ip3", 0), ("ip3", 1)]
MULTS = {("ip1", 0): (1.5, 0.5), ("ip1", 1): (2.0, 0.0), ("ip2", 1): (0.0, 1.0),
         ("ip3", 0): (0.5, 2.0), ("ip3", 1): (1.0, 0.0)}

X1 = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5], [-0.25, 0.5, 1.0], [1.0, -1.5, 0.5]])
X2 = np.array([[-1.0, 0.25, 0.5], [0.5, 0.5, -1.5], [1.25, -0.5, 0.0], [0.0, 1.0, -0.75]])
T = np.array([[0.5, -0.5], [1.0, 0.25], [-0.75, 0.5], [0.25, 1.0]])

MOMENTUM = {"SGD": 0.9, "Nesterov": 0.9, "AdaGrad": 0.0, "RMSProp": 0.0,
            "AdaDelta": 0.95, "Adam": 0.9}
BASE_LR = {"SGD": 0.1, "Nesterov": 0.1, "AdaGrad": 0.1, "RMSProp": 0.05,
           "AdaDelta": 1.0, "Adam": 0.05}


# ---- the reference ---------------------------------------------------------------


def ref_grads(p, x, t):
    """Loss and gradients of the net above (EuclideanLoss: sum((out - t)^2) / (2 N))."""
    w1, b1, b2, w3, b3 = p[KEYS[0]], p[KEYS[1]], p[KEYS[2]], p[KEYS[3]], p[KEYS[4]]
    n = x.shape[0]
    h = x @ w1.T + b1
    a = np.tanh(h)
    h2 = a @ w1.T + b2
    out = h2 @ w3.T + b3
    loss = float(np.sum((out - t) ** 2) / (2 * n))
    dout = (out - t) / n
    g = {KEYS[3]: dout.T @ h2, KEYS[4]: dout.sum(axis=0)}
    dh2 = dout @ w3
    g_w1 = dh2.T @ a
    # b2 has lr_mult 0: Caffe does not compute its gradient (param_propagate_down false).
    g[KEYS[2]] = np.zeros_like(b2)
    dh = (dh2 @ w1) * (1 - a * a)
    g[KEYS[0]] = g_w1 + dh.T @ x
    g[KEYS[1]] = dh.sum(axis=0)
    return loss, g


def ref_rate(cfg, it, current_step):
    """GetLearningRate, from the formulas in sgd_solver.cpp's comment."""
    base, policy = cfg["base_lr"], cfg["lr_policy"]
    gamma, power = cfg.get("gamma", 0.0), cfg.get("power", 0.0)
    if policy == "fixed":
        return base, current_step
    if policy == "step":
        step = it // cfg["stepsize"]
        return base * gamma ** step, step
    if policy == "exp":
        return base * gamma ** it, current_step
    if policy == "inv":
        return base * (1 + gamma * it) ** (-power), current_step
    if policy == "multistep":
        values = cfg["stepvalue"]
        if current_step < len(values) and it >= values[current_step]:
            current_step += 1
        return base * gamma ** current_step, current_step
    if policy == "poly":
        return base * (1 - it / cfg["max_iter"]) ** power, current_step
    if policy == "sigmoid":
        return base / (1 + math.exp(-gamma * (it - cfg["stepsize"]))), current_step
    raise AssertionError(policy)


def ref_update(kind, g, hist, local_rate, cfg, it):
    """ComputeUpdateValue for one param: returns the update, changes hist in place."""
    m = cfg.get("momentum", 0.0)
    delta = cfg.get("delta", 1e-8)
    if kind == "SGD":
        hist[0][...] = m * hist[0] + local_rate * g
        return hist[0].copy()
    if kind == "Nesterov":
        old = hist[0].copy()
        hist[0][...] = m * hist[0] + local_rate * g
        return (1 + m) * hist[0] - m * old
    if kind == "AdaGrad":
        hist[0][...] = hist[0] + g * g
        return local_rate * g / (np.sqrt(hist[0]) + delta)
    if kind == "RMSProp":
        rd = cfg.get("rms_decay", 0.99)
        hist[0][...] = rd * hist[0] + (1 - rd) * g * g
        return local_rate * g / (np.sqrt(hist[0]) + delta)
    if kind == "AdaDelta":
        hist[0][...] = m * hist[0] + (1 - m) * g * g
        u = g * np.sqrt((hist[1] + delta) / (hist[0] + delta))
        hist[1][...] = m * hist[1] + (1 - m) * u * u
        return local_rate * u
    if kind == "Adam":
        b1, b2 = m, cfg.get("momentum2", 0.999)
        hist[0][...] = b1 * hist[0] + (1 - b1) * g
        hist[1][...] = b2 * hist[1] + (1 - b2) * g * g
        t = it + 1
        corr = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return local_rate * corr * hist[0] / (np.sqrt(hist[1]) + delta)
    raise AssertionError(kind)


class Reference:
    """The whole of ApplyUpdate on a dict of float64 params."""

    def __init__(self, kind, cfg, params):
        self.kind, self.cfg = kind, cfg
        self.p = {k: v.copy() for k, v in params.items()}
        sets = 2 if kind in ("AdaDelta", "Adam") else 1
        self.hist = {k: [np.zeros_like(v) for _ in range(sets)] for k, v in params.items()}
        self.it = 0
        self.current_step = 0

    def iteration(self, batches):
        """One iteration over iter_size batches; returns (loss, accumulated grads, updates)."""
        cfg = self.cfg
        loss, acc = 0.0, {k: np.zeros_like(v) for k, v in self.p.items()}
        for x in batches:
            batch_loss, g = ref_grads(self.p, x, T)
            loss += batch_loss
            for k in acc:
                acc[k] += g[k]
        loss /= len(batches)
        rate, self.current_step = ref_rate(cfg, self.it, self.current_step)
        grads = {k: v.copy() for k, v in acc.items()}
        clip = cfg.get("clip_gradients", -1)
        norm = math.sqrt(sum(float(np.sum(v * v)) for v in grads.values()))
        if clip >= 0 and norm > clip:
            for v in grads.values():
                v *= clip / norm
        updates = {}
        for k in KEYS:
            lr_mult, decay_mult = MULTS[k]
            g = grads[k] / len(batches)
            decay = cfg.get("weight_decay", 0.0) * decay_mult
            if cfg.get("regularization_type", "L2") == "L2":
                g = g + decay * self.p[k]
            else:
                g = g + decay * np.sign(self.p[k])
            updates[k] = ref_update(self.kind, g, self.hist[k], rate * lr_mult, cfg, self.it)
        for k in KEYS:
            self.p[k] = self.p[k] - updates[k]
        self.it += 1
        return loss, acc, updates, rate, norm


# ---- the configurations ------------------------------------------------------------

CONFIGS = {
    "fixed": {"lr_policy": "fixed"},
    "step-l2": {"lr_policy": "step", "stepsize": 2, "gamma": 0.5, "weight_decay": 0.01},
    "exp-l1": {"lr_policy": "exp", "gamma": 0.9, "weight_decay": 0.02,
               "regularization_type": "L1"},
    "inv-clip-inactive": {"lr_policy": "inv", "gamma": 0.25, "power": 0.75,
                          "clip_gradients": 1000.0, "weight_decay": 0.005},
    "multistep-clip-active": {"lr_policy": "multistep", "gamma": 0.5, "stepvalue": [1, 3],
                              "clip_gradients": 0.05},
    "poly": {"lr_policy": "poly", "power": 2.0, "max_iter": 8, "weight_decay": 0.01},
    "sigmoid": {"lr_policy": "sigmoid", "gamma": 0.5, "stepsize": 2},
}
TYPES = ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"]


def solver_text(kind, cfg, iter_size=1):
    lines = [f'type: "{kind}"', f"base_lr: {BASE_LR[kind]}", f"momentum: {MOMENTUM[kind]}",
             f"iter_size: {iter_size}", "max_iter: 100"]
    if kind == "AdaDelta":
        lines.append("delta: 1e-6")
    for name, value in cfg.items():
        if name == "max_iter":
            lines[4] = f"max_iter: {value}"
        elif isinstance(value, list):
            lines += [f"{name}: {v}" for v in value]
        elif isinstance(value, str):
            lines.append(f'{name}: "{value}"')
        else:
            lines.append(f"{name}: {value}")
    net = NET.replace("\n", " ")
    return "\n".join(lines) + f"\nnet_param {{ {net[net.index('layer'):]} }}\n"


def ref_cfg(kind, cfg, param):
    """The reference's hyperparameters: the solver file's values as float32 (as the
    proto holds them) and Caffe's defaults."""
    out = dict(cfg)
    for name in ("base_lr", "momentum", "gamma", "power", "weight_decay", "clip_gradients",
                 "delta", "momentum2", "rms_decay"):
        if param.HasField(name) or name in ("delta", "momentum2", "rms_decay"):
            out[name] = float(getattr(param, name))
    return out


def make(kind, cfg, iter_size=1):
    param = parse_solver(solver_text(kind, cfg, iter_size))
    solver = get_solver(param, dtype=np.float64)
    solver.net.blobs["data"].data[...] = X1
    solver.net.blobs["target"].data[...] = T
    params0 = {k: solver.net.params[k[0]][k[1]].data.copy() for k in KEYS}
    return solver, Reference(kind, ref_cfg(kind, cfg, param), params0)


def check_params(solver, ref, rtol=1e-10):
    for k in KEYS:
        np.testing.assert_allclose(solver.net.params[k[0]][k[1]].data, ref.p[k], rtol=rtol,
                                   atol=1e-13, err_msg=str(k))


# ---- the tests ------------------------------------------------------------------------


def test_learnable_params_follow_net_cpp():
    solver, _ = make("SGD", CONFIGS["fixed"])
    assert [p.key for p in solver.learnable] == KEYS
    assert {p.key: (p.lr_mult, p.decay_mult) for p in solver.learnable} == MULTS
    assert solver.learnable[0].shared_by == [("ip2", 0)]
    assert solver.net.params["ip2"][0] is solver.net.params["ip1"][0]


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", TYPES)
def test_step_matches_reference(kind, config):
    cfg = CONFIGS[config]
    solver, ref = make(kind, cfg)
    for it in range(5):
        loss, _, updates, rate, _ = ref.iteration([X1])
        solver.step(1)
        assert solver.iter == it + 1
        check_params(solver, ref)
        for k in KEYS:  # after an iteration a param's diff holds its update
            np.testing.assert_allclose(solver.net.params[k[0]][k[1]].diff, updates[k],
                                       rtol=1e-10, atol=1e-14)
    assert solver.current_step == ref.current_step
    n = len(KEYS)
    for i, k in enumerate(KEYS):
        for s, h in enumerate(ref.hist[k]):
            np.testing.assert_allclose(solver.history[s * n + i], h, rtol=1e-10, atol=1e-14)
    assert len(solver.history) == n * len(ref.hist[KEYS[0]])


@pytest.mark.parametrize("kind", TYPES)
def test_the_update_in_chunks_over_threads_is_the_same_bits(kind, monkeypatch):
    """The CPU update walks each param in chunks, split over the threads: chunks of
    two values (w1's nine in five) over three threads give the reference's steps
    and, bit for bit, the single-threaded run's params, history and report."""
    from bpinspect.engine import solver as solver_module
    from bpinspect.layers import _parallel

    monkeypatch.setattr(solver_module, "_CHUNK", 2)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 1)  # threads even for tiny params
    runs = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("BPINSPECT_NUM_THREADS", threads)
        solver, ref = make(kind, CONFIGS["step-l2"] | {"clip_gradients": 0.5})
        reports = []
        for _ in range(3):
            ref.iteration([X1])
            solver.begin_iteration()
            solver.forward_backward()
            reports.append(solver.apply_update())
            solver.finish_iteration(0.0)
        check_params(solver, ref)
        runs[threads] = ([solver.net.params[k[0]][k[1]].data.copy() for k in KEYS],
                         [h.copy() for h in solver.history],
                         [(r.grad_norm, [(p.update_norm, p.data_norm_after)
                                         for p in r.params.values()]) for r in reports])
    (data1, hist1, rep1), (data3, hist3, rep3) = runs["1"], runs["3"]
    for a, b in zip(data1 + hist1, data3 + hist3, strict=True):
        np.testing.assert_array_equal(a, b)
    assert rep1 == rep3


@pytest.mark.parametrize("kind", TYPES)
def test_apply_update_report(kind):
    """Driving the parts by hand, iter_size 2 with two different batches, clipping active."""
    cfg = {"lr_policy": "step", "stepsize": 1, "gamma": 0.5, "weight_decay": 0.01,
           "clip_gradients": 0.1}
    solver, ref = make(kind, cfg, iter_size=2)
    for it in range(3):
        _, acc, updates, rate, norm = ref.iteration([X1, X2])
        solver.begin_iteration()
        total = 0.0
        for x in (X1, X2):
            solver.net.blobs["data"].data[...] = x
            total += solver.forward_backward()
        report = solver.apply_update(record=True)
        solver.finish_iteration(total / 2)
        assert report.iter == it and solver.iter == it + 1
        assert report.rate == pytest.approx(rate, rel=1e-12)
        assert report.grad_norm == pytest.approx(norm, rel=1e-10)
        assert norm > 0.1
        assert report.clip_scale == pytest.approx(ref.cfg["clip_gradients"] / norm, rel=1e-10)
        assert list(report.params) == KEYS
        for k in KEYS:
            r = report.params[k]
            lr_mult, decay_mult = MULTS[k]
            assert (r.lr_mult, r.decay_mult) == (lr_mult, decay_mult)
            assert r.local_rate == pytest.approx(rate * lr_mult, rel=1e-12)
            assert r.local_decay == pytest.approx(0.01 * decay_mult, rel=1e-6)
            np.testing.assert_allclose(r.diff_in, acc[k], rtol=1e-10, atol=1e-14)
            assert r.diff_norm == pytest.approx(np.linalg.norm(acc[k]), rel=1e-10, abs=1e-14)
            assert r.update_norm == pytest.approx(np.linalg.norm(updates[k]), rel=1e-9,
                                                  abs=1e-14)
            before = r.data_before
            assert r.data_norm_before == pytest.approx(np.linalg.norm(before), rel=1e-12)
            assert r.data_norm_after == pytest.approx(np.linalg.norm(ref.p[k]), rel=1e-10)
            assert r.ratio == pytest.approx(r.update_norm / r.data_norm_before, rel=1e-12)
        check_params(solver, ref)


def test_frozen_param_does_not_move_but_its_history_does():
    solver, ref = make("AdaGrad", CONFIGS["step-l2"])
    b2 = solver.net.params["ip2"][1]
    start = b2.data.copy()
    solver.step(3)
    ref.iteration([X1]), ref.iteration([X1]), ref.iteration([X1])
    np.testing.assert_array_equal(b2.data, start)
    # Regularize added weight_decay * b2 to its (zero) diff: AdaGrad's history grew.
    h = solver.history[KEYS.index(("ip2", 1))]
    np.testing.assert_allclose(h, 3 * (float(np.float32(0.01)) * start) ** 2, rtol=1e-10)


def test_clipping_inactive_reports_none():
    solver, _ = make("SGD", CONFIGS["inv-clip-inactive"])
    solver.begin_iteration()
    solver.forward_backward()
    report = solver.apply_update()
    assert report.clip_scale is None and report.grad_norm < 1000


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_step_with_iter_size_2(kind):
    """Step's own loop: two forward-backwards per iteration on the same batch, the diffs
    summed and normalized by 1/2; clipping compares the summed diffs."""
    cfg = {"lr_policy": "fixed", "clip_gradients": 0.3, "weight_decay": 0.01}
    solver, ref = make(kind, cfg, iter_size=2)
    for _ in range(3):
        loss, *_ = ref.iteration([X1, X1])
        solver.step(1)
        check_params(solver, ref)
        assert solver.smoothed_loss == pytest.approx(loss, rel=1e-12)


def test_smoothed_loss_averages_the_last_average_loss():
    param = parse_solver(solver_text("SGD", CONFIGS["fixed"]) + "average_loss: 2\n")
    solver = get_solver(param, dtype=np.float64)
    solver.net.blobs["data"].data[...] = X1
    solver.net.blobs["target"].data[...] = T
    ref = Reference("SGD", ref_cfg("SGD", CONFIGS["fixed"], param),
                    {k: solver.net.params[k[0]][k[1]].data.copy() for k in KEYS})
    losses = [ref.iteration([X1])[0] for _ in range(4)]
    solver.step(4)
    assert solver.smoothed_loss == pytest.approx((losses[2] + losses[3]) / 2, rel=1e-12)


def test_pycaffe_usage(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmomentum: 0.9\n'
        "test_iter: 1\ntest_interval: 2\n"
    )
    import bpinspect

    s = bpinspect.get_solver(str(tmp_path / "solver.prototxt"), dtype=np.float64)
    assert isinstance(s, bpinspect.SGDSolver) and s.type == "SGD"
    s.net.blobs["data"].data[...] = X1
    s.net.blobs["target"].data[...] = T
    ref = Reference("SGD", ref_cfg("SGD", {"lr_policy": "fixed"}, s.param),
                    {k: s.net.params[k[0]][k[1]].data.copy() for k in KEYS})
    for _ in range(3):
        _, _, updates, _, _ = ref.iteration([X1])
    s.step(3)
    assert s.iter == 3
    np.testing.assert_allclose(s.net.params["ip3"][0].diff, updates[("ip3", 0)], rtol=1e-10)
    assert s.test_nets[0].params["ip3"][0] is s.net.params["ip3"][0]
    assert s.lr == pytest.approx(0.1, rel=1e-7)


def test_save_state_load_state_undoes_an_update():
    solver, _ = make("Adam", CONFIGS["multistep-clip-active"])
    solver.step(2)
    saved = solver.save_state()
    data = {k: solver.net.params[k[0]][k[1]].data.copy() for k in KEYS}
    solver.step(1)
    after = {k: solver.net.params[k[0]][k[1]].data.copy() for k in KEYS}
    solver.load_state(saved)
    for k in KEYS:
        solver.net.params[k[0]][k[1]].data[...] = data[k]
    assert solver.iter == 2 and solver.current_step == saved.current_step
    solver.step(1)
    for k in KEYS:
        np.testing.assert_array_equal(solver.net.params[k[0]][k[1]].data, after[k])


def test_net_dtype_follows_the_solver():
    solver, _ = make("SGD", CONFIGS["fixed"])
    assert solver.net.dtype == np.float64 and solver.history[0].dtype == np.float64


@pytest.mark.parametrize("kind", TYPES)
def test_the_device_matches_the_reference(xp, kind):
    """The same rules on CuPy arrays (skipped without a GPU); NumPy is the case above."""
    from bpinspect.backend import CPU, select_device, to_host

    device = CPU if xp is np else select_device("gpu")
    param = parse_solver(solver_text(kind, CONFIGS["multistep-clip-active"]))
    solver = get_solver(param, dtype=np.float64, device=device)
    solver.net.blobs["data"].data[...] = xp.asarray(X1)
    solver.net.blobs["target"].data[...] = xp.asarray(T)
    params0 = {k: to_host(solver.net.params[k[0]][k[1]].data).copy() for k in KEYS}
    ref = Reference(kind, ref_cfg(kind, CONFIGS["multistep-clip-active"], param), params0)
    for _ in range(3):
        ref.iteration([X1])
    solver.step(3)
    for k in KEYS:
        np.testing.assert_allclose(to_host(solver.net.params[k[0]][k[1]].data), ref.p[k],
                                   rtol=1e-10, atol=1e-13)
