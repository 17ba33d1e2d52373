"""Solver files: parsing, the solver_type upgrade, the snapshot_prefix upgrade, errors."""

from __future__ import annotations

import pytest

from bpinspect.errors import BpinspectError
from bpinspect.io.solver_prototxt import load_solver, parse_solver
from bpinspect.proto import caffe_pb2


@pytest.mark.parametrize(
    ("enum", "name"),
    [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
     ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")],
)
def test_solver_type_enum_becomes_type(enum, name):
    notes: list[str] = []
    param = parse_solver(f'net: "n.prototxt"\nsolver_type: {enum}\n', "s.prototxt", notes)
    assert param.type == name
    assert not param.HasField("solver_type")
    assert notes and "solver_type" in notes[0]


def test_type_string_untouched():
    param = parse_solver('type: "Adam"\n')
    assert param.type == "Adam" and param.HasField("type")
    assert parse_solver("base_lr: 0.1\n").type == "SGD"  # the default


def test_both_solver_type_and_type_is_an_error():
    text = 'net: "n.prototxt"\ntype: "Adam"\nsolver_type: ADAM\n'
    with pytest.raises(BpinspectError) as e:
        parse_solver(text, "s.prototxt")
    message = str(e.value)
    assert message.startswith("s.prototxt:3: ") and "cannot both be specified" in message


def test_syntax_error_names_file_line_and_column():
    with pytest.raises(BpinspectError, match=r"^s\.prototxt:2:1: .*base_lrr"):
        parse_solver('net: "n.prototxt"\nbase_lrr: 0.1\n', "s.prototxt")


def test_unknown_enum_value_is_a_located_error():
    with pytest.raises(BpinspectError, match=r"^s\.prototxt:1:\d+: "):
        parse_solver("solver_type: FANCY\n", "s.prototxt")


def test_a_net_file_is_named_as_such():
    with pytest.raises(BpinspectError, match="a net definition .*not a solver"):
        parse_solver('name: "x"\nlayer { name: "a" type: "Input" top: "a" }\n', "n.prototxt")


def test_snapshot_prefix_defaults_to_the_file_without_extension(tmp_path):
    path = tmp_path / "lenet_solver.prototxt"
    path.write_text('net: "n.prototxt"\n')
    assert load_solver(path).snapshot_prefix == str(tmp_path / "lenet_solver")


def test_snapshot_prefix_directory_gets_the_stem(tmp_path):
    (tmp_path / "snaps").mkdir()
    path = tmp_path / "lenet_solver.prototxt"
    path.write_text(f'net: "n.prototxt"\nsnapshot_prefix: "{tmp_path / "snaps"}"\n')
    assert load_solver(path).snapshot_prefix == str(tmp_path / "snaps" / "lenet_solver")


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(BpinspectError, match="no such file"):
        load_solver(tmp_path / "nope.prototxt")


def test_load_keeps_every_field(tmp_path):
    path = tmp_path / "s.prototxt"
    path.write_text('net: "n.prototxt"\nstepvalue: 10\nstepvalue: 20\nlr_policy: "multistep"\n'
                    "test_state { stage: 'val' }\nrandom_seed: 7\n")
    param = load_solver(path)
    assert list(param.stepvalue) == [10, 20] and param.random_seed == 7
    assert list(param.test_state[0].stage) == ["val"]
    assert isinstance(param, caffe_pb2.SolverParameter)
