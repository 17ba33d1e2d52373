"""Regenerate the SVG screenshots in screenshots/ (the README shows them).

    python screenshots/make_screenshots.py            # all of them
    python screenshots/make_screenshots.py lrn help   # some

Each screenshot drives the real app headless with the keys a user presses
(seeded nets from nets/, CPU, timings hidden so that the pictures only
change when the screen does).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import TabbedContent, Tabs

from bpinspect.tui.app import BpinspectApp
from bpinspect.tui.view_data import (
    TAB_CONCAT,
    TAB_DEPTH,
    TAB_GATES,
    TAB_LRN,
    TAB_SALIENCY,
    TAB_UNITS,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent
SIZE = (160, 50)


def options(net: str, **changes: object) -> argparse.Namespace:
    values = dict(net=str(ROOT / "nets" / net), weights=None, input=[], mean=None,
                  top_diff=[], phase="test", device="cpu", seed=0, breaks=[], export_dir=None)
    values.update(changes)
    return argparse.Namespace(**values)


async def settle(pilot: Pilot) -> None:
    app = pilot.app
    for _ in range(100):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            return
    raise RuntimeError("the session worker did not settle")


async def press(pilot: Pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def select(pilot: Pilot, layer: str) -> None:
    layers = pilot.app.main_screen.layer_list  # type: ignore[attr-defined]
    layers.focus()
    layers.select_layer(layer)
    layers.post_message(layers.LayerHighlighted(layers, layer))
    await settle(pilot)


async def tab(pilot: Pilot, pane: str) -> None:
    pilot.app.main_screen.query_one(TabbedContent).active = pane  # type: ignore[attr-defined]
    await settle(pilot)


async def main_screen(pilot: Pilot) -> None:
    """CaffeNet in the backward pass, stopped at a breakpoint on conv3."""
    await press(pilot, "n", "n", "n", "n", "n")
    await select(pilot, "conv3")
    await press(pilot, "b", "c", "c")


async def lrn(pilot: Pilot) -> None:
    await press(pilot, "c")
    await select(pilot, "norm1")
    await tab(pilot, TAB_LRN)
    pilot.app.main_screen.query_one("#lrn").focus()  # type: ignore[attr-defined]
    await press(pilot, "right_square_bracket", "right_square_bracket", "right_square_bracket")


async def pooling(pilot: Pilot) -> None:
    await press(pilot, "c")
    await select(pilot, "pool1")
    pilot.app.main_screen.query_one("#pooling").focus()  # type: ignore[attr-defined]
    await press(pilot, "down", "down", "down", "right", "right", "right", "right")


async def concat(pilot: Pilot) -> None:
    await press(pilot, "c")
    await select(pilot, "AA")  # a concatenated with itself: the seed 000 question
    await tab(pilot, TAB_CONCAT)


async def saliency(pilot: Pilot) -> None:
    await press(pilot, "c")
    await select(pilot, "input")
    await tab(pilot, TAB_SALIENCY)
    pilot.app.main_screen.query_one("#saliency").focus()  # type: ignore[attr-defined]
    await press(pilot, "m")  # zoom: the map fills the screen


async def help_screen(pilot: Pilot) -> None:
    await press(pilot, "n", "n", "question_mark")


def digits_training(solver: str = "nets/digits_solver.prototxt") -> BpinspectApp:
    """DigitsLeNet's solver over its LMDB, as ``bpinspect --solver
    nets/digits_solver.prototxt`` (from the repository root: the solver names its net
    from there, as Caffe's do)."""
    import os

    from bpinspect.engine.solver import get_solver
    from bpinspect.session.training import TrainingSession

    os.chdir(ROOT)
    return BpinspectApp(session=TrainingSession(get_solver(solver)))


def digits_too_high() -> BpinspectApp:
    """The same with base_lr 0.12: it blows up at iteration 36."""
    return digits_training("nets/digits_solver_lr_too_high.prototxt")


async def training(pilot: Pilot) -> None:
    """u to iteration 150 (tests at 0, 50, 100, 150), then through that iteration's pass
    and its update: the update row's params, the loss plot, the update ratios."""
    await press(pilot, "u", "1", "5", "0", "enter")
    session = pilot.app.session
    assert session is not None
    while session.last_step is None or session.last_step.direction != "update":
        await press(pilot, "n")


async def batch(pilot: Pilot) -> None:
    """u to iteration 20, then its data layer's step: the Batch tab's digits and labels."""
    await press(pilot, "u", "2", "0", "enter", "n")
    await tab(pilot, "tab-batch")


async def units(pilot: Pilot) -> None:
    """The learning rate too high: u to iteration 34, two before the NaN, and its forward
    to relu1: its dead neurons over the iterations, half of them dead in the last."""
    await press(pilot, "u", "3", "4", "enter")
    await press(pilot, *"n" * 7)  # through relu1's forward of iteration 34
    await select(pilot, "relu1")
    await tab(pilot, TAB_UNITS)


async def depth(pilot: Pilot) -> None:
    """CaffeNet after the whole pass: every layer's top diff, each over its own range
    (over one range, the injected 1 at fc8 crowds every other layer into a bin or
    two), the tab zoomed to the whole screen."""
    await press(pilot, "c")
    await tab(pilot, TAB_DEPTH)
    await press(pilot, "d", "D")
    pilot.app.main_screen.query_one(Tabs).focus()  # type: ignore[attr-defined]
    await press(pilot, "m")


async def gates(pilot: Pilot) -> None:
    """The LSTM's forget gate of sequence 1 (a new sequence at t = 4)."""
    await press(pilot, "n", "n")
    await select(pilot, "lstm1")
    await tab(pilot, TAB_GATES)
    pilot.app.main_screen.query_one("#gates").focus()  # type: ignore[attr-defined]
    await press(pilot, "right_square_bracket", "right_curly_bracket")


def compare_dump() -> argparse.Namespace:
    """lrn_pool against a dump made with ip's weights 1% larger: every top's data agrees
    up to ip's, every diff parts (backward runs through ip's weights)."""
    import contextlib
    import io
    import tempfile

    import numpy as np

    from bpinspect.cli import main as cli_main

    work = Path(tempfile.mkdtemp(prefix="bpinspect-shot-"))
    # The reference: the same net, inputs and seed, with its weights changed and saved.
    weights = work / "perturbed.caffemodel"
    from bpinspect.session.options import session_from_options

    session = session_from_options(options("lrn_pool.prototxt", top_diff=["ip=onehot:3"]))
    weight = session.net.params["ip"][0]
    weight.data = weight.data * np.float32(1.01)
    session.net.save(str(weights))
    with contextlib.redirect_stdout(io.StringIO()):  # the dump's table: not for here
        cli_main(["dump", str(ROOT / "nets" / "lrn_pool.prototxt"), "--weights",
                  str(weights), "--top-diff", "ip=onehot:3", "--out", str(work / "dump")])
    return options("lrn_pool.prototxt", top_diff=["ip=onehot:3"],
                   compare=str(work / "dump"), compare_rtol=None)


async def compare(pilot: Pilot) -> None:
    await press(pilot, "c")
    await select(pilot, "pool2")


async def console(pilot: Pilot) -> None:
    """! on CaffeNet after the pass: a few questions of the live blobs."""
    await press(pilot, "c")
    await select(pilot, "conv5")
    await press(pilot, "exclamation_mark")
    for line in ("d = diff('conv5'); d.shape, float(abs(d).max())",
                 "np.count_nonzero(blob('conv5') > 0) / blob('conv5').size",
                 "{n: float(abs(diff(n)).max()) for n in ('conv1', 'conv3', 'fc6', 'fc8')}",
                 "blob('nope')"):
        await press(pilot, *line, "enter")


async def gradcheck(pilot: Pilot) -> None:
    """g on conv1 once the pass has run: analytic vs numeric per coordinate, for its
    bottom and both params."""
    await press(pilot, "c")
    await select(pilot, "conv1")
    await press(pilot, "g")


async def cost(pilot: Pilot) -> None:
    """CaffeNet after a whole pass, the schedule zoomed: each layer's last forward and
    backward time and the memory of its tops and params, as ``caffe time`` counts."""
    await press(pilot, "c")
    await select(pilot, "conv2")
    await press(pilot, "m")


Scenario = Callable[[Pilot], Awaitable[None]]
SHOTS: dict[str, tuple[argparse.Namespace | Callable[[], BpinspectApp], Scenario]] = {
    "main": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), main_screen),
    "lrn": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), lrn),
    "pooling": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), pooling),
    "concat": (options("concat.prototxt"), concat),
    "saliency": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), saliency),
    "help": (options("lrn_pool.prototxt", top_diff=["ip=onehot:3"]), help_screen),
    "training": (digits_training, training),
    "batch": (digits_training, batch),
    "units": (digits_too_high, units),
    "depth": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), depth),
    "gates": (options("lstm_sequence.prototxt", top_diff=["scores=ones"],
                      input=[f"data={ROOT / 'nets' / 'lstm_data.npy'}",
                             f"cont={ROOT / 'nets' / 'lstm_cont.npy'}"]), gates),
    "compare": (compare_dump, compare),
    "console": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), console),
    "gradcheck": (options("lrn_pool.prototxt", top_diff=["ip=onehot:3"]), gradcheck),
    "cost": (options("caffenet.prototxt", top_diff=["fc8=onehot:281"]), cost),
}
TIMED = {"cost"}  # shows real times: differs every time it is made


async def shoot(name: str) -> Path:
    opts, scenario = SHOTS[name]
    made = opts() if callable(opts) else opts
    app = made if isinstance(made, BpinspectApp) else BpinspectApp(made)
    app.show_timings = name in TIMED
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await scenario(pilot)
        app.clear_notifications()
        await pilot.pause()
        path = app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    return Path(path)


def main(argv: list[str]) -> int:
    names = argv or list(SHOTS)
    unknown = [n for n in names if n not in SHOTS]
    if unknown:
        print(f"make_screenshots: unknown {', '.join(unknown)} (choose from "
              f"{', '.join(SHOTS)})", file=sys.stderr)
        return 2
    for name in names:
        print(asyncio.run(shoot(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
