"""Fuzzing ``bpinspect dump``: no input makes it crash, allocate without bound or
answer silently.

Each case mutates one kind of input, seeded, and runs the command line in-process
(``cli.main``, with stdout and stderr captured as a terminal would show them); it
passes when the run either

- exits 0 with a complete output: manifest.json and every file it lists, and
  the "wrote N files" line; or
- exits 2 with at most a few short lines on stderr (argparse's usage block
  aside) ending in the ``bpinspect...: message`` line, no traceback, and the
  output directory as it was before (not created, nothing half-written).

Categories: ``prototxt`` (tokens, numbers, strings, lines, truncation, junk
bytes; the small nets of nets/ and Caffe's own V0/V1/V2 nets of tests/data as
seeds), ``caffemodel`` (bit flips, truncation, varints, length prefixes,
huge shapes; V2 and V1 files), ``npy`` (headers, dtypes, versions, sizes),
``datum`` (LMDB records: sizes, data, encoded images), ``topdiff``
(``--top-diff`` specs) and ``args`` (argument lists).

CI runs ``DEFAULT_CASES`` cases in all (a sixth per category); more with
``pytest tests/test_fuzz.py --fuzz-cases 2000`` (or ``BPINSPECT_FUZZ_CASES``),
another seed with ``--fuzz-seed N`` (``BPINSPECT_FUZZ_SEED``). A failure names
the case, its arguments and what went wrong; its files stay in pytest's
temporary directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import struct
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bpinspect import cli
from bpinspect.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "nets"
BVLC = ROOT / "tests" / "data" / "bvlc"

DEFAULT_CASES = 600
CATEGORIES = ("prototxt", "caffemodel", "npy", "datum", "topdiff", "args")
CASE_TIMEOUT = 30  # seconds: a case that runs longer is a finding (unbounded work)
LIMIT = "16M"  # --max-memory of mutated nets: the planner bounds every case's work
MAX_MESSAGE_LINES = 2  # besides argparse's usage block
MAX_LINE = 1500  # an unknown layer type lists the supported ones

PROTOTXT_SEEDS = [
    NETS / "lrn_pool.prototxt", NETS / "concat.prototxt", NETS / "train_softmax.prototxt",
    NETS / "digits_train_test.prototxt", BVLC / "v1.lenet_train_test.prototxt",
    BVLC / "v0.lenet_train.prototxt", BVLC / "v1.imagenet_deploy.prototxt",
    BVLC / "bvlc_reference_caffenet.deploy.prototxt",
]

INTERESTING_NUMBERS = [
    "0", "-1", "1", "2", "3", "7", "255", "65536", "2147483647", "2147483648", "-2147483648",
    "4294967296", "9223372036854775807", "9223372036854775808", "1000000000000", "1e308",
    "1e-45", "-0", "0.5", "3.75", "nan", "inf", "-inf", "1e400", "0x10", "012", "99999999",
]
JUNK_WORDS = ["", "x", "layer", "{", "}", ":", '"', "\\", "#", "top", "bottom", "é", "\u2028",
              "shape", "dim", "input", "phase", "TRAIN", "include", "'", "<", "0x"]


# ---- running a case ------------------------------------------------------------------


class CaseTimeout(Exception):
    pass


def case_count(config: pytest.Config) -> int:
    value = config.getoption("--fuzz-cases", default=None) or os.environ.get(
        "BPINSPECT_FUZZ_CASES")
    return int(value) if value else DEFAULT_CASES


def case_seed(config: pytest.Config) -> int:
    value = config.getoption("--fuzz-seed", default=None) or os.environ.get(
        "BPINSPECT_FUZZ_SEED")
    return int(value) if value else 0


def run_cli(argv: list[str]) -> tuple[int | str, str, str]:
    """(exit code or "escaped", stdout, stderr) of ``bpinspect ARGV`` in-process;
    warnings count as stderr lines (a terminal would show them)."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum: int, frame: object) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_TIMEOUT)
    code: int | str
    try:
        with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
              warnings.catch_warnings(record=True) as caught):
            warnings.simplefilter("always")
            try:
                code = cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            except CaseTimeout:
                code = "timeout"
            except Exception:
                code = "escaped"
                err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    return code, out.getvalue(), text


def _listing(d: Path) -> set[str] | None:
    if not d.exists():
        return None
    if not d.is_dir():
        return {"<file>"}
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def message_lines(err: str) -> list[str]:
    """stderr without argparse's usage block (``usage:`` and its indented lines)."""
    lines = err.strip().splitlines()
    kept, in_usage = [], False
    for line in lines:
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        kept.append(line)
    return kept


def judge(code: int | str, out: str, err: str, outdir: Path, before: set[str] | None) -> str | None:
    """What is wrong with a run, or None."""
    if code == "timeout":
        return f"ran longer than {CASE_TIMEOUT} s"
    if "Traceback" in err or code == "escaped":
        return "traceback: " + err.strip().splitlines()[-1][:300] if err.strip() else "traceback"
    if code == 0:
        manifest = outdir / "manifest.json"
        if not manifest.is_file():
            return "exit 0 without manifest.json"
        try:
            entries = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError) as e:
            return f"exit 0 with an unreadable manifest.json: {e}"
        missing = [e["file"] for e in entries if not (outdir / e["file"]).is_file()]
        if missing or not entries:
            return f"exit 0 with files missing: {missing[:3]}" if missing else "exit 0, empty dump"
        if "wrote " not in out:
            return "exit 0 without the 'wrote N files' line"
        lines = message_lines(err)
        if len(lines) > MAX_MESSAGE_LINES:
            return f"exit 0 with {len(lines)} lines on stderr: {lines[0][:200]}"
        return None
    if code != 2:
        return f"exit code {code}"
    lines = message_lines(err)
    if not lines:
        return "exit 2 with nothing on stderr"
    if len(lines) > MAX_MESSAGE_LINES:
        return f"exit 2 with {len(lines)} lines on stderr: {' | '.join(lines)[:300]}"
    if not lines[-1].startswith("bpinspect"):
        return f"exit 2, last line not a bpinspect message: {lines[-1][:200]}"
    if any(len(line) > MAX_LINE for line in lines):
        return f"exit 2 with a line of {max(len(x) for x in lines)} characters"
    if _listing(outdir) != before:
        return "exit 2 left the output directory changed (half-written)"
    return None


# ---- mutators ---------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[-+]?\d[\w.+-]*|[A-Za-z_][\w.]*|[{}:]|\S')


def mutate_text(rng: random.Random, text: str) -> bytes:
    """1-3 mutations of prototxt text: tokens, numbers, strings, lines, truncation, junk."""
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["number", "number", "number", "token_delete", "token_dup", "token_swap",
                         "token_replace", "string", "line_delete", "line_dup", "truncate",
                         "junk_word", "bytes"])
        tokens = list(_TOKEN.finditer(text))
        if not tokens:
            text += rng.choice(JUNK_WORDS)
            continue
        if op == "number":
            numbers = [t for t in tokens if t.group()[0].isdigit() or t.group()[0] in "+-"]
            t = rng.choice(numbers or tokens)
            text = text[:t.start()] + rng.choice(INTERESTING_NUMBERS) + text[t.end():]
        elif op == "token_delete":
            t = rng.choice(tokens)
            text = text[:t.start()] + text[t.end():]
        elif op == "token_dup":
            t = rng.choice(tokens)
            text = text[:t.end()] + " " + t.group() + text[t.end():]
        elif op == "token_swap":
            if len(tokens) < 2:
                continue
            a, b = sorted(rng.sample(tokens, 2), key=lambda t: t.start())
            text = (text[:a.start()] + b.group() + text[a.end():b.start()] + a.group()
                    + text[b.end():])
        elif op == "token_replace":
            t, other = rng.choice(tokens), rng.choice(tokens)
            text = text[:t.start()] + other.group() + text[t.end():]
        elif op == "string":
            strings = [t for t in tokens if t.group().startswith('"')] or tokens
            t = rng.choice(strings)
            value = rng.choice(['""', '"\\xff\\xfe"', '"' + "a" * rng.randint(1, 300) + '"',
                                '"data"', '"label"', '"../../etc"', '"/"', '"\\""', '"é\u0000"'])
            text = text[:t.start()] + value + text[t.end():]
        elif op in ("line_delete", "line_dup"):
            lines = text.split("\n")
            k = rng.randrange(len(lines))
            lines[k:k + 1] = [] if op == "line_delete" else [lines[k], lines[k]]
            text = "\n".join(lines)
        elif op == "truncate":
            text = text[:rng.randrange(len(text) + 1)]
        elif op == "junk_word":
            k = rng.randrange(len(text) + 1)
            text = text[:k] + rng.choice(JUNK_WORDS) + text[k:]
        else:  # junk bytes, maybe not UTF-8
            data = bytearray(text.encode())
            for _ in range(rng.randint(1, 4)):
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            return bytes(data)
    return text.encode()


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """Bit flips, truncation, byte insertions/deletions, varints and lengths."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "flip", "truncate", "insert", "delete", "varint", "length",
                         "splice"])
        if not b:
            b += bytes([rng.randrange(256)])
            continue
        k = rng.randrange(len(b))
        if op == "flip":
            for _ in range(rng.randint(1, 8)):
                k = rng.randrange(len(b))
                b[k] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del b[rng.randrange(len(b)):]
        elif op == "insert":
            b[k:k] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == "delete":
            del b[k:k + rng.randint(1, 8)]
        elif op == "varint":
            value = rng.choice([0, 1, 127, 128, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**64 - 1,
                                10**12, rng.randrange(2**40)])
            b[k:k + rng.randint(1, 5)] = _varint(value)
        elif op == "length":  # a length prefix (after a tag of wire type 2) made wrong
            tags = [i for i in range(min(len(b), 4096)) if b[i] & 7 == 2 and i + 1 < len(b)]
            if tags:
                i = rng.choice(tags) + 1
                b[i:i + 1] = _varint(rng.choice([0, 1, 2**31 - 1, 10**9, b[i] + 1]))
        else:  # a chunk copied somewhere else
            j = rng.randrange(len(b))
            b[k:k] = b[j:j + rng.randint(1, 64)]
    return bytes(b)


# ---- fixtures: seeds ------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Seed files made once: texts, a V2 and a V1 caffemodel of lrn_pool."""
    from bpinspect.engine.net import Net

    d = tmp_path_factory.mktemp("seeds")
    texts = {}
    for path in PROTOTXT_SEEDS:
        text = path.read_text()
        # digits_train_test's sources are relative to the repository root
        texts[path.name] = text.replace('source: "nets/', f'source: "{NETS}/')
    net = Net(NETS / "lrn_pool.prototxt")
    v2 = d / "lrn_pool.caffemodel"
    net.save(v2)
    v1 = caffe_pb2.NetParameter(name="LRNPool")
    v1_types = {"Convolution": caffe_pb2.V1LayerParameter.CONVOLUTION,
                "InnerProduct": caffe_pb2.V1LayerParameter.INNER_PRODUCT}
    for layer in caffe_pb2.NetParameter.FromString(v2.read_bytes()).layer:
        v1_layer = v1.layers.add(name=layer.name, type=v1_types[layer.type])
        for blob in layer.blobs:
            legacy = v1_layer.blobs.add()
            dims = (1,) * (4 - len(blob.shape.dim)) + tuple(blob.shape.dim)
            legacy.num, legacy.channels, legacy.height, legacy.width = dims
            legacy.data.extend(blob.data)
    return {"texts": texts, "caffemodels": [v2.read_bytes(), v1.SerializeToString()]}


@pytest.fixture(scope="module")
def fuzz_config(request: pytest.FixtureRequest) -> tuple[int, int]:
    return case_count(request.config), case_seed(request.config)


def cases_for(category: str, config: tuple[int, int]) -> list[random.Random]:
    total, seed = config
    n = max(1, total // len(CATEGORIES))
    return [random.Random(f"{seed}/{category}/{i}") for i in range(n)]


def base_argv(net: Path | str, out: Path) -> list[str]:
    return ["dump", str(net), "--out", str(out), "--device", "cpu"]


# ---- case makers: each returns the argv, and writes its files into d ------------------


def case_prototxt(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    name = rng.choice(sorted(seeds["texts"]))
    net = d / name
    net.write_bytes(mutate_text(rng, seeds["texts"][name]))
    argv = base_argv(net, d / "out") + ["--max-memory", LIMIT]
    if rng.random() < 0.3:
        argv += ["--phase", "train"]
    return argv


def case_caffemodel(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    data = rng.choice(seeds["caffemodels"])
    weights = d / "w.caffemodel"
    if rng.random() < 0.25:  # a structured change: a blob's declared shape
        net = caffe_pb2.NetParameter.FromString(data)
        layers = net.layer or net.layers
        blob = rng.choice(list(rng.choice(list(layers)).blobs))
        value = rng.choice([0, -1, 10**12, 2**31 - 1, 2**62, 7])
        if blob.HasField("num"):
            setattr(blob, rng.choice(["num", "channels", "height", "width"]),
                    max(-2**31, min(value, 2**31 - 1)))
        elif len(blob.shape.dim):
            blob.shape.dim[rng.randrange(len(blob.shape.dim))] = value
        if rng.random() < 0.3:
            blob.double_data.extend([1.0] * rng.randint(0, 5))
        data = net.SerializeToString()
    else:
        data = mutate_bytes(rng, data)
    weights.write_bytes(data)
    return base_argv(NETS / "lrn_pool.prototxt", d / "out") + ["--weights", str(weights)]


_DESCRS = ["<f4", "<f8", ">f4", "<f2", "<i8", "|u1", "|i1", "|b1", "<c8", "|O", "<U4", "|V4",
           "<M8[s]", "[('a', '<f4')]", "nonsense", "<f16", "('<f4', (2,))"]
_SHAPES = ["(2, 3, 9, 9)", "(3, 9, 9)", "()", "(0,)", "(1000000, 1000000)",
           "(1000000000000,)", "(2, 3, 9, 9, 1)", "(-1, 3, 9, 9)", "(2, 3, 9)",
           "(100000000000000000000, 3)", "(2, 3, 9, 9.0)", "('a',)", "(2,3,9,9", "[2, 3, 9, 9]",
           "(9223372036854775807,)", "(0, 10000000000000000000000)", "(1,) * 70"]


def _npy_bytes(rng: random.Random) -> bytes:
    """A .npy for lrn_pool's data (2, 3, 9, 9), its header maybe mutated."""
    shape = rng.choice([(2, 3, 9, 9), (3, 9, 9), (2, 3, 9, 9)])
    dtype = rng.choice(["<f4", "<f8", "|u1", "<i4"])
    values = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    data = buf.getvalue()
    if rng.random() < 0.1:
        return data
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode("latin1")
    body = data[10 + header_len:]
    op = rng.choice(["shape", "shape", "descr", "descr", "fortran", "keys", "header_len",
                     "magic", "version", "body", "bytes", "pickle"])
    if op == "shape":
        header = re.sub(r"'shape': \([^)]*\)", f"'shape': {rng.choice(_SHAPES)}", header)
    elif op == "descr":
        header = re.sub(r"'descr': '[^']*'", f"'descr': {rng.choice(_DESCRS)!r}"
                        if rng.random() < 0.5 else f"'descr': {rng.choice(_DESCRS)}", header)
    elif op == "fortran":
        header = header.replace("False", rng.choice(["True", "'x'", "0", "None"]))
    elif op == "keys":
        header = re.sub(rng.choice([r"'descr': '[^']*', ", r"'fortran_order': \w+, ",
                                    r"'shape': \([^)]*\), "]), "", header)
    elif op == "pickle":
        buf = io.BytesIO()
        np.save(buf, np.array([1, "x", None], dtype=object), allow_pickle=True)
        return buf.getvalue()
    header_bytes = header.encode("latin1")
    head = data[:8] + struct.pack("<H", len(header_bytes))
    if op == "header_len":
        head = data[:8] + struct.pack("<H", rng.choice([0, 1, len(header_bytes) + 7, 65535]))
    elif op == "magic":
        head = rng.choice([b"\x93NUMPZ", b"PK\x03\x04\x00\x00", b""]) + head[6:]
    elif op == "version":
        head = head[:6] + bytes([rng.choice([0, 2, 3, 9]), 0]) + head[8:]
        if head[6] in (2, 3):
            head = head[:8] + struct.pack("<I", len(header_bytes))
    elif op == "body":
        body = body[:rng.randrange(len(body) + 1)] if rng.random() < 0.7 else body + b"\0" * 64
    result = head + header_bytes + body
    if op == "bytes":
        result = mutate_bytes(rng, result)
    return result


def case_npy(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    path = d / "x.npy"
    path.write_bytes(_npy_bytes(rng))
    argv = base_argv(NETS / "lrn_pool.prototxt", d / "out")
    use = rng.choice(["input", "input", "input_plain", "mean", "topdiff"])
    if use == "input":
        return argv + ["--input", f"data={path}"]
    if use == "input_plain":
        return argv + ["--input", str(path)]
    if use == "mean":
        return argv + ["--input", f"data={_good_npy(d)}", "--mean", str(path)]
    return argv + ["--top-diff", f"ip=npy:{path}"]


def _good_npy(d: Path) -> Path:
    path = d / "good.npy"
    np.save(path, np.ones((2, 3, 9, 9), np.float32))
    return path


def _datum(rng: random.Random, i: int) -> bytes:
    datum = caffe_pb2.Datum(channels=1, height=16, width=16, label=i % 10,
                            data=bytes((i * 7 + k) % 256 for k in range(256)))
    op = rng.choice(["none", "sizes", "sizes", "data", "float", "encoded", "label", "bytes"])
    if op == "sizes":
        setattr(datum, rng.choice(["channels", "height", "width"]),
                rng.choice([0, -1, 2, 17, 1 << 20, 2**31 - 1]))
    elif op == "data":
        datum.data = datum.data[:rng.randrange(257)]
    elif op == "float":
        datum.data = b""
        datum.float_data.extend([0.5] * rng.choice([0, 255, 256, 300]))
    elif op == "encoded":
        datum.encoded = True
        datum.data = rng.choice([b"", b"junk", b"\x89PNG\r\n\x1a\n" + bytes(40), _png(rng)])
    elif op == "label":
        datum.label = rng.choice([-1, 2**31 - 1, 10])
    data = datum.SerializeToString()
    if op == "bytes":
        data = mutate_bytes(rng, data)
    return data


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    size = rng.choice([(16, 16), (1, 1), (40, 3)])
    Image.new(rng.choice(["L", "RGB", "RGBA", "I;16"]), size).save(buf, "PNG")
    data = buf.getvalue()
    if rng.random() < 0.4:  # IHDR's width and height claim something else
        data = data[:16] + struct.pack(">II", rng.choice([100000, 1, 0]),
                                       rng.choice([100000, 1, 0])) + data[24:]
    return data


DATUM_NET = """
name: "DatumFuzz"
layer {{ name: "d" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 {transform} }}
  data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 10 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""


def case_datum(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    import lmdb

    source = d / "records_lmdb"
    env = lmdb.open(str(source), map_size=8 << 20, subdir=True)
    with env.begin(write=True) as txn:
        for i in range(rng.randint(1, 4)):
            txn.put(f"{i:08d}".encode(), _datum(rng, i))
    env.close()
    transform = rng.choice(["", "crop_size: 8", "mirror: true", "crop_size: 40",
                            "force_color: true"])
    net = d / "net.prototxt"
    net.write_text(DATUM_NET.format(source=source, batch=rng.choice([1, 2, 5]),
                                    transform=transform))
    return base_argv(net, d / "out") + ["--max-memory", LIMIT, "--phase", "train"]


_SPECS = ["onehot:{i}", "onehot:{i}@{i}", "ones", "zeros", "const:{x}", "randn:seed={i},scale={x}",
          "randn:seed={i}", "randn:scale={x}", "npy:{npy}", "npy:", "onehot:", "const:",
          "randn:seed=", "randn:bogus=1", "{junk}"]
_SPEC_INTS = ["0", "3", "9", "10", "-1", "1e3", "99999999999999999999", "x", "", "3.5", "0x3"]
_SPEC_FLOATS = ["0.5", "1", "-2", "nan", "inf", "1e400", "", "x", "1e-320", "0x1p3"]


def case_topdiff(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    net = rng.choice([NETS / "lrn_pool.prototxt", NETS / "concat.prototxt"])
    blobs = {"lrn_pool.prototxt": ["ip", "pool2", "data", "conv1"],
             "concat.prototxt": ["score_ab", "ab", "aa", "data"]}[net.name]
    argv = base_argv(net, d / "out")
    valid = rng.random() < 0.5  # half the cases: well-formed specs of any value
    for _ in range(rng.randint(1, 2 if valid else 3)):
        forms = _SPECS[:8] if valid else _SPECS
        ints = ["0", "3", "1", "9"] if valid else _SPEC_INTS
        spec = rng.choice(forms).format(i=rng.choice(ints), x=rng.choice(_SPEC_FLOATS[:6]
                                                                         if valid else
                                                                         _SPEC_FLOATS),
                                        npy=_good_npy(d), junk=rng.choice(JUNK_WORDS))
        blob = rng.choice(blobs if valid else blobs + ["nosuch", "", "ip=ip", " ip", "é"])
        text = f"{blob}={spec}"
        if not valid and rng.random() < 0.2:
            text = mutate_text(rng, text).decode("utf-8", "replace")
        argv += ["--top-diff", text]
    return argv


_OPTIONS: dict[str, list[str]] = {
    "--weights": ["{missing}", "{dir}", "{net}", "{empty}"],
    "--input": ["data={missing}", "={good}", "data=", "{good}", "nosuch={good}", "data={junk}",
                "data={dir}", "data={net}", "label={good}"],
    "--mean": ["1,2", "104,117,123", "nan", "", "x,y", "{good}", "{junk}", "{missing}", "1e999"],
    "--phase": ["train", "test", "TEST", "", "x"],
    "--device": ["cpu", "gpu", "gpu:x", "gpu:99", "cuda", "", "auto"],
    "--seed": ["-1", "0", "2147483648", "99999999999999999999999", "abc", ""],
    "--max-memory": ["0", "-1", "1", "1K", "4G", "1e30", "", "x", "16M", "999999999999T"],
    "--top-diff": ["ip=ones", "ip", "=ones", "ip=onehot:3"],
    "--out": ["{file}", "{file}/sub", "", "{dir}"],
}


def case_args(rng: random.Random, d: Path, seeds: dict) -> list[str]:
    (d / "dir").mkdir()
    (d / "empty").write_bytes(b"")
    (d / "file").write_text("not a directory")
    (d / "junk.npy").write_bytes(os.urandom(64))
    values = {"missing": d / "missing.npy", "dir": d / "dir", "net": NETS / "lrn_pool.prototxt",
              "empty": d / "empty", "good": _good_npy(d), "junk": d / "junk.npy",
              "file": d / "file"}
    argv = base_argv(NETS / "lrn_pool.prototxt", d / "out")
    for _ in range(rng.randint(1, 4)):
        option = rng.choice(sorted(_OPTIONS))
        value = rng.choice(_OPTIONS[option]).format(**values)
        if option == "--out":
            argv[argv.index("--out") + 1] = value
        else:
            argv += [option, value]
    op = rng.random()
    if op < 0.15:  # one argument dropped
        del argv[rng.randrange(1, len(argv))]
    elif op < 0.25:
        argv.insert(rng.randrange(1, len(argv) + 1), rng.choice(["--bogus", "extra", "-", "--"]))
    elif op < 0.3:
        argv.append(rng.choice(["--force", "--out"]))
    return argv


MAKERS: dict[str, Callable[[random.Random, Path, dict], list[str]]] = {
    "prototxt": case_prototxt, "caffemodel": case_caffemodel, "npy": case_npy,
    "datum": case_datum, "topdiff": case_topdiff, "args": case_args,
}


@pytest.mark.parametrize("category", CATEGORIES)
def test_fuzz_dump(category: str, seeds: dict, fuzz_config: tuple[int, int],
                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative output path stays in the case's directory
    failures = []
    for i, rng in enumerate(cases_for(category, fuzz_config)):
        d = tmp_path / f"case{i}"
        d.mkdir()
        argv = MAKERS[category](rng, d, seeds)
        out_index = argv.index("--out") + 1 if "--out" in argv[:-1] else None
        outdir = Path(argv[out_index]) if out_index is not None else d / "out"
        before = _listing(outdir)
        code, out, err = run_cli(argv)
        problem = judge(code, out, err, outdir, before)
        if problem:
            failures.append(f"{category}#{i} (seed {fuzz_config[1]}): {problem}\n"
                            f"    bpinspect {' '.join(argv)}")
    assert not failures, f"{len(failures)} escape(s):\n" + "\n".join(failures)
