"""``bpinspect train`` end to end on the demo digits net (a real LMDB in nets/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bpinspect import cli
from bpinspect.engine.solver import get_solver
from bpinspect.io.caffemodel import read_caffemodel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_train_prints_debug_info_and_writes_a_snapshot(capsys, tmp_path):
    out = tmp_path / "run"
    code = cli.main(["train", "nets/digits_solver.prototxt", "--iters", "3", "--device", "cpu",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    for title in ("iteration 0, forward: each top's data",
                  "iteration 2, backward: each bottom's diff and param diff",
                  "iteration 1, update: each param's data and diff"):
        assert title in printed
    assert "Iteration 0, Testing net (#0): accuracy = " in printed
    assert "Iteration 2, loss = " in printed
    assert "batch digits: records 128–191 of 1500, LMDB nets/digits_train_lmdb" in printed
    log = json.loads((out / "iterations.json").read_text())
    assert [r["iteration"] for r in log["iterations"]] == [0, 1, 2]
    model = out / "digits_solver_iter_3.caffemodel"
    assert model.is_file() and (out / "digits_solver_iter_3.solverstate").is_file()
    # The snapshot holds what three of the solver's own iterations give.
    reference = get_solver("nets/digits_solver.prototxt")
    reference.step(3)
    saved = {layer.name: layer.blobs for layer in read_caffemodel(str(model), []).layer}
    w = np.asarray(saved["ip2"][0].data, np.float32).reshape(10, 500)
    np.testing.assert_array_equal(w, reference.net.params["ip2"][0].data)


def test_train_resumes_from_its_snapshot(capsys, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "nets/digits_solver.prototxt", "--iters", "2", "--out",
                     str(out)]) == 0
    capsys.readouterr()
    code = cli.main(["train", "nets/digits_solver.prototxt", "--iters", "1", "--snapshot",
                     str(out / "digits_solver_iter_2.solverstate")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "resumed from" in printed and "read from their first record again" in printed
    assert "Iteration 2, loss = " in printed
    assert "batch digits: records 0–63 of 1500" in printed  # no data position in a state


def test_train_stops_at_the_first_nan_naming_iteration_layer_and_blob(capsys):
    code = cli.main(["train", "nets/digits_solver_lr_too_high.prototxt", "--iters", "100",
                     "--every", "50"])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 1
    assert "stopped at iteration" in printed
    assert "first produced by forward of layer" in printed
    assert "NaN" in printed and "Inf in" in printed


def test_train_fed_from_npy_does_not_read_the_database(capsys, tmp_path):
    data = tmp_path / "data.npy"
    label = tmp_path / "label.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.random((8, 1, 16, 16), dtype=np.float32))
    np.save(label, rng.integers(0, 10, 8).astype(np.float32))
    code = cli.main(["train", "nets/digits_solver.prototxt", "--iters", "1",
                     "--input", f"data={data}", "--input", f"label={label}"])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "data, label fed by --input; its source is not read" in printed
    assert "8x1x16x16" in printed


@pytest.mark.parametrize("argv, message", [
    (["train", "nets/nowhere_solver.prototxt"], "nowhere_solver.prototxt"),
    (["train", "nets/digits_solver.prototxt", "--iters", "0"], "--iters 0"),
    (["train", "nets/digits_solver.prototxt", "--weights", "a.caffemodel", "--snapshot",
      "b.solverstate"], "not both"),
])
def test_train_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_train_on_a_bad_solver_leaves_no_output_directory(capsys, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["train", "nets/nowhere_solver.prototxt", "--out", str(out)]) == 2
    assert not out.exists()
    assert cli.main(["train", "nets/digits_solver.prototxt", "--out", ""]) == 2
    assert "--out: an empty path" in capsys.readouterr().err
