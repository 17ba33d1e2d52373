"""Benchmark: one training iteration split into data, forward, backward and update.

    python bench/train_iteration.py                      # the digits demo and CaffeNet
    python bench/train_iteration.py --nets caffenet --batch 32 --repeat 5

Run from the repository root (the demo's LMDB paths are relative to it), with
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` where the machine sets those
variables (they force an older OpenBLAS kernel; the line "BLAS:" says which ran).

One iteration of ``Solver::Step`` (iter_size 1, no test) in its parts, timed
separately:

- ``clear``: ``solver.begin_iteration()`` (marks the param diffs zero: the zeros are
  written by whatever reads a diff first, or skipped where a layer writes it whole);
- ``data``: the forward of the data layers (reading the LMDB records and the
  DataTransformer: crop, mirror, mean, scale);
- ``forward``: the forward of every other layer, in order (loss included);
- ``backward``: ``net.backward()`` (zeroes the blob diffs, seeds the loss,
  every layer backward; param diffs accumulate);
- ``update``: ``solver.apply_update()`` (rate, clipping, weight decay,
  momentum, ``data -= diff``, and the norms of its report).

Medians of ``--repeat`` iterations after ``--warmup``; "share" is a part's
median over the median of the whole iteration (so shares need not add up to
exactly 100%). The project's target: update < 10% and data < 10% of an iteration.

The nets:

1. ``digits``: ``nets/digits_solver.prototxt`` (DigitsLeNet, batch 64 of
   1x16x16 digits from ``nets/digits_train_lmdb``); its test nets are built
   but never run.
2. ``caffenet``: BVLC's ``models/bvlc_reference_caffenet/train_val.prototxt``
   (TRAIN phase) rebuilt from ``nets/caffenet.prototxt`` (the deploy net): its
   Input layer replaced by a Data layer (mirror, crop 227, mean values 104 117
   123) over a generated LMDB of random 3x256x256 uint8 records with labels
   0..999, train_val's param multipliers and fillers, and SoftmaxWithLoss on
   fc8; an SGD solver as in train_val's solver (momentum 0.9, weight decay
   0.0005, step policy), no test nets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lmdb
import numpy as np
from _machine import blas_line, cpu_name, forced_kernel_warning

from bpinspect.engine.solver import Solver, get_solver
from bpinspect.io.prototxt import load_net
from bpinspect.layers.data_source import DataSource
from bpinspect.proto import caffe_pb2

ROOT = Path(__file__).resolve().parent.parent
DIGITS_SOLVER = "nets/digits_solver.prototxt"
CAFFENET_DEPLOY = ROOT / "nets" / "caffenet.prototxt"
PARTS = ("clear", "data", "forward", "backward", "update")
TARGET_SHARE = 0.10

# train_val.prototxt's fillers: layer -> (weight gaussian std, bias constant)
CAFFENET_FILLERS = {
    "conv1": (0.01, 0.0), "conv2": (0.01, 1.0), "conv3": (0.01, 0.0),
    "conv4": (0.01, 1.0), "conv5": (0.01, 1.0), "fc6": (0.005, 1.0),
    "fc7": (0.005, 1.0), "fc8": (0.01, 0.0),
}


# ---- the nets ----------------------------------------------------------------------


def write_random_lmdb(path: str, records: int, seed: int = 0) -> None:
    """``records`` Datum records of random 3x256x256 uint8, labels 0..999, keys %08d."""
    rng = np.random.default_rng(seed)
    env = lmdb.open(path, map_size=1 << 30)
    with env.begin(write=True) as txn:
        for i in range(records):
            pixels = rng.integers(0, 256, size=(3, 256, 256), dtype=np.uint8)
            datum = caffe_pb2.Datum(channels=3, height=256, width=256, data=pixels.tobytes(),
                                    label=int(rng.integers(0, 1000)))
            txn.put(b"%08d" % i, datum.SerializeToString())
    env.close()


def caffenet_train_val(source: str, batch: int) -> caffe_pb2.NetParameter:
    """train_val.prototxt's TRAIN net, from the deploy net and a Data layer on ``source``."""
    deploy = load_net(CAFFENET_DEPLOY, [])
    net = caffe_pb2.NetParameter(name=deploy.name)
    data = net.layer.add(name="data", type="Data", top=["data", "label"])
    data.include.add(phase=caffe_pb2.TRAIN)
    data.transform_param.mirror = True
    data.transform_param.crop_size = 227
    data.transform_param.mean_value.extend([104, 117, 123])
    data.data_param.source = source
    data.data_param.backend = caffe_pb2.DataParameter.LMDB
    data.data_param.batch_size = batch
    for layer in deploy.layer:
        if layer.type == "Input":
            continue
        added = net.layer.add()
        added.CopyFrom(layer)
        if layer.name in CAFFENET_FILLERS:
            std, bias = CAFFENET_FILLERS[layer.name]
            del added.param[:]
            added.param.add(lr_mult=1, decay_mult=1)
            added.param.add(lr_mult=2, decay_mult=0)
            p = (added.convolution_param if layer.type == "Convolution"
                 else added.inner_product_param)
            p.weight_filler.type = "gaussian"
            p.weight_filler.std = std
            p.bias_filler.type = "constant"
            p.bias_filler.value = bias
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc8", "label"], top=["loss"])
    net.ClearField("force_backward")
    return net


def caffenet_solver(tmp: str, batch: int) -> Solver:
    source = os.path.join(tmp, "caffenet_train_lmdb")
    write_random_lmdb(source, 64)
    param = caffe_pb2.SolverParameter(
        net_param=caffenet_train_val(source, batch), base_lr=0.01, momentum=0.9,
        weight_decay=0.0005, lr_policy="step", gamma=0.1, stepsize=100000, max_iter=1000,
        type="SGD")
    return get_solver(param)


# ---- timing ------------------------------------------------------------------------


def time_iterations(solver: Solver, warmup: int, repeat: int) -> tuple[dict, list[float]]:
    """Seconds per part for each timed iteration, and every iteration's loss."""
    net = solver.net
    n = len(net.layers)
    data_layers = [i for i in range(n) if isinstance(net.layers[i], DataSource)]
    others = [i for i in range(n) if i not in data_layers]
    times: dict[str, list[float]] = {part: [] for part in (*PARTS, "total")}
    losses = []
    for run in range(warmup + repeat):
        t0 = time.perf_counter()
        solver.begin_iteration()
        t1 = time.perf_counter()
        loss = 0.0
        for i in data_layers:
            loss += net.forward_layer(i)
        t2 = time.perf_counter()
        for i in others:
            loss += net.forward_layer(i)
        t3 = time.perf_counter()
        net.backward()
        t4 = time.perf_counter()
        solver.apply_update()
        t5 = time.perf_counter()
        losses.append(loss)
        if run >= warmup:
            for part, (a, b) in zip(PARTS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)),
                                    strict=True):
                times[part].append(b - a)
            times["total"].append(t5 - t0)
    return times, losses


def report(name: str, solver: Solver, times: dict, losses: list[float]) -> None:
    net = solver.net
    data_blob = next(b for b in net.blobs.values())
    params = sum(lp.blob.count for lp in solver.learnable)
    print(f"\n{name}: batch {data_blob.shape[0]}, input {'x'.join(map(str, data_blob.shape))}, "
          f"{len(net.layers)} layers, {params / 1e6:.2f} M learnable params, "
          f"{len(times['total'])} timed iterations")
    total = statistics.median(times["total"])
    print(f"  {'part':<10} {'median ms':>10} {'share':>7}")
    shares = {}
    for part in PARTS:
        ms = statistics.median(times[part])
        shares[part] = ms / total
        print(f"  {part:<10} {ms * 1e3:10.2f} {shares[part]:7.1%}")
    print(f"  {'total':<10} {total * 1e3:10.2f} {'100.0%':>7}")
    ok = shares["update"] < TARGET_SHARE and shares["data"] < TARGET_SHARE
    print(f"  target (update < 10% and data < 10% of an iteration): "
          f"{'MET' if ok else 'NOT MET'} (update {shares['update']:.1%}, "
          f"data {shares['data']:.1%})")
    print(f"  loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=("digits", "caffenet"),
                        default=["digits", "caffenet"])
    parser.add_argument("--batch", type=int, default=32, help="CaffeNet's batch size")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.repeat < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--repeat and --batch must be at least 1, --warmup at least 0")

    os.chdir(ROOT)  # the demo solver's paths are relative to the repository root
    print(f"CPU: {cpu_name()}; NumPy {np.__version__}")
    print(f"BLAS: {blas_line()}")
    if forced_kernel_warning():
        print(forced_kernel_warning())
    for name in args.nets:
        with tempfile.TemporaryDirectory(prefix="bpinspect-bench-") as tmp:
            start = time.perf_counter()
            if name == "digits":
                solver = get_solver(DIGITS_SOLVER)
                label = f"digits ({DIGITS_SOLVER})"
            else:
                solver = caffenet_solver(tmp, args.batch)
                label = "CaffeNet train_val (generated LMDB, 64 records of 3x256x256)"
            built = time.perf_counter() - start
            times, losses = time_iterations(solver, args.warmup, args.repeat)
            report(label, solver, times, losses)
            print(f"  (built in {built:.1f} s)")


if __name__ == "__main__":
    main()
