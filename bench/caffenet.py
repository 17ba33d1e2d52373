"""Benchmark: CaffeNet forward and forward+backward, per layer and in total.

    python bench/caffenet.py                       # NumPy, batch 1 and 16
    python bench/caffenet.py --device gpu --batch 1 64
    python bench/caffenet.py --torch               # + PyTorch in the same run (if installed)

Medians of --repeat runs after --warmup runs. fwd+bwd includes the parameter
gradients, as Caffe computes them. Every figure is printed beside references
measured in the same run: the float32 GEMM bound of this machine (or GPU),
the time of the net's own GEMMs alone (the same shapes on random operands:
"outside" is the share of fwd+bwd spent in everything else), and PyTorch
when --torch is given and torch is importable (it is never a dependency of
bpinspect). On a GPU each layer is timed between device
synchronizations.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _machine import blas_line, cpu_name, forced_kernel_warning

from bpinspect.backend import select_device, synchronize
from bpinspect.engine.net import Net

NET = Path(__file__).resolve().parent.parent / "nets" / "caffenet.prototxt"
FWD_GFLOP_PER_IMAGE = 1.449  # conv1..fc8, counted in ../shared/BENCHMARKS.md


def gemm_gflops(xp, n: int = 2048, repeat: int = 5) -> float:
    """float32 GEMM throughput of this device: the yardstick for the bound."""
    a = xp.ones((n, n), dtype=np.float32)
    b = xp.ones((n, n), dtype=np.float32)
    a @ b
    synchronize(xp)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        synchronize(xp)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def gemm_shapes(net: Net) -> list[tuple[int, int, int]]:
    """(m, k, n) of every GEMM one forward + backward of ``net`` runs, as Caffe's
    im2col formulation has them: per conv group, W·col, dY·colᵀ (the weight diff)
    and Wᵀ·dY (the column diff); per inner product, X·Wᵀ, dYᵀ·X and dY·W."""
    shapes = []
    for layer in net.layers:
        params = net.params.get(layer.name, [])
        if layer.type in ("Convolution", "Deconvolution") and params:
            out_c, k_per_group = params[0].shape[0], int(np.prod(params[0].shape[1:]))
            groups = layer.group
            # The column matrix spans the spatial side that the kernel slides over.
            side = net.top_names[layer.name][0] if layer.type == "Convolution" \
                else net.bottom_names[layer.name][0]
            shape = net.blobs[side].shape
            cols = shape[0] * int(np.prod(shape[2:]))
            m = out_c // groups
            shapes += [(m, k_per_group, cols), (m, cols, k_per_group),
                       (k_per_group, m, cols)] * groups
        elif layer.type == "InnerProduct" and params:
            out, k = params[0].shape
            rows = net.blobs[net.bottom_names[layer.name][0]].count // k
            shapes += [(rows, k, out), (out, rows, k), (rows, out, k)]
    return shapes


def time_gemms(xp, shapes: list[tuple[int, int, int]], warmup: int, repeat: int) -> float:
    """Median seconds of the GEMMs alone, on random operands of the same shapes."""
    rng = np.random.default_rng(0)
    operands = [(xp.asarray(rng.standard_normal((m, k), dtype=np.float32)),
                 xp.asarray(rng.standard_normal((k, n), dtype=np.float32)))
                for m, k, n in shapes]
    totals = []
    for run in range(warmup + repeat):
        synchronize(xp)
        t = time.perf_counter()
        for a, b in operands:
            a @ b
        synchronize(xp)
        if run >= warmup:
            totals.append(time.perf_counter() - t)
    return statistics.median(totals)


def time_net(net: Net, warmup: int, repeat: int) -> dict[str, list[float]]:
    """Per-layer forward and backward times (seconds) for each timed run."""
    xp = net.device.xp
    n = len(net.layers)
    fwd = [[] for _ in range(n)]
    bwd = [[] for _ in range(n)]
    totals_f, totals_fb = [], []
    top = net.blobs["fc8"]
    for run in range(warmup + repeat):
        synchronize(xp)
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            net.forward_layer(i)
            synchronize(xp)
            if run >= warmup:
                fwd[i].append(time.perf_counter() - t)
        mid = time.perf_counter()
        net.clear_param_diffs()
        top.diff[...] = 0
        top.diff[:, 281] = 1  # seed 003: the gradient of class 281's score
        for i in reversed(range(n)):
            t = time.perf_counter()
            net.backward_layer(i)
            synchronize(xp)
            if run >= warmup:
                bwd[i].append(time.perf_counter() - t)
        end = time.perf_counter()
        if run >= warmup:
            totals_f.append(mid - start)
            totals_fb.append(end - start)
    return {"fwd": fwd, "bwd": bwd, "total_f": totals_f, "total_fb": totals_fb}


def torch_times(batch: int, warmup: int, repeat: int, cuda: bool) -> tuple[float, float] | None:
    """The same CaffeNet in PyTorch (median fwd, fwd+bwd seconds), or None."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    dev = "cuda" if cuda else "cpu"
    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(True), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(True),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(True),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(True),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(4096, 1000),
    ).to(dev).eval()
    x = torch.randn(batch, 3, 227, 227, device=dev, requires_grad=True)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def timed(fn) -> float:
        times = []
        for run in range(warmup + repeat):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if run >= warmup:
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    def fwd() -> None:
        with torch.no_grad():
            model(x)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=False)
        out = model(x)
        out[:, 281].sum().backward()

    return timed(fwd), timed(fwd_bwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--torch", action="store_true", help="time PyTorch in the same run")
    parser.add_argument("--per-layer", action="store_true", help="print the per-layer table")
    args = parser.parse_args()

    device = select_device(args.device)
    xp = device.xp
    with device.use():
        gflops = gemm_gflops(xp)
        where = device.name if device.is_gpu else cpu_name()
        print(f"device: {where}; NumPy {np.__version__}; float32 GEMM {gflops:.0f} GFLOP/s")
        if not device.is_gpu:
            print(f"BLAS: {blas_line()}")
            warning = forced_kernel_warning()
            if warning:
                print(warning)
        print(f"{'batch':>5} {'fwd ms':>9} {'fwd+bwd ms':>11} {'GEMM bound fb':>14} "
              f"{'ratio to bound':>14} {'its GEMMs':>10} {'outside':>8} "
              f"{'torch fwd':>10} {'torch fb':>9} {'ratio fb':>9}")
        for batch in args.batch:
            net = Net(NET, device=device, seed=0)
            net.blobs["data"].reshape((batch, 3, 227, 227))
            net.reshape()
            data = np.random.default_rng(0).standard_normal((batch, 3, 227, 227))
            net.blobs["data"].data[...] = xp.asarray(data, dtype=np.float32)
            t = time_net(net, args.warmup, args.repeat)
            f_ms = statistics.median(t["total_f"]) * 1e3
            fb_ms = statistics.median(t["total_fb"]) * 1e3
            bound_ms = 3 * FWD_GFLOP_PER_IMAGE * batch / gflops * 1e3
            gemm_ms = time_gemms(xp, gemm_shapes(net), args.warmup, args.repeat) * 1e3
            ref = (torch_times(batch, args.warmup, args.repeat, device.is_gpu)
                   if args.torch else None)
            ref_cols = (f"{ref[0] * 1e3:10.1f} {ref[1] * 1e3:9.1f} {fb_ms / (ref[1] * 1e3):9.2f}"
                        if ref else f"{'-':>10} {'-':>9} {'-':>9}")
            outside = 1 - gemm_ms / fb_ms
            share = f"{outside:8.0%}" if outside >= 0 else f"{'-':>8}"
            print(f"{batch:5d} {f_ms:9.1f} {fb_ms:11.1f} {bound_ms:14.1f} "
                  f"{fb_ms / bound_ms:14.2f} {gemm_ms:10.1f} {share} {ref_cols}")
            if outside < 0:
                print("      (its GEMMs, as plain BLAS calls in Caffe's shapes, take longer "
                      "than the net: the net runs some otherwise: weight diffs at batch 1 as "
                      "outer products, fc forwards as W x^T)")
            if args.per_layer:
                print(f"  {'layer':<10} {'type':<14} {'fwd ms':>8} {'bwd ms':>8}")
                for i, layer in enumerate(net.layers):
                    fm = statistics.median(t["fwd"][i]) * 1e3
                    bm = statistics.median(t["bwd"][i]) * 1e3
                    print(f"  {layer.name:<10} {layer.type:<14} {fm:8.2f} {bm:8.2f}")


if __name__ == "__main__":
    main()
