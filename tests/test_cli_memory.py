"""The command line and memory (issue 11): the figure dump prints, --max-memory on the
TUI command, dump and train, the one-line refusal, and the input errors found by fuzzing
(an empty net, an input of the wrong shape, --export-dir created like dump --out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpinspect import cli
from bpinspect.errors import BpinspectError
from bpinspect.session.options import session_from_options, validate_options

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "nets"
LRN_POOL = str(NETS / "lrn_pool.prototxt")


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err) -> str:
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_dump_prints_the_memory_figure(tmp_path, capsys):
    code, out, _ = run(["dump", LRN_POOL, "--out", tmp_path / "d", "--device", "cpu"], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("  memory: "))
    assert line.startswith("  memory: 43.7 KiB of ")
    assert "blobs 19.2 KiB, params 7.45 KiB, im2col 17.1 KiB" in line
    assert 'Caffe: "Memory required for data: 15016"' in line


def test_dump_max_memory_refuses_before_writing(tmp_path, capsys):
    out = tmp_path / "d"
    code, _, err = run(["dump", LRN_POOL, "--out", out, "--device", "cpu",
                        "--max-memory", "20K"], capsys)
    line = one_line_error(code, err)
    assert line.startswith(f"bpinspect: {LRN_POOL}: needs 43.7 KiB of memory")
    assert "but only 20 KiB allowed (--max-memory)" in line
    assert "the largest blob is 'conv1' of layer 'conv1', shape (2, 8, 9, 9)" in line
    assert not out.exists()
    code, out_text, _ = run(["dump", LRN_POOL, "--out", out, "--device", "cpu",
                             "--max-memory", "1M"], capsys)
    assert code == 0 and "of 1 MiB allowed (--max-memory)" in out_text


@pytest.mark.parametrize("size", ["0", "x", "-4G", "4Q"])
def test_bad_max_memory_is_one_line(tmp_path, capsys, size):
    code, _, err = run(["dump", LRN_POOL, "--out", tmp_path / "d", "--device", "cpu",
                        f"--max-memory={size}"], capsys)
    assert f"--max-memory {size}: expected" in one_line_error(code, err)


def test_train_takes_max_memory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, _, err = run(["train", "nets/digits_solver.prototxt", "--iters", "1", "--device",
                        "cpu", "--max-memory", "64K"], capsys)
    line = one_line_error(code, err)
    assert "needs" in line and "but only 64 KiB allowed (--max-memory)" in line
    assert "the largest blob is" in line


def test_tui_options_take_max_memory(tmp_path):
    command, options = cli.parse_args([LRN_POOL, "--max-memory", "4G"])
    assert command == "tui" and options.max_memory == "4G"
    options.device = "cpu"
    options.max_memory = "4K"
    with pytest.raises(BpinspectError, match="allowed \\(--max-memory\\)"):
        session_from_options(options)
    options.max_memory = "lots"
    with pytest.raises(BpinspectError, match="--max-memory lots: expected a size"):
        validate_options(options)


def test_the_tui_session_plans_its_history(tmp_path):
    _, options = cli.parse_args([LRN_POOL, "--device", "cpu"])
    session = session_from_options(options)
    plan = session.net.memory
    assert plan.history == plan.blobs + plan.params // 2  # within the 1 GiB default budget
    from bpinspect.tui.view_data import header_info

    assert header_info(session).memory == "66.7 KiB"


def test_export_dir_is_created_like_dump_out(tmp_path):
    target = tmp_path / "a" / "b"
    _, options = cli.parse_args([LRN_POOL, "--export-dir", str(target)])
    validate_options(options)
    assert target.is_dir()
    (tmp_path / "file").write_text("")
    _, options = cli.parse_args([LRN_POOL, "--export-dir", str(tmp_path / "file" / "x")])
    with pytest.raises(BpinspectError, match="--export-dir .*cannot create the directory"):
        validate_options(options)


@pytest.mark.parametrize("text", ["", "# only a comment\n", 'name: "nothing"\n'])
def test_an_empty_net_is_an_error(tmp_path, capsys, text):
    net = tmp_path / "empty.prototxt"
    net.write_text(text)
    out = tmp_path / "d"
    code, _, err = run(["dump", net, "--out", out, "--device", "cpu"], capsys)
    assert one_line_error(code, err).endswith("the net has no layers")
    assert not out.exists()


def test_input_of_the_wrong_shape_names_the_blob(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 5, 5), np.float32))
    code, _, err = run(["dump", LRN_POOL, "--out", tmp_path / "d", "--device", "cpu",
                        "--input", f"data={tmp_path / 'x.npy'}"], capsys)
    line = one_line_error(code, err)
    assert "x.npy: array of shape (2, 3, 5, 5) does not fit the input blob 'data'" in line


def test_a_huge_npy_header_is_refused_before_reading(tmp_path, capsys):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (117 - len(header)) + "\n"
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                     + header.encode() + bytes(64))
    code, _, err = run(["dump", LRN_POOL, "--out", tmp_path / "d", "--device", "cpu",
                        "--input", f"data={tmp_path / 'x.npy'}"], capsys)
    assert "declares shape (1000000, 1000000)" in one_line_error(code, err)


@pytest.mark.parametrize("seed", ["-1", "x", str(1 << 64)])
def test_bad_seeds_are_usage_errors(tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as e:
        cli.main(["dump", LRN_POOL, "--out", str(tmp_path / "d"), f"--seed={seed}"])
    assert e.value.code == 2
    assert "invalid seed" in capsys.readouterr().err.strip().splitlines()[-1]
