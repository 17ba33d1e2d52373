"""Benchmark: what bpinspect's threads give each CaffeNet layer (not a test).

    python bench/threads.py                    # batch 1
    python bench/threads.py --batch 16 --repeat 10

Every layer's forward and backward, timed with the work split over the
threads (``BPINSPECT_NUM_THREADS`` unset: one part per CPU, at most 8) and on
one thread (``BPINSPECT_NUM_THREADS=1``, the BLAS on one thread too), the two
in turns in one process, each pass of one followed by a pass of the other:
a shared VM drifts within a minute, and in turns both see the same machine.
Medians over the runs. A ratio over 1 is a layer that the split slows down
(its NumPy calls too small for the hand-over between threads to pay).
"""

from __future__ import annotations

import argparse
import os
import statistics

from _machine import blas_line, cpu_name
from caffenet import caffenet_at, net_pass

from bpinspect.backend import select_device

SETTINGS = {"threads": None, "one": "1"}  # BPINSPECT_NUM_THREADS for each


def use(setting: str | None) -> None:
    if setting is None:
        os.environ.pop("BPINSPECT_NUM_THREADS", None)
    else:
        os.environ["BPINSPECT_NUM_THREADS"] = setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=16)
    args = parser.parse_args()
    given = os.environ.get("BPINSPECT_NUM_THREADS")

    device = select_device("cpu")
    net = caffenet_at(args.batch, device)
    times = {name: ([], []) for name in SETTINGS}  # per run: forward and backward lists
    for run in range(args.warmup + args.repeat):
        for name, setting in SETTINGS.items():
            use(setting)
            fwd, bwd, _, _ = net_pass(net)
            if run >= args.warmup:
                times[name][0].append(fwd)
                times[name][1].append(bwd)
    use(given)

    def ms(name: str, way: int, i: int) -> float:
        return statistics.median(run[i] for run in times[name][way]) * 1e3

    print(f"device: {cpu_name()}; BLAS: {blas_line()}; batch {args.batch}")
    print(f"{'layer':<8} {'type':<13} {'fwd split':>9} {'fwd one':>8} {'ratio':>6} "
          f"{'bwd split':>9} {'bwd one':>8} {'ratio':>6}")
    totals = {(name, way): 0.0 for name in SETTINGS for way in (0, 1)}
    for i, layer in enumerate(net.layers):
        cells = []
        for way in (0, 1):
            split, one = ms("threads", way, i), ms("one", way, i)
            totals["threads", way] += split
            totals["one", way] += one
            ratio = f"{split / one:6.2f}" if one > 0.005 else f"{'-':>6}"
            cells.append(f"{split:9.2f} {one:8.2f} {ratio}")
        print(f"{layer.name:<8} {layer.type:<13} {cells[0]} {cells[1]}")
    row = [f"{totals['threads', w]:9.1f} {totals['one', w]:8.1f} "
           f"{totals['threads', w] / totals['one', w]:6.2f}" for w in (0, 1)]
    print(f"{'total':<8} {'':<13} {row[0]} {row[1]}")


if __name__ == "__main__":
    main()
