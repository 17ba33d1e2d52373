"""The header lines: which net, where it runs, which weights, where the pass is, and in
training which iteration, the loss and the batch."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from bpinspect.tui.formatting import fmt_num, foreground, forget_foreground
from bpinspect.tui.view_data import HeaderInfo, TrainingInfo

NO_WEIGHTS = "no --weights given"


class SessionHeader(Widget):
    """``CaffeNet · test · CPU (NumPy) · memory 480 MiB · weights ...`` (memory: what the
    net needs, as planned) over ``step 12 of 46 · forward ...``; a training session adds
    ``iteration 3 of 100 · SGD lr 0.01 · loss ... · data: ...``
    (the ``-training`` class makes room for it)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "session-header--name",
        "session-header--label",
        "session-header--seeded",
        "session-header--direction",
    }
    """
    | Class | Description |
    | :- | :- |
    | `session-header--name` | The net's name. |
    | `session-header--label` | The small labels (phase, device, ...). |
    | `session-header--seeded` | Weights that are a seeded filler, not a file. |
    | `session-header--direction` | forward / backward / done. |
    """

    DEFAULT_CSS = """
    SessionHeader {
        height: 2;
        padding: 0 1;
        background: $panel;
    }
    SessionHeader.-training { height: 3; }
    SessionHeader > .session-header--name { text-style: bold; color: $accent; }
    SessionHeader > .session-header--label { color: $text-muted; }
    SessionHeader > .session-header--seeded { color: $warning; }
    SessionHeader > .session-header--direction { text-style: bold; }
    """

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)

    info: reactive[HeaderInfo | None] = reactive(None)
    """What to show (None while the session loads)."""
    loading_net: reactive[str] = reactive("")
    """The net being loaded, shown until ``info`` arrives."""

    def watch_info(self, info: HeaderInfo | None) -> None:
        self.set_class(info is not None and info.training is not None, "-training")

    def render(self) -> RenderResult:
        style = partial(foreground, self)
        label = style("session-header--label")
        info = self.info
        if info is None:
            return Text.assemble(("bpinspect ", style("session-header--name")),
                                 (f"loading {self.loading_net}", label))
        top = Text(no_wrap=True, overflow="ellipsis")
        top.append(info.net or "(unnamed net)", style=style("session-header--name"))
        top.append("  phase ", style=label)
        top.append(info.phase)
        top.append("  device ", style=label)
        top.append(info.device)
        if info.memory:
            top.append("  memory ", style=label)
            top.append(info.memory)
        top.append("  weights ", style=label)
        seeded = NO_WEIGHTS in info.weights
        top.append(info.weights, style=style("session-header--seeded") if seeded else "")
        bottom = Text(no_wrap=True, overflow="ellipsis")
        bottom.append("step ", style=label)
        bottom.append(f"{info.cursor} of {info.total}")
        bottom.append("  ")
        bottom.append(info.direction, style=style("session-header--direction"))
        if info.next_label:
            bottom.append("  next ", style=label)
            bottom.append(info.next_label)
        if info.last_label:
            bottom.append("  last ", style=label)
            bottom.append(info.last_label)
        if info.injections:
            bottom.append("  top diff ", style=label)
            bottom.append(", ".join(info.injections))
        if info.training is None:
            return Group(top, bottom)
        return Group(top, bottom, self.training_text(info.training))

    def training_text(self, t: TrainingInfo) -> Text:
        """``iteration 3 of 100  pass 2 of 4  SGD lr 0.01  loss 2.3 (smoothed 2.29) at 2
        data: records 128–191 of 1500, LMDB ...``."""
        style = partial(foreground, self)
        label = style("session-header--label")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("iteration ", style=label)
        text.append(f"{t.iteration} of {t.max_iter}")
        if t.finished:
            text.append("  max_iter reached", style=style("session-header--direction"))
        if t.iter_size > 1:
            text.append("  pass ", style=label)
            text.append(f"{t.pass_index + 1} of {t.iter_size}")
        text.append("  solver ", style=label)
        text.append(t.solver_type)
        if t.rate is not None:
            text.append("  lr ", style=label)
            text.append(fmt_num(t.rate))
        text.append("  loss ", style=label)
        if t.loss is None:
            text.append("(no iteration finished yet)", style=label)
        else:
            text.append(fmt_num(t.loss))
            text.append(" smoothed ", style=label)
            text.append(fmt_num(t.smoothed_loss))
            text.append(f" (iteration {t.loss_iteration})", style=label)
        for batch in t.batches:
            text.append("  ")
            text.append(batch)
        return text
