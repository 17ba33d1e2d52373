"""Readers check what a file declares against what it holds before allocating:
.npy headers, caffemodel and solverstate strings, Datum sizes (issue 11)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.io import inputs
from bpinspect.io.caffemodel import read_caffemodel
from bpinspect.io.datum import datum_to_array
from bpinspect.io.inputs import load_input, load_npy, npy_shape
from bpinspect.io.solverstate import read_solverstate
from bpinspect.proto import caffe_pb2


def npy_with_header(path: Path, header: str, body: bytes = b"\0" * 64,
                    version: int = 1) -> Path:
    text = header + " " * (-(len(header) + 11) % 64) + "\n"
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + text.encode() + body)
    return path


@pytest.fixture
def no_np_load(monkeypatch):
    """np.load is never reached for a file whose header is refused."""
    def refuse(*args, **kwargs):
        raise AssertionError("np.load called before the header was checked")

    monkeypatch.setattr(inputs.np, "load", refuse)


@pytest.mark.parametrize(("shape", "fragment"), [
    ("(1000000, 1000000)", "declares shape (1000000, 1000000) of float32 (4000000000000 bytes)"
                           " but the file holds 64 bytes after it"),
    ("(1000000000000,)", "(4000000000000 bytes)"),
    ("(100000000000000000000, 3)", "is not an array shape"),
    ("(2, 3, 9, 9)", "(1944 bytes) but the file holds 64 bytes"),
])
def test_npy_header_claims_more_than_the_file_holds(tmp_path, no_np_load, shape, fragment):
    path = npy_with_header(tmp_path / "x.npy",
                           f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
    for read in (load_npy, npy_shape):
        with pytest.raises(BpinspectError) as e:
            read(path)
        assert str(e.value).startswith(f"{path}: ") and fragment in str(e.value)


@pytest.mark.parametrize(("descr", "fragment"), [
    ("'|O'", "holds Python objects"), ("'<U4'", "dtype <U4 is not numeric"),
    ("'<c8'", "dtype complex64 is not numeric"), ("[('a', '<f4')]", "is not numeric"),
    ("'nonsense'", "not a valid .npy file"),
])
def test_npy_dtype_is_checked_from_the_header(tmp_path, no_np_load, descr, fragment):
    path = npy_with_header(tmp_path / "x.npy",
                           f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}")
    with pytest.raises(BpinspectError, match=fragment):
        load_npy(path)


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3,9,9), ",  # cut short
    "{'descr': '<f4', 'shape': (2,), }", "not a dict at all", "{'descr': '<f4', " * 3,
])
def test_npy_broken_headers_are_one_line(tmp_path, header):
    path = npy_with_header(tmp_path / "x.npy", header)
    with pytest.raises(BpinspectError, match=r"x\.npy: not a valid \.npy file"):
        load_npy(path)


def test_npy_version_2_and_a_good_file(tmp_path):
    body = np.arange(6, dtype="<f4").tobytes()
    path = npy_with_header(tmp_path / "v2.npy",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                           body, version=2)
    assert npy_shape(path) == (2, 3)
    np.testing.assert_array_equal(load_npy(path), np.arange(6).reshape(2, 3))


def test_npy_input_of_the_wrong_shape_names_the_blob(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(BpinspectError) as e:
        load_input(tmp_path / "x.npy", (2, 3, 9, 9), blob="data")
    assert str(e.value) == (
        f"{tmp_path / 'x.npy'}: array of shape (2, 3, 5, 5) does not fit the input blob "
        "'data' of shape (2, 3, 9, 9) (give (2, 3, 9, 9), or (3, 9, 9) to repeat over the batch)")


def _caffemodel(name: bytes, type_name: bytes = b"InnerProduct") -> bytes:
    layer = caffe_pb2.LayerParameter(name="NAME", type="TYPE--------")  # 4 and 12 bytes
    blob = layer.blobs.add()
    blob.shape.dim.extend([2])
    blob.data.extend([1.0, 2.0])
    data = caffe_pb2.NetParameter(layer=[layer]).SerializeToString()
    return data.replace(b"NAME", name).replace(b"TYPE--------", type_name)


@pytest.mark.parametrize(("name", "type_name", "field"), [
    (b"\xe3onv", b"InnerProduct", "layer[0].name"),
    (b"fc8!", b"Inner\xffroduct", "layer[0] ('fc8!').type"),
])
def test_caffemodel_strings_must_be_utf8(tmp_path, name, type_name, field):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(_caffemodel(name, type_name))
    with pytest.raises(BpinspectError) as e:
        read_caffemodel(path)
    assert str(e.value) == f"{path}: corrupt .caffemodel: {field} is not UTF-8 text"


def test_caffemodel_with_good_strings_reads(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(_caffemodel(b"fc8!"))
    assert read_caffemodel(path).layer[0].name == "fc8!"


def test_solverstate_strings_must_be_utf8(tmp_path):
    data = caffe_pb2.SolverState(iter=3, learned_net="AB.caffemodel").SerializeToString()
    path = tmp_path / "s.solverstate"
    path.write_bytes(data.replace(b"AB", b"\xff\xfe"))
    with pytest.raises(BpinspectError, match=r"corrupt \.solverstate: learned_net is not UTF-8"):
        read_solverstate(path)


@pytest.mark.parametrize("sizes", [(2**31 - 1, 1, 1), (1, 1 << 20, 1 << 10), (3, 16, 16)])
def test_datum_sizes_are_checked_against_its_bytes(sizes):
    c, h, w = sizes
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, data=bytes(256))
    with pytest.raises(BpinspectError, match=f"a Datum of {c} x {h} x {w} needs {c * h * w} "
                                             "bytes of data, it holds 256"):
        datum_to_array(datum, "record 0")
    datum = caffe_pb2.Datum(channels=c, height=h, width=w)
    datum.float_data.extend([0.5] * 10)
    with pytest.raises(BpinspectError, match="holds 10 float_data"):
        datum_to_array(datum, "record 0")


def test_saved_npy_round_trips(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), np.float64))
    (tmp_path / "a.npy").write_bytes(buf.getvalue())
    assert load_npy(tmp_path / "a.npy").shape == (3, 4)
