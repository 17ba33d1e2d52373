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

The ratios compare figures taken in turns: each run of the net is followed by
one of PyTorch's forward, one of its forward + backward and one GEMM probe,
and the medians are over those runs. A shared VM changes speed by a third
within a minute; timed one after the other, the net and its references would
see different machines, and their ratio would show that, not the code.
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
SETTLE_S = 0.2  # pause before each timed item: OpenBLAS's threads spin about 0.1 s after a GEMM


class GemmProbe:
    """float32 GEMM throughput of this device, a 2048^3 product: the yardstick for
    the bound. ``once()`` times one product (GFLOP/s)."""

    def __init__(self, xp, n: int = 2048) -> None:
        self.xp, self.n = xp, n
        self.a = xp.ones((n, n), dtype=np.float32)
        self.b = xp.ones((n, n), dtype=np.float32)
        self.once()  # warm

    def once(self) -> float:
        synchronize(self.xp)
        t = time.perf_counter()
        self.a @ self.b
        synchronize(self.xp)
        return 2 * self.n**3 / (time.perf_counter() - t) / 1e9

    def median(self, repeat: int = 5) -> float:
        return statistics.median(self.once() for _ in range(repeat))


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


def caffenet_at(batch: int, device) -> Net:
    """CaffeNet with seeded weights and a seeded random batch of ``batch`` images."""
    net = Net(NET, device=device, seed=0)
    net.blobs["data"].reshape((batch, 3, 227, 227))
    net.reshape()
    data = np.random.default_rng(0).standard_normal((batch, 3, 227, 227))
    net.blobs["data"].data[...] = device.xp.asarray(data, dtype=np.float32)
    return net


def net_pass(net: Net) -> tuple[list[float], list[float], float, float]:
    """One forward + backward: per-layer forward and backward seconds, and the
    forward and forward + backward totals."""
    xp = net.device.xp
    n = len(net.layers)
    fwd, bwd = [0.0] * n, [0.0] * n
    top = net.blobs["fc8"]
    synchronize(xp)
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        net.forward_layer(i)
        synchronize(xp)
        fwd[i] = time.perf_counter() - t
    mid = time.perf_counter()
    net.clear_param_diffs()
    top.diff[...] = 0
    top.diff[:, 281] = 1  # seed 003: the gradient of class 281's score
    for i in reversed(range(n)):
        t = time.perf_counter()
        net.backward_layer(i)
        synchronize(xp)
        bwd[i] = time.perf_counter() - t
    end = time.perf_counter()
    return fwd, bwd, mid - start, end - start


def time_in_turns(net: Net, ref, probe: GemmProbe, warmup: int, repeat: int) -> dict:
    """The net's passes, each followed by PyTorch's forward and forward + backward
    (``ref``, when given) and one GEMM probe: every list holds one entry per timed run."""
    t: dict = {"fwd": [[] for _ in net.layers], "bwd": [[] for _ in net.layers],
               "total_f": [], "total_fb": [], "torch_f": [], "torch_fb": [], "gflops": []}
    def settled(fn):  # another's spinning threads (OpenBLAS's, OpenMP's) have gone idle
        time.sleep(SETTLE_S)
        return fn()

    for run in range(warmup + repeat):
        fwd, bwd, total_f, total_fb = settled(lambda: net_pass(net))
        torch_f, torch_fb = (settled(ref.fwd), settled(ref.fwd_bwd)) if ref else (None, None)
        gflops = settled(probe.once)
        if run < warmup:
            continue
        for i in range(len(net.layers)):
            t["fwd"][i].append(fwd[i])
            t["bwd"][i].append(bwd[i])
        t["total_f"].append(total_f)
        t["total_fb"].append(total_fb)
        t["gflops"].append(gflops)
        if ref:
            t["torch_f"].append(torch_f)
            t["torch_fb"].append(torch_fb)
    return t


class TorchCaffeNet:
    """The same CaffeNet in PyTorch; ``fwd()`` and ``fwd_bwd()`` time one pass each
    (seconds). ``load`` gives None where torch is not importable."""

    @classmethod
    def load(cls, batch: int, cuda: bool) -> TorchCaffeNet | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return None
        return cls(batch, cuda)

    def __init__(self, batch: int, cuda: bool) -> None:
        import torch
        from torch import nn

        self.torch, self.cuda = torch, cuda
        dev = "cuda" if cuda else "cpu"
        self.model = nn.Sequential(
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
        self.x = torch.randn(batch, 3, 227, 227, device=dev, requires_grad=True)

    def _timed(self, fn) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter() - t

    def fwd(self) -> float:
        def run() -> None:
            with self.torch.no_grad():
                self.model(self.x)
        return self._timed(run)

    def fwd_bwd(self) -> float:
        def run() -> None:
            self.model.zero_grad(set_to_none=False)
            out = self.model(self.x)
            out[:, 281].sum().backward()
        return self._timed(run)


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
        probe = GemmProbe(xp)
        where = device.name if device.is_gpu else cpu_name()
        print(f"device: {where}; NumPy {np.__version__}; float32 GEMM {probe.median():.0f} "
              "GFLOP/s (the bound below: the median of the probes taken in turns)")
        if not device.is_gpu:
            print(f"BLAS: {blas_line()}")
            warning = forced_kernel_warning()
            if warning:
                print(warning)
        print(f"{'batch':>5} {'fwd ms':>9} {'fwd+bwd ms':>11} {'GEMM bound fb':>14} "
              f"{'ratio to bound':>14} {'its GEMMs':>10} {'outside':>8} "
              f"{'torch fwd':>10} {'torch fb':>9} {'ratio fb':>9}")
        for batch in args.batch:
            net = caffenet_at(batch, device)
            ref = TorchCaffeNet.load(batch, device.is_gpu) if args.torch else None
            t = time_in_turns(net, ref, probe, args.warmup, args.repeat)
            f_ms = statistics.median(t["total_f"]) * 1e3
            fb_ms = statistics.median(t["total_fb"]) * 1e3
            gflops = statistics.median(t["gflops"])
            bound_ms = 3 * FWD_GFLOP_PER_IMAGE * batch / gflops * 1e3
            gemm_ms = time_gemms(xp, gemm_shapes(net), args.warmup, args.repeat) * 1e3
            if ref:
                torch_f, torch_fb = (statistics.median(t[k]) * 1e3 for k in ("torch_f", "torch_fb"))
                ref_cols = f"{torch_f:10.1f} {torch_fb:9.1f} {fb_ms / torch_fb:9.2f}"
            else:
                ref_cols = f"{'-':>10} {'-':>9} {'-':>9}"
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
