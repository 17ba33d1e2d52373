"""Benchmark: statistics and histogram of a big blob, as the TUI asks for them (not a test).

    python bench/blob_stats.py                 # fc6's weight diff: 4096 x 9216 float32
    python bench/blob_stats.py --shape 64 96 55 55

The blob viewer computes both when a blob is selected; fc6's weights and
their diff, 37.7 M values, are CaffeNet's largest, and the slowest key press.
References, timed in turns with ours in the same run: NumPy's own calls on one
core (np.histogram over the data's range, and min, max, sums in float64).
Medians over the runs; bpinspect's threads as BPINSPECT_NUM_THREADS says.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import cpu_name  # noqa: E402

from bpinspect.layers._parallel import workers  # noqa: E402
from bpinspect.session.stats import DEFAULT_BINS, compute_histogram, compute_stats  # noqa: E402


def numpy_stats(x: np.ndarray) -> None:
    x.min(), x.max(), x.sum(dtype=np.float64), np.square(x).sum(dtype=np.float64)
    np.count_nonzero(x)


def numpy_histogram(x: np.ndarray) -> None:
    np.histogram(x, bins=DEFAULT_BINS, range=(float(x.min()), float(x.max())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[4096, 9216])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.shape, dtype=np.float32) * 1e-3)  # a diff's scale
    items = {
        "statistics": lambda: compute_stats(x),
        "NumPy's statistics, one core": lambda: numpy_stats(x),
        "histogram": lambda: compute_histogram(x, DEFAULT_BINS),
        "np.histogram, one core": lambda: numpy_histogram(x),
    }
    times: dict[str, list[float]] = {name: [] for name in items}
    for run in range(args.repeat + 1):  # the first run warms up
        for name, fn in items.items():
            t = time.perf_counter()
            fn()
            if run:
                times[name].append(time.perf_counter() - t)
    print(f"device: {cpu_name()}; NumPy {np.__version__}; {workers()} threads; "
          f"blob {tuple(args.shape)} float32, {x.size / 1e6:.1f} M values")
    for name, values in times.items():
        print(f"  {name:<30} {statistics.median(values) * 1e3:8.1f} ms")
    ours = statistics.median(times["histogram"]) + statistics.median(times["statistics"])
    ref = (statistics.median(times["np.histogram, one core"])
           + statistics.median(times["NumPy's statistics, one core"]))
    print(f"  both, ours / NumPy's: {ours / ref:.2f}")


if __name__ == "__main__":
    main()
