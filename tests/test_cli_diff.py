"""bpinspect diff end to end: exit codes 0/1/2, the layer named, errors in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpinspect import cli

ROOT = Path(__file__).resolve().parents[1]
LRN_POOL = str(ROOT / "nets" / "lrn_pool.prototxt")


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpinspect: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def dumps(tmp_path, capsys):
    out = []
    for name in ("a", "b"):
        d = tmp_path / name
        code, _, _ = run(["dump", LRN_POOL, "--top-diff", "ip=onehot:3", "--out", d,
                          "--device", "cpu"], capsys)
        assert code == 0
        out.append(d)
    return out


def _rows(out):
    """The table's rows: {(blob, kind): verdict word}."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[2] in ("data", "diff"):
            rows[(parts[1], parts[2])] = parts[-1]
    return rows


def test_same_dumps_agree(dumps, capsys):
    code, out, err = run(["diff", *dumps], capsys)
    assert code == 0, err
    assert "A and B agree: 20 arrays" in out
    rows = _rows(out)
    assert len(rows) == 20 and set(rows.values()) == {"ok"}


def test_perturbed_blob_is_named(dumps, capsys):
    a, b = dumps
    x = np.load(b / "norm1.data.npy")
    x[1, 3, 2, 1] += 0.25
    np.save(b / "norm1.data.npy", x)
    code, out, _ = run(["diff", a, b], capsys)
    assert code == 1
    assert "they part at layer 'norm1', in its data (forward)" in out
    rows = _rows(out)
    assert rows[("norm1", "data")] == "DIFFER"
    assert [k for k, v in rows.items() if v != "ok"] == [("norm1", "data")]
    line = next(ln for ln in out.splitlines() if ln.split()[1:3] == ["norm1", "data"])
    ref = float(np.abs(np.load(a / "norm1.data.npy")).max())
    assert f"{0.25:.4g}" in line and f"{0.25 / ref:.3g}" in line
    # A tolerance above the change: they agree again.
    code, _, _ = run(["diff", a, b, "--rtol", "10"], capsys)
    assert code == 0
    code, out, _ = run(["diff", a, b, "--differing"], capsys)
    assert code == 1 and len(_rows(out)) == 1


def test_perturbed_diff_is_named_in_backward_order(dumps, capsys):
    a, b = dumps
    for blob in ("pool1", "data"):
        x = np.load(b / f"{blob}.diff.npy")
        x.flat[0] += 1e-3
        np.save(b / f"{blob}.diff.npy", x)
    code, out, _ = run(["diff", a, b], capsys)
    assert code == 1
    assert "first diff difference (backward order): layer 'norm1' (backward): pool1 diff" in out
    assert "they part at layer 'norm1', in its diff (backward)" in out


def test_missing_array_is_reported_not_a_crash(dumps, capsys):
    a, b = dumps
    (b / "pool2.diff.npy").unlink()
    code, out, err = run(["diff", a, b], capsys)
    assert code == 1 and "Traceback" not in err
    assert _rows(out)[("pool2", "diff")] == "A"  # "only in A"
    assert "1 array(s) on one side only (1 only in A, 0 only in B)" in out
    code, out, _ = run(["diff", a, b, "--common"], capsys)
    assert code == 0 and "A and B agree: 19 arrays" in out


def test_pycaffe_directory_with_net_order(dumps, tmp_path, capsys):
    a, _ = dumps
    p = tmp_path / "pycaffe"
    p.mkdir()
    for f in a.glob("*.npy"):
        np.save(p / f.name, np.load(f))
    x = np.load(p / "pool2.data.npy")
    x[0, 0, 0, 0] = 7.0
    np.save(p / "pool2.data.npy", x)
    code, out, _ = run(["diff", p, p], capsys)
    assert code == 0 and "no layer order known" in out
    code, out, _ = run(["diff", p, a], capsys)  # B's manifest gives the order
    assert code == 1 and "they part at layer 'pool2'" in out
    p2 = tmp_path / "pycaffe2"
    p2.mkdir()
    for f in a.glob("*.npy"):
        np.save(p2 / f.name, np.load(f))
    code, out, _ = run(["diff", p, p2, "--net", LRN_POOL], capsys)
    assert code == 1 and "net file" in out and "they part at layer 'pool2'" in out


def test_bad_input_is_one_line(dumps, tmp_path, capsys):
    a, b = dumps
    code, _, err = run(["diff", a, tmp_path / "nope"], capsys)
    one_line_error(code, err, "nope", "no such directory")
    code, _, err = run(["diff", a / "ip.data.npy", b], capsys)
    one_line_error(code, err, "ip.data.npy", "not a directory")
    code, _, err = run(["diff", a, b, "--rtol", "-1"], capsys)
    one_line_error(code, err, "--rtol")
    code, _, err = run(["diff", a, b, "--net", tmp_path / "missing.prototxt"], capsys)
    one_line_error(code, err, "missing.prototxt")
    (b / "conv1.diff.npy").write_bytes(b"\x93NUMPY garbage")
    code, _, err = run(["diff", a, b], capsys)
    one_line_error(code, err, "conv1.diff.npy")
    (b / "manifest.json").write_text("not json")
    code, _, err = run(["diff", a, b], capsys)
    one_line_error(code, err, "manifest.json")


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["diff", "only-one"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_console_script(dumps):
    a, b = dumps
    exe = Path(sys.executable).with_name("bpinspect")
    done = subprocess.run([str(exe), "diff", str(a), str(b)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
