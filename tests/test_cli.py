"""The command line end to end: dump, check, the TUI entry, and the errors a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bpinspect import cli
from bpinspect.backend import to_host

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "nets"
CAFFENET = str(NETS / "caffenet.prototxt")
DEMO_NETS = ["lrn_pool.prototxt", "concat.prototxt", "train_softmax.prototxt"]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("bpinspect: ") or lines[-1].startswith("bpinspect dump: ") \
        or lines[-1].startswith("bpinspect check: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[-1], (f, lines[-1])


# ---- seed 003: the saliency of class 281 through CaffeNet ---------------------------


@pytest.fixture(scope="module")
def caffenet_dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "d"
    code = cli.main(["dump", CAFFENET, "--top-diff", "fc8=onehot:281", "--out", str(out),
                     "--device", "cpu"])
    assert code == 0
    return out


def test_caffenet_dump_writes_the_saliency(caffenet_dump):
    from bpinspect.engine.net import Net
    from bpinspect.session.session import Session

    g = np.load(caffenet_dump / "data.diff.npy", allow_pickle=False)
    assert g.shape == (1, 3, 227, 227) and np.isfinite(g).all() and np.abs(g).max() > 0
    # The same gradient, computed pycaffe's way on a net of its own: forward with the
    # same input (the session's seeded noise), then net.backward(fc8=one-hot).
    x = np.load(caffenet_dump / "data.data.npy", allow_pickle=False)
    net = Net(CAFFENET)
    assert "seeded Gaussian noise" in Session(net).input_sources["data"]
    net.forward(data=x)
    onehot = np.zeros((1, 1000), np.float32)
    onehot[0, 281] = 1
    ref = to_host(net.backward(fc8=onehot)["data"])
    np.testing.assert_array_equal(g, ref)
    fc8 = np.load(caffenet_dump / "fc8.diff.npy", allow_pickle=False)
    np.testing.assert_array_equal(fc8, onehot)


@pytest.mark.slow
def test_caffenet_saliency_equals_central_differences(caffenet_dump):
    """d fc8[281] / d data at a few pixels, by central differences in float64."""
    from bpinspect.engine.net import Net

    g = np.load(caffenet_dump / "data.diff.npy", allow_pickle=False)
    x = np.load(caffenet_dump / "data.data.npy", allow_pickle=False).astype(np.float64)
    net = Net(CAFFENET, dtype=np.float64)

    def score(values):
        return float(to_host(net.forward(data=values)["fc8"])[0, 281])

    flat = np.argsort(np.abs(g).ravel())[-3:]  # where the gradient is largest
    for f in flat:
        c = np.unravel_index(f, g.shape)
        h = 1e-3
        xp, xm = x.copy(), x.copy()
        xp[c] += h
        xm[c] -= h
        numeric = (score(xp) - score(xm)) / (2 * h)
        assert numeric == pytest.approx(float(g[c]), rel=2e-3, abs=1e-6)


def test_dump_files_and_manifest(caffenet_dump):
    from bpinspect.engine.net import Net

    net = Net(CAFFENET)
    manifest = json.loads((caffenet_dump / "manifest.json").read_text())
    files = {e["file"]: e for e in manifest["files"]}
    for blob in net.blobs:
        for kind in ("data", "diff"):
            e = files[f"{blob}.{kind}.npy"]
            assert e["blob"] == blob and e["kind"] == kind
            assert tuple(e["shape"]) == net.blobs[blob].shape and e["dtype"] == "float32"
    for layer, params in net.params.items():
        for j, p in enumerate(params):
            for kind in ("data", "diff"):
                name = f"{layer}.param{j}.{kind}.npy"
                assert tuple(files[name]["shape"]) == p.shape
                assert np.load(caffenet_dump / name, allow_pickle=False).shape == p.shape
    assert manifest["net"] == "CaffeNet" and manifest["injections"] == {"fc8": "onehot:281"}
    assert "MSRA" in manifest["weights"]
    on_disk = {p.name for p in caffenet_dump.iterdir()}
    assert on_disk == set(files) | {"manifest.json"}


def test_dump_prints_a_readable_debug_info(tmp_path, capsys):
    code, out, err = run(["dump", NETS / "lrn_pool.prototxt", "--top-diff", "ip=onehot:3",
                          "--out", tmp_path / "o", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "LRNPool" in out and "phase: test" in out and "CPU" in out
    assert "weights:" in out and "top diff: ip=onehot:3" in out
    for layer in ("conv1", "relu1", "pool1", "norm1", "pool2", "ip"):
        assert layer in out
    assert "backward steps skipped" in out and "data (Input): no backward" in out
    assert "forward: each top's data" in out and "backward: each bottom's diff" in out
    # The table's numbers are the blob's statistics.
    pool1 = np.load(tmp_path / "o" / "pool1.data.npy")
    assert f"{pool1.max():.4g}" in out


@pytest.mark.parametrize("net", DEMO_NETS)
def test_dump_demo_nets(net, tmp_path, capsys):
    code, out, err = run(["dump", NETS / net, "--out", tmp_path / "o", "--device", "cpu"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    for e in manifest["files"]:
        a = np.load(tmp_path / "o" / e["file"], allow_pickle=False)
        assert list(a.shape) == e["shape"]


def test_dump_train_phase_seeds_the_loss(tmp_path, capsys):
    code, out, err = run(["dump", NETS / "train_softmax.prototxt", "--phase", "train",
                          "--out", tmp_path / "o", "--device", "cpu"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "o" / "loss.diff.npy").ravel().tolist() == [1.0]
    assert np.abs(np.load(tmp_path / "o" / "conv1.param0.diff.npy")).max() > 0
    assert "phase: train" in out


def test_dump_refuses_to_overwrite(tmp_path, capsys):
    args = ["dump", NETS / "lrn_pool.prototxt", "--out", tmp_path / "o", "--device", "cpu"]
    assert run(args, capsys)[0] == 0
    before = (tmp_path / "o" / "ip.data.npy").read_bytes()
    code, out, err = run(args + ["--seed", "3"], capsys)
    assert_user_error(code, err, "exists already")
    assert (tmp_path / "o" / "ip.data.npy").read_bytes() == before
    assert run(args + ["--seed", "3", "--force"], capsys)[0] == 0
    assert (tmp_path / "o" / "ip.data.npy").read_bytes() != before


def test_dump_with_input_files(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((3, 9, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(["dump", NETS / "lrn_pool.prototxt", "--input", f"data={tmp_path}/x.npy",
                          "--out", tmp_path / "o", "--device", "cpu"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "data.data.npy"),
                                  np.broadcast_to(x, (2, 3, 9, 9)))
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "img.png")
    code, out, err = run(["dump", NETS / "lrn_pool.prototxt", "--input", tmp_path / "img.png",
                          "--mean", "100,110,120", "--out", tmp_path / "p", "--device", "cpu"],
                         capsys)
    assert code == 0, err
    d = np.load(tmp_path / "p" / "data.data.npy")
    np.testing.assert_allclose(d[0, :, 4, 4], [100, 90, 80], atol=1e-3)


# ---- check ------------------------------------------------------------------------


@pytest.mark.parametrize("net", DEMO_NETS)
def test_check_demo_nets_pass(net, capsys):
    code, out, err = run(["check", NETS / net, "--device", "cpu", "--coords", "4"], capsys)
    assert code == 0, out + err
    assert "FAIL" not in out and "passed" in out


def test_check_train_phase(capsys):
    code, out, err = run(["check", NETS / "train_softmax.prototxt", "--phase", "train",
                          "--device", "cpu"], capsys)
    assert code == 0, out + err
    assert "Dropout" in out and "SoftmaxWithLoss" in out


@pytest.mark.slow
def test_check_caffenet(capsys):
    code, out, err = run(["check", CAFFENET, "--device", "cpu", "--coords", "2"], capsys)
    assert code == 0, out + err
    for layer in ("conv1", "norm1", "pool5", "fc8"):
        assert layer in out


def test_check_fails_on_a_wrong_backward(capsys, monkeypatch):
    from bpinspect.layers.registry import layer_class

    relu = layer_class("ReLU")
    real = relu.backward

    def doubled(self, top, propagate_down, bottom):
        real(self, top, propagate_down, bottom)
        bottom[0].diff = bottom[0].diff * 2

    monkeypatch.setattr(relu, "backward", doubled)
    code, out, err = run(["check", NETS / "lrn_pool.prototxt", "--device", "cpu"], capsys)
    assert code == 1
    assert "FAIL" in out and "relu1" in out.split("failed:")[-1]


# ---- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["dump", "missing.prototxt", "--out", "{tmp}/o"], ["missing.prototxt"]),
        (["dump", "{net}", "--top-diff", "ip=onehot:99", "--out", "{tmp}/o"],
         ["ip=onehot:99", "out of range"]),
        (["dump", "{net}", "--top-diff", "nope=ones", "--out", "{tmp}/o"], ["'nope'"]),
        (["dump", "{net}", "--top-diff", "ip=eval(1)", "--out", "{tmp}/o"], ["eval(1)"]),
        (["dump", "{net}", "--top-diff", "ip", "--out", "{tmp}/o"], ["BLOB=SPEC"]),
        (["dump", "{net}", "--top-diff", "ip=npy:{tmp}/none.npy", "--out", "{tmp}/o"],
         ["none.npy"]),
        (["dump", "{net}", "--input", "data={tmp}/none.npy", "--out", "{tmp}/o"], ["none.npy"]),
        (["dump", "{net}", "--input", "conv1={tmp}/x.npy", "--out", "{tmp}/o"], ["conv1"]),
        (["dump", "{net}", "--device", "tpu", "--out", "{tmp}/o"], ["tpu"]),
        (["dump", "{net}", "--weights", "{tmp}/none.caffemodel", "--out", "{tmp}/o"],
         ["none.caffemodel"]),
        (["dump", "{net}", "--out", "{tmp}/file/o"], ["file"]),
        (["check", "{net}", "--coords", "0"], ["--coords"]),
        (["{net}", "--break", "conv9"], ["conv9"]),
    ],
)
def test_user_errors_are_one_line_exit_2(args, fragments, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 9, 9), np.float32))
    monkeypatch.setitem(sys.modules, "bpinspect.tui.app", _fake_tui({}))
    net = str(NETS / "lrn_pool.prototxt")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{net}", net) for a in args]
    code, out, err = run(argv, capsys)
    assert_user_error(code, err, *fragments)


def test_usage_errors_exit_2(capsys):
    for argv in (["dump"], ["dump", CAFFENET], ["check", CAFFENET, "--coords", "x"],
                 ["--phase", "val", CAFFENET], []):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


# ---- the TUI entry -------------------------------------------------------------------


def _fake_tui(seen):
    """A stand-in for bpinspect.tui.app: builds the session as the TUI does."""

    def run_app(options):
        from bpinspect.session.options import session_from_options

        seen["options"] = options
        seen["session"] = session_from_options(options)
        return 0

    fake = types.ModuleType("bpinspect.tui.app")
    fake.run_app = run_app
    return fake


def test_no_subcommand_opens_the_tui_with_the_options(monkeypatch, capsys, tmp_path):
    seen = {}
    monkeypatch.setitem(sys.modules, "bpinspect.tui.app", _fake_tui(seen))
    code = cli.main([str(NETS / "lrn_pool.prototxt"), "--top-diff", "ip=onehot:1",
                     "--break", "norm1", "--break", "pool1:backward", "--export-dir",
                     str(tmp_path), "--seed", "4", "--device", "cpu"])
    assert code == 0
    o = seen["options"]
    assert (o.top_diff, o.breaks, o.export_dir, o.seed, o.phase) == (
        ["ip=onehot:1"], ["norm1", "pool1:backward"], str(tmp_path), 4, "test")
    s = seen["session"]
    assert s.injections["ip"].spec == "onehot:1" and s.export_dir == str(tmp_path)
    assert s.breakpoints.has("norm1", "both") and s.breakpoints.has("pool1", "backward")
    assert not s.breakpoints.has("pool1", "forward")


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bpinspect", "--version"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("bpinspect ")
    r = subprocess.run([sys.executable, "-m", "bpinspect", "dump", "missing.prototxt", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("bpinspect: ")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
