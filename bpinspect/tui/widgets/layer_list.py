"""The schedule as a list of layers: what ran, what is next, breakpoints, no-backward layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from bpinspect.tui.view_data import LayerRow

LEGEND = "✓ done  · to do  – no backward  ● break  ▶ next"


class LayerList(OptionList):
    """One line per layer: ``▶→ ✓ · ● conv1 Convolution``.

    Columns: the next step (▶→ forward, ▶← backward), forward done, backward
    done (a dim – when the layer needs no backward; the reason shows in the blob
    panel), the breakpoint (● both directions, ●→ forward only, ●← backward only),
    the layer name and its type.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = OptionList.COMPONENT_CLASSES | {
        "layer-list--current",
        "layer-list--done",
        "layer-list--pending",
        "layer-list--no-backward",
        "layer-list--breakpoint",
        "layer-list--type",
    }
    """
    | Class | Description |
    | :- | :- |
    | `layer-list--current` | The ▶ marker of the next step. |
    | `layer-list--done` | ✓ of a step that ran. |
    | `layer-list--pending` | · of a step still to run. |
    | `layer-list--no-backward` | – of a layer that needs no backward. |
    | `layer-list--breakpoint` | The ● of a breakpoint. |
    | `layer-list--type` | The layer type. |
    """

    DEFAULT_CSS = """
    LayerList {
        height: 1fr;
    }
    LayerList > .layer-list--current { color: $accent; text-style: bold; }
    LayerList > .layer-list--done { color: $success; }
    LayerList > .layer-list--pending { color: $text-muted; }
    LayerList > .layer-list--no-backward { color: $text-disabled; }
    LayerList > .layer-list--breakpoint { color: $error; text-style: bold; }
    LayerList > .layer-list--type { color: $text-muted; }
    """

    @dataclass
    class LayerHighlighted(Message):
        """The user moved the highlight to another layer."""

        layer_list: LayerList
        layer: str

        @property
        def control(self) -> LayerList:
            return self.layer_list

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows: tuple[LayerRow, ...] = ()
        self._name_width = 12
        self._moved_to: str | None = None  # a highlight moved by code, not by the user

    @property
    def rows(self) -> tuple[LayerRow, ...]:
        return self._rows

    @property
    def highlighted_layer(self) -> str | None:
        if self.highlighted is None or not self._rows:
            return None
        return self._rows[self.highlighted].name

    def prompt(self, row: LayerRow) -> Text:
        style = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="ellipsis")
        if row.current == "forward":
            text.append("▶→", style=style("layer-list--current"))
        elif row.current == "backward":
            text.append("▶←", style=style("layer-list--current"))
        else:
            text.append("  ")
        text.append(" ")
        text.append("✓" if row.forward_done else "·",
                    style=style("layer-list--done" if row.forward_done else "layer-list--pending"))
        if row.backward_skipped:
            text.append("–", style=style("layer-list--no-backward"))
        else:
            text.append("✓" if row.backward_done else "·", style=style(
                "layer-list--done" if row.backward_done else "layer-list--pending"))
        mark = {"both": "● ", "forward": "●→", "backward": "●←"}.get(row.breakpoint or "", "  ")
        text.append(" " + mark + " ", style=style("layer-list--breakpoint"))
        text.append(row.name.ljust(self._name_width))
        text.append(" " + row.type, style=style("layer-list--type"))
        return text

    def update_rows(self, rows: Sequence[LayerRow]) -> None:
        """Show ``rows``; only the lines that changed are redrawn."""
        rows = tuple(rows)
        same_layers = [r.name for r in rows] == [r.name for r in self._rows]
        if not same_layers:
            self._name_width = min(max((len(r.name) for r in rows), default=8), 24)
            highlighted = self.highlighted_layer
            self._rows = rows
            with self.prevent(OptionList.OptionHighlighted):
                self.set_options(Option(self.prompt(r), id=r.name) for r in rows)
            if highlighted is not None:
                self.select_layer(highlighted)
            return
        old = self._rows
        self._rows = rows
        for i, (a, b) in enumerate(zip(old, rows, strict=True)):
            if a != b:
                self.replace_option_prompt_at_index(i, self.prompt(b))

    def select_layer(self, layer: str) -> None:
        """Move the highlight to ``layer`` without announcing it as the user's choice."""
        for i, r in enumerate(self._rows):
            if r.name == layer:
                if self.highlighted != i:
                    self._moved_to = layer
                    self.highlighted = i
                return

    def _on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id == self._moved_to:
            self._moved_to = None
            return
        self._moved_to = None
        if event.option.id is not None:
            self.post_message(self.LayerHighlighted(self, event.option.id))
