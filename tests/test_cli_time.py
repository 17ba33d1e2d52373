"""bpinspect time end to end: caffe time's table, every layer in it, the totals; errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bpinspect import cli

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "nets"
DEMO_NETS = ["lrn_pool.prototxt", "concat.prototxt", "train_softmax.prototxt"]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _layer_rows(out):
    rows = {}
    in_table = False
    for line in out.splitlines():
        if line.startswith("layer "):
            in_table = True
            continue
        if in_table:
            if not line.strip():
                break
            parts = line.split()
            rows[parts[0]] = parts
    return rows


@pytest.mark.parametrize("net", DEMO_NETS)
def test_time_table_has_every_layer_and_the_totals(net, capsys):
    from bpinspect.engine.net import Net

    code, out, err = run(["time", NETS / net, "--iterations", "2", "--device", "cpu"], capsys)
    assert code == 0, err
    n = Net(NETS / net, phase="train")
    rows = _layer_rows(out)
    assert list(rows) == n.layer_names
    number = re.compile(r"^\d+\.\d{3}$")
    for name, parts in rows.items():
        i = n.layer_index(name)
        assert parts[1] == n.layers[i].type
        assert number.match(parts[2]), parts
        assert number.match(parts[3]) if n.layer_need_backward[i] else parts[3] == "-"
    for total in ("Average Forward pass", "Average Backward pass",
                  "Average Forward-Backward", "Total Time"):
        assert re.search(rf"^{total}: \d+\.\d{{3}} ms\.$", out, re.M), total
    assert "then 2 timed iteration(s)" in out and "phase train" in out


def test_time_caffenet_three_iterations(capsys):
    code, out, err = run(["time", NETS / "caffenet.prototxt", "--iterations", "3",
                          "--device", "cpu", "--phase", "test"], capsys)
    assert code == 0, err
    rows = _layer_rows(out)
    assert "fc6" in rows and rows["fc6"][1] == "InnerProduct"
    assert rows["fc6"][-2:] == ["288", "MiB"]  # 4096x9216 + 4096 floats, data and diff
    assert "in place: fc6" in " ".join(rows["relu6"])


def test_time_errors_are_one_line(tmp_path, capsys):
    for argv, fragment in (
        (["time", NETS / "lrn_pool.prototxt", "--iterations", "0"], "--iterations 0"),
        (["time", NETS / "lrn_pool.prototxt", "--warmup", "-1"], "--warmup -1"),
        (["time", tmp_path / "missing.prototxt"], "missing.prototxt"),
        (["time", NETS / "lrn_pool.prototxt", "--device", "tpu"], "--device"),
    ):
        code, _, err = run(argv, capsys)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bpinspect: "), err
        assert fragment in lines[0] and "Traceback" not in err


def test_dump_lists_dead_units(tmp_path, capsys):
    code, out, err = run(["dump", NETS / "lrn_pool.prototxt", "--out", tmp_path / "d",
                          "--device", "cpu"], capsys)
    assert code == 0, err
    import numpy as np

    section = out.split("dead and saturated units", 1)[1]
    line = next(ln for ln in section.splitlines() if ln.split()[1:3] == ["relu1", "ReLU"])
    relu = np.load(tmp_path / "d" / "conv1.data.npy")  # relu1's top, as the dump wrote it
    dead = sum(1 for k in range(relu.shape[1]) if not (relu[:, k] > 0).any())
    zeros = 100 * float((relu <= 0).mean())
    parts = line.split()
    assert parts[3:7] == ["conv1", "2x8x9x9", "8", str(dead)] and parts[7] == "dead"
    assert parts[8] == f"{100 * dead / 8:.1f}%" and parts[9] == f"{zeros:.1f}%"
