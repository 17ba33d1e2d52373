"""Solvers from files: nets and paths, test nets, snapshots and restore, one-line errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bpinspect.engine.solver import AdamSolver, SGDSolver, Solver, get_solver
from bpinspect.errors import BpinspectError
from bpinspect.io.solverstate import read_solverstate, write_solverstate
from bpinspect.proto import caffe_pb2

NET = """
name: "small"
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 5 dim: 4 } shape { dim: 5 dim: 3 }
    data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: -0.25 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 }
                        bias_filler { type: "constant" value: 0.1 } } }
layer { name: "scaled" type: "Power" bottom: "ip" top: "scaled" power_param { scale: 2 }
  include { phase: TEST } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""


def write(tmp_path, solver, net=NET):
    (tmp_path / "net.prototxt").write_text(net)
    (tmp_path / "solver.prototxt").write_text(solver)
    return str(tmp_path / "solver.prototxt")


BASE = 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'


# ---- nets, paths, test nets --------------------------------------------------------------


def test_net_path_relative_to_the_solver_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    s = get_solver(write(tmp_path, BASE))
    assert s.net.phase == "train" and "scaled" not in s.net.layer_names
    assert s.test_nets == []


def test_net_path_relative_to_the_working_directory_first(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", BASE)  # a net.prototxt beside the solver...
    bigger = NET.replace("num_output: 3", "num_output: 3 bias_term: false")
    (tmp_path / "net.prototxt").write_text(bigger)  # ...and another in the working dir
    monkeypatch.chdir(tmp_path)
    s = get_solver(str(tmp_path / "sub" / "solver.prototxt"))
    assert len(s.net.params["ip"]) == 1


def test_generic_net_gives_test_nets_in_test_phase_sharing_the_params(tmp_path):
    path = write(tmp_path, BASE + "test_iter: 2\ntest_iter: 1\ntest_interval: 3\n"
                 "test_compute_loss: true\n")
    s = get_solver(path, dtype=np.float64)
    assert len(s.test_nets) == 2
    for t in s.test_nets:
        assert t.phase == "test" and "scaled" in t.layer_names
        assert t.params["ip"][0] is s.net.params["ip"][0]
        assert t.layers[t.layer_index("ip")].blobs[1] is s.net.params["ip"][1]
    s.net.params["ip"][0].data[...] = 0.2
    results = s.test_all()
    w = s.net.params["ip"][0].data
    b = s.net.params["ip"][1].data
    ip = np.full((5, 4), 0.5) @ w.T + b
    loss = np.sum((ip + 0.25) ** 2) / 10
    first = results[0]
    assert [o.blob for o in first.outputs] == ["loss"] + ["scaled"] * 15
    assert first.outputs[0].value == pytest.approx(loss, rel=1e-12)
    assert first.outputs[0].loss_weight == 1.0 and first.outputs[1].loss_weight == 0.0
    np.testing.assert_allclose(first.scores["scaled"], 2 * ip, rtol=1e-12)
    assert first.loss == pytest.approx(loss, rel=1e-12)
    assert first.lines()[0] == "Iteration 0, Testing net (#0)"
    assert "(* 1 = " in first.lines()[2]


def test_test_due_and_step_tests(tmp_path):
    s = get_solver(write(tmp_path, BASE + "test_iter: 1\ntest_interval: 2\n"))
    assert s.test_due()
    s.step(1)
    assert s.test_results[0].iter == 0 and not s.test_due()
    s.step(2)
    assert s.test_results[0].iter == 2
    s2 = get_solver(write(tmp_path, BASE + "test_iter: 1\ntest_interval: 2\n"
                          "test_initialization: false\n"))
    assert not s2.test_due()


def test_test_state_and_train_state_merge(tmp_path):
    net = NET.replace('include { phase: TEST }', 'include { stage: "val" }')
    path = write(tmp_path, BASE + 'test_iter: 1\ntest_interval: 1\ntest_state { stage: "val" }\n'
                 'train_state { level: 2 }\n', net)
    s = get_solver(path)
    assert "scaled" in s.test_nets[0].layer_names and "scaled" not in s.net.layer_names
    assert s.net.state.level == 2 and s.net.state.phase == caffe_pb2.TRAIN


def test_inline_net_param_and_test_net_file(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    body = NET[NET.index("layer"):]
    path = tmp_path / "solver.prototxt"
    path.write_text(f"train_net_param {{ {body} }}\ntest_net: \"net.prototxt\"\ntest_iter: 1\n"
                    "test_interval: 1\nbase_lr: 0.1\nlr_policy: \"fixed\"\n")
    s = get_solver(str(path))
    assert s.net.phase == "train" and s.test_nets[0].phase == "test"
    assert s.test_nets[0].params["ip"][0] is s.net.params["ip"][0]


def test_random_seed_seeds_the_nets(tmp_path):
    net = NET.replace('weight_filler { type: "gaussian" std: 0.3 }', "")
    a = get_solver(write(tmp_path, BASE + "random_seed: 5\n", net))
    b = get_solver(write(tmp_path, BASE + "random_seed: 5\n", net))
    c = get_solver(write(tmp_path, BASE + "random_seed: 6\n", net))
    d = get_solver(write(tmp_path, BASE + "random_seed: 6\n", net), seed=5)
    wa, wb = a.net.params["ip"][0].data, b.net.params["ip"][0].data
    assert a.net.seed == 5 and np.array_equal(wa, wb)
    assert not np.array_equal(wa, c.net.params["ip"][0].data)
    assert np.array_equal(wa, d.net.params["ip"][0].data)


def test_weights_are_copied_into_train_and_test_nets(tmp_path):
    s = get_solver(write(tmp_path, BASE))
    s.net.params["ip"][0].data[...] = 0.75
    s.net.save(str(tmp_path / "w.caffemodel"))
    path = write(tmp_path, BASE + "test_iter: 1\ntest_interval: 1\n")
    t = get_solver(path, weights=f"{tmp_path / 'w.caffemodel'}, {tmp_path / 'w.caffemodel'}")
    assert np.all(t.net.params["ip"][0].data == 0.75)
    assert np.all(t.test_nets[0].params["ip"][0].data == 0.75)


def test_type_of_the_class_wins_with_a_note(tmp_path):
    s = SGDSolver(write(tmp_path, BASE + 'type: "Adam"\n'))
    assert s.type == "SGD" and any("running it as a SGD solver" in n for n in s.notes)
    assert isinstance(get_solver(write(tmp_path, BASE + 'type: "Adam"\n')), AdamSolver)


# ---- snapshots and restore ------------------------------------------------------------------


SNAP = (BASE.replace('"fixed"', '"multistep"') +
        'type: "Adam"\nmomentum: 0.9\ngamma: 0.5\nstepvalue: 1\nstepvalue: 3\nweight_decay: 0.01\n'
        'snapshot: 2\nsnapshot_prefix: "snaps/small"\nmax_iter: 5\n')


@pytest.mark.parametrize("kind", ["Adam", "AdaDelta", "Nesterov"])
def test_snapshot_restore_continues_bit_for_bit(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    path = write(tmp_path, SNAP.replace('"Adam"', f'"{kind}"'))
    a = get_solver(path)
    a.step(2)  # snapshot at iteration 2
    model = tmp_path / "snaps" / "small_iter_2.caffemodel"
    state = tmp_path / "snaps" / "small_iter_2.solverstate"
    assert model.exists() and state.exists()
    saved = read_solverstate(state)
    assert saved.iter == 2 and saved.learned_net == "snaps/small_iter_2.caffemodel"
    assert saved.current_step == a.current_step == 1
    assert len(saved.history) == len(a.history)
    a.step(2)

    b = get_solver(path)
    b.restore(str(state))
    assert b.iter == 2 and b.current_step == 1
    b.step(2)
    assert b.iter == a.iter == 4 and b.current_step == a.current_step
    for name in ("ip",):
        for pa, pb in zip(a.net.params[name], b.net.params[name], strict=True):
            assert np.array_equal(pa.data, pb.data) and np.array_equal(pa.diff, pb.diff)
    for ha, hb in zip(a.history, b.history, strict=True):
        assert np.array_equal(ha, hb)


def test_a_float64_solver_snapshots_double_data_and_diffs_and_restores_bit_for_bit(
        tmp_path, monkeypatch):
    from bpinspect.io.caffemodel import read_caffemodel

    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    path = write(tmp_path, SNAP + "snapshot_diff: true\n")
    a = get_solver(path, dtype=np.float64)
    a.step(2)
    saved = read_caffemodel(tmp_path / "snaps" / "small_iter_2.caffemodel")
    (ip,) = [layer for layer in saved.layer if layer.name == "ip"]
    weight = ip.blobs[0]
    assert not len(weight.data) and len(weight.double_data) == a.net.params["ip"][0].data.size
    np.testing.assert_array_equal(np.array(weight.double_data), a.net.params["ip"][0].data.ravel())
    np.testing.assert_array_equal(np.array(weight.double_diff), a.net.params["ip"][0].diff.ravel())
    a.step(2)
    b = get_solver(path, dtype=np.float64)
    b.restore(str(tmp_path / "snaps" / "small_iter_2.solverstate"))
    b.step(2)
    for pa, pb in zip(a.net.params["ip"], b.net.params["ip"], strict=True):
        assert np.array_equal(pa.data, pb.data)


def test_hdf5_snapshots_hold_caffes_layout_and_restore_bit_for_bit(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    path = write(tmp_path, SNAP + "snapshot_format: HDF5\nsnapshot_diff: true\n")
    a = get_solver(path)
    assert not any("snapshot_diff" in n for n in a.notes)
    a.step(2)  # snapshot at iteration 2
    model = tmp_path / "snaps" / "small_iter_2.caffemodel.h5"
    state = tmp_path / "snaps" / "small_iter_2.solverstate.h5"
    # Read back here with h5py alone: Net::ToHDF5's and SnapshotSolverStateToHDF5's layout.
    with h5py.File(model, "r") as f:
        assert sorted(f) == ["data", "diff"]
        assert list(f["data"]) == a.net.layer_names  # every layer, in net order
        for j, blob in enumerate(a.net.params["ip"]):
            np.testing.assert_array_equal(f["data"]["ip"][str(j)][()], blob.data)
            np.testing.assert_array_equal(f["diff"]["ip"][str(j)][()], blob.diff)
    with h5py.File(state, "r") as f:
        assert int(f["iter"][()]) == 2 and int(f["current_step"][()]) == a.current_step == 1
        assert f["learned_net"][()] == b"snaps/small_iter_2.caffemodel.h5"
        assert len(f["history"]) == len(a.history)
        for i, h in enumerate(a.history):
            np.testing.assert_array_equal(f["history"][str(i)][()], h)
    a.step(2)

    b = get_solver(path)
    b.restore(str(state))
    assert b.iter == 2 and b.current_step == 1
    b.step(2)
    for pa, pb in zip(a.net.params["ip"], b.net.params["ip"], strict=True):
        assert np.array_equal(pa.data, pb.data) and np.array_equal(pa.diff, pb.diff)
    for ha, hb in zip(a.history, b.history, strict=True):
        assert np.array_equal(ha, hb)


def test_hdf5_weights_are_told_by_their_signature_and_shared_params_written_once(tmp_path):
    from bpinspect.engine.net import Net
    from bpinspect.io.prototxt import parse_net

    h5py = pytest.importorskip("h5py")
    text = NET.replace(
        'layer { name: "loss"',
        'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" '
        'param { name: "w" } param { name: "b" } inner_product_param { num_output: 3 } }\n'
        'layer { name: "loss"').replace(
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"',
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'param { name: "w" } param { name: "b" }')
    net = Net(parse_net(text), seed=3)
    weights = tmp_path / "w.caffemodel"  # no .h5: the signature says what it is
    net.save_hdf5(weights)
    with h5py.File(weights, "r") as f:
        assert sorted(f["data"]["ip"]) == ["0", "1"] and len(f["data"]["ip2"]) == 0
        np.testing.assert_array_equal(f["data"]["ip"]["0"][()], net.params["ip"][0].data)
    other = Net(parse_net(text), seed=4, weights=str(weights))
    for j in range(2):
        np.testing.assert_array_equal(other.params["ip"][j].data, net.params["ip"][j].data)
        np.testing.assert_array_equal(other.params["ip2"][j].data, net.params["ip"][j].data)
    fresh = Net(parse_net(text), seed=5)
    fresh.copy_from(str(weights))
    np.testing.assert_array_equal(fresh.params["ip"][0].data, net.params["ip"][0].data)

    with h5py.File(tmp_path / "bad.h5", "w") as f:  # the owner's dataset missing
        f.create_group("data").create_group("ip")
    with pytest.raises(BpinspectError) as e:
        fresh.copy_from(str(tmp_path / "bad.h5"))
    assert "incompatible number of blobs for layer 'ip': no dataset data/ip/0" in one_line(e)


def test_restore_finds_learned_net_beside_the_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    a = get_solver(write(tmp_path, SNAP))
    a.step(2)
    monkeypatch.chdir("/")  # learned_net "snaps/small_iter_2.caffemodel" is now relative to nothing
    b = get_solver(str(tmp_path / "solver.prototxt"))
    b.restore(str(tmp_path / "snaps" / "small_iter_2.solverstate"))
    assert np.array_equal(b.net.params["ip"][0].data, a.net.params["ip"][0].data)


def test_snapshot_returns_paths_and_solve_snapshots_after_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    s = get_solver(write(tmp_path, SNAP.replace("max_iter: 5", "max_iter: 3")))
    s.solve()
    assert s.iter == 3
    names = sorted(os.listdir(tmp_path / "snaps"))
    assert names == ["small_iter_2.caffemodel", "small_iter_2.solverstate",
                     "small_iter_3.caffemodel", "small_iter_3.solverstate"]
    assert s.snapshot() == ("snaps/small_iter_3.caffemodel", "snaps/small_iter_3.solverstate")


def test_solve_resumes_from_a_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    a = get_solver(write(tmp_path, SNAP))
    a.solve()
    b = get_solver(str(tmp_path / "solver.prototxt"))
    b.solve("snaps/small_iter_4.solverstate")
    assert b.iter == 5
    assert np.array_equal(a.net.params["ip"][0].data, b.net.params["ip"][0].data)


def test_float64_history_round_trips_through_double_data(tmp_path):
    history = [np.array([[1 / 3, 2 / 7]]), np.array([0.1, 1e-300, -5.0])]
    write_solverstate(tmp_path / "x.solverstate", 7, "m.caffemodel", history, 2)
    saved = read_solverstate(tmp_path / "x.solverstate")
    assert (saved.iter, saved.learned_net, saved.current_step) == (7, "m.caffemodel", 2)
    assert list(saved.history[0].double_data) == [1 / 3, 2 / 7]
    assert list(saved.history[1].shape.dim) == [3]


def test_solverstate_bytes_are_protobufs_own(tmp_path):
    history = [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0,), np.float32),
               np.array([0.5, 1.5])]
    write_solverstate(tmp_path / "x.solverstate", 3, "m.caffemodel", history, 1)
    expected = caffe_pb2.SolverState(iter=3, learned_net="m.caffemodel", current_step=1)
    for a in history:
        blob = expected.history.add()
        blob.shape.dim.extend(a.shape)
        if a.dtype == np.float64:
            blob.double_data.extend(a.ravel().tolist())
        else:
            blob.data.extend(a.ravel().tolist())
    assert (tmp_path / "x.solverstate").read_bytes() == expected.SerializeToString()


# ---- one-line errors ------------------------------------------------------------------------


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base_lr: 0.1\nlr_policy: 'fixed'\n", "must specify a train net using one of"),
        (BASE + 'train_net: "net.prototxt"\n', "must not contain more than one (net, train_net)"),
        (BASE + 'type: "Fancy"\n', "unknown solver type 'Fancy' (known types: AdaDelta"),
        (BASE.replace('"fixed"', '"cosine"'), "unknown learning rate policy lr_policy: 'cosine'"),
        (BASE + "snapshot: 10\nsnapshot_prefix: 'nowhere/x'\n",
         "cannot write to snapshot_prefix 'nowhere/x': directory 'nowhere' does not exist"),
        (BASE + 'type: "AdaGrad"\nmomentum: 0.9\n', "momentum cannot be used with AdaGrad"),
        (BASE + 'type: "RMSProp"\nrms_decay: 1\n', "rms_decay should lie between 0 and 1"),
        (BASE + "test_interval: 1\ntest_net: 'net.prototxt'\n",
         "test_iter must be specified for each test network"),
        (BASE + "test_iter: 1\n", "1 test net(s) need test_interval > 0"),
        (BASE + "test_iter: 1\ntest_interval: 1\ntest_state {}\ntest_state {}\n",
         "test_state must be unspecified or specified once per test net"),
        (BASE + "average_loss: 0\n", "average_loss should be at least 1"),
        ('net: "missing.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n',
         "net 'missing.prototxt': no such file"),
    ],
)
def test_bad_solver_files(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BpinspectError) as e:
        get_solver(write(tmp_path, text))
    assert message in one_line(e)


def test_unknown_regularization_type_at_the_update(tmp_path):
    s = get_solver(write(tmp_path, BASE + "weight_decay: 0.1\nregularization_type: 'L3'\n"))
    with pytest.raises(BpinspectError) as e:
        s.step(1)
    assert "unknown regularization_type 'L3'" in one_line(e) and s.iter == 0


def test_mismatched_lr_mult_of_a_shared_param(tmp_path):
    net = NET.replace(
        'layer { name: "loss"',
        'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" '
        'param { name: "w" lr_mult: 2 } param { lr_mult: 1 } '
        'inner_product_param { num_output: 3 } }\nlayer { name: "loss"').replace(
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"',
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'param { name: "w" lr_mult: 1 }')
    with pytest.raises(BpinspectError) as e:
        get_solver(write(tmp_path, BASE, net))
    assert "shared param 'w' has mismatched lr_mult" in one_line(e)


def test_restore_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    a = get_solver(write(tmp_path, SNAP))  # Adam: 4 history blobs
    a.step(2)
    state = str(tmp_path / "snaps" / "small_iter_2.solverstate")

    sgd = get_solver(write(tmp_path, SNAP.replace('"Adam"', '"SGD"')))
    with pytest.raises(BpinspectError) as e:
        sgd.restore(state)
    assert "incorrect number of history blobs: 4 in the file" in one_line(e)
    assert sgd.iter == 0

    other = NET.replace("num_output: 3", "num_output: 3").replace("dim: 5 dim: 4", "dim: 5 dim: 2")
    wrong = get_solver(write(tmp_path, SNAP, other))
    with pytest.raises(BpinspectError) as e:
        wrong.restore(state)
    message = one_line(e)
    assert message.startswith(state) and "history blob 0 (param ip[0])" in message
    assert "the file has (3, 4), the net has (3, 2)" in message

    with pytest.raises(BpinspectError) as e:
        a.restore(str(tmp_path / "x.solverstate.h5"))
    assert "x.solverstate.h5: cannot read it as an HDF5 solver state" in one_line(e)

    (tmp_path / "junk.solverstate").write_bytes(b"\xff\xff\xff")
    with pytest.raises(BpinspectError) as e:
        a.restore(str(tmp_path / "junk.solverstate"))
    assert "corrupt .solverstate" in one_line(e)

    os.remove(tmp_path / "snaps" / "small_iter_2.caffemodel")
    monkeypatch.chdir("/")
    with pytest.raises(BpinspectError) as e:
        a.restore(state)
    assert "learned_net 'snaps/small_iter_2.caffemodel' was not found" in one_line(e)


def test_the_base_class_is_not_a_solver(tmp_path):
    with pytest.raises(BpinspectError, match="use get_solver"):
        Solver(write(tmp_path, BASE))
