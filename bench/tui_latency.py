"""Benchmark: how quickly the TUI answers, driven headless (not a test).

    python bench/tui_latency.py                      # CaffeNet, NumPy, 160x50
    python bench/tui_latency.py --batch 16 --passes 2
    python bench/tui_latency.py --net nets/lrn_pool.prototxt

Reports
- imports: `import bpinspect.tui.app` in a fresh interpreter;
- first frame: from creating the app to its first painted screen (the
  session, weights and all, is built afterwards in the worker);
- session ready: until the net is built and the first view is painted;
- per step key (n), over whole passes: the time from the key to the
  repainted screen, minus the layer's own forward/backward (the compute the
  session reports), split into the worker's gathering of what the screen
  shows (statistics and histograms reduced by the session) and the UI's
  applying it and painting. Goal: median under 50 ms.

Every time is measured with hooks in the running app (the key press is
timestamped before it is posted, the paint in the compositor), so the
Pilot's own waiting between keys does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def import_seconds() -> float:
    code = ("import time; t = time.perf_counter(); import bpinspect.tui.app; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return float(out.strip())


def options(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(net=str(args.net), weights=args.weights, input=[], mean=None,
                              top_diff=list(args.top_diff), phase="test", device=args.device,
                              seed=0, breaks=[], export_dir=None)


def batch_factory(batch: int):  # noqa: ANN201
    """A session builder that sets the first input to ``batch`` items (as a user's
    ``--input`` of that batch would)."""
    if batch == 1:
        return None

    def build(opts: argparse.Namespace, **kwargs):  # noqa: ANN202, ANN003
        import numpy as np

        from bpinspect.backend import rng
        from bpinspect.session.options import session_from_options

        session = session_from_options(opts, **kwargs)
        name = session.net.inputs[0]
        shape = (batch, *session.net.blobs[name].shape[1:])
        session.set_input(name, (rng(0).standard_normal(shape) * 50).astype(np.float32))
        return session

    return build


class Probe:
    """Timestamps from inside the app: the first paint, and the first paint after the
    screen took each new view (hooks on the classes: Textual dispatches through them)."""

    def __init__(self) -> None:
        from textual.screen import Screen

        from bpinspect.tui.screens.main import MainScreen

        self.first_paint: float | None = None
        self.view_painted: list[float] = []
        self._pending_view = False
        probe = self
        paint = Screen._compositor_refresh
        take_view = MainScreen.on_view_updated

        def compositor_refresh(screen: Screen) -> None:
            paint(screen)
            now = time.perf_counter()
            if probe.first_paint is None:
                probe.first_paint = now
            if probe._pending_view:
                probe._pending_view = False
                probe.view_painted.append(now)

        def on_view_updated(screen: MainScreen, event) -> None:  # noqa: ANN001
            take_view(screen, event)
            probe._pending_view = True
            screen.refresh()  # a paint follows even if nothing visible changed

        Screen._compositor_refresh = compositor_refresh  # type: ignore[method-assign]
        MainScreen.on_view_updated = on_view_updated  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> dict[str, object]:
    from bpinspect.tui.app import BpinspectApp

    probe = Probe()
    start = time.perf_counter()
    app = BpinspectApp(options(args), session_factory=batch_factory(args.batch))
    app.animation_level = "none"
    result: dict[str, object] = {}
    async with app.run_test(size=tuple(args.size)) as pilot:
        while app.session is None or app.busy or not probe.view_painted:
            if app.load_error:
                raise SystemExit(f"tui_latency: {app.load_error}")
            await asyncio.sleep(0.005)
        ready = probe.view_painted[-1]
        assert probe.first_paint is not None
        result["first_frame_ms"] = 1000 * (probe.first_paint - start)
        result["ready_ms"] = 1000 * (ready - start)
        session = app.session
        rows = []
        for _ in range(args.passes):
            await pilot.press("r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            while not session.at_end:
                label = session.next_step.label
                painted_before = len(probe.view_painted)
                timings_before = len(app.timings)
                key_at = time.perf_counter()
                await pilot.press("n")
                while len(probe.view_painted) == painted_before or app.busy:
                    await asyncio.sleep(0.001)
                painted = probe.view_painted[painted_before]
                if len(app.timings) == timings_before:
                    continue
                t = app.timings[timings_before]
                total = painted - key_at
                rows.append((label, t["compute"], t["gather"], total - t["compute"]))
        result["steps"] = rows
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", type=Path, default=ROOT / "nets" / "caffenet.prototxt")
    p.add_argument("--weights", default=None)
    p.add_argument("--top-diff", action="append", default=["fc8=onehot:281"],
                   help="injections (default fc8=onehot:281, for CaffeNet)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--passes", type=int, default=1, help="whole passes of n keys")
    p.add_argument("--size", type=int, nargs=2, default=(160, 50), metavar=("W", "H"))
    p.add_argument("--per-step", action="store_true", help="print every step")
    args = p.parse_args()
    if args.net.name != "caffenet.prototxt" and args.top_diff == ["fc8=onehot:281"]:
        args.top_diff = []

    print(f"bpinspect TUI latency: {args.net.name}, batch {args.batch}, {args.device}, "
          f"{args.size[0]}x{args.size[1]}, {cpu_name()}, Python {platform.python_version()}")
    print(f"import bpinspect.tui.app (fresh interpreter): {1000 * import_seconds():.0f} ms")
    result = asyncio.run(run(args))
    print(f"first frame:   {result['first_frame_ms']:.0f} ms after creating the app")
    print(f"session ready: {result['ready_ms']:.0f} ms (net built, weights filled, first "
          "view painted)")
    rows = result["steps"]
    assert isinstance(rows, list)
    if args.per_step:
        print(f"{'step':34} {'compute':>9} {'gather':>8} {'key→paint−compute':>18}")
        for label, compute, gather, overhead in rows:
            print(f"{label:34} {1000 * compute:8.1f}  {1000 * gather:7.1f}  "
                  f"{1000 * overhead:17.1f}")
    overheads = [1000 * r[3] for r in rows]
    gathers = [1000 * r[2] for r in rows]
    ui = [o - g for o, g in zip(overheads, gathers, strict=True)]
    q = statistics.quantiles(overheads, n=10) if len(overheads) >= 2 else overheads * 9
    print(f"step key → repainted screen, minus the layer's compute, over {len(rows)} steps:")
    print(f"  median {statistics.median(overheads):.1f} ms   p90 {q[-1]:.1f} ms   "
          f"max {max(overheads):.1f} ms   (goal: median < 50 ms)")
    print(f"  of which the worker gathering the view: median {statistics.median(gathers):.1f}"
          f" ms, max {max(gathers):.1f} ms; the UI applying and painting it: median "
          f"{statistics.median(ui):.1f} ms")


if __name__ == "__main__":
    main()
