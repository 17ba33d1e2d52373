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
from textual.widgets import TabbedContent

from bpinspect.tui.app import BpinspectApp
from bpinspect.tui.view_data import TAB_CONCAT, TAB_LRN, TAB_SALIENCY

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


def digits_training() -> BpinspectApp:
    """DigitsLeNet's solver over its LMDB, as ``bpinspect --solver
    nets/digits_solver.prototxt`` (from the repository root: the solver names its net
    from there, as Caffe's do)."""
    import os

    from bpinspect.engine.solver import get_solver
    from bpinspect.session.training import TrainingSession

    os.chdir(ROOT)
    return BpinspectApp(session=TrainingSession(get_solver("nets/digits_solver.prototxt")))


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
}


async def shoot(name: str) -> Path:
    opts, scenario = SHOTS[name]
    app = opts() if callable(opts) else BpinspectApp(opts)
    app.show_timings = False
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
