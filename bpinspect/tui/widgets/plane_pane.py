"""The common part of the views that show one plane of a blob: item and channel keys."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical

from bpinspect.tui.messages import PlaneSelected


class PlanePane(Vertical, can_focus=True):
    """A focusable view with ``[``/``]`` for the channel and ``{``/``}`` for the batch item."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "channel(-1)", "channel -", show=False,
                id="plane-channel-prev",
                tooltip="Show the previous channel"),
        Binding("right_square_bracket", "channel(1)", "channel +", show=False,
                id="plane-channel-next",
                tooltip="Show the next channel"),
        Binding("left_curly_bracket", "item(-1)", "item -", show=False, id="plane-item-prev",
                tooltip="Show the previous item of the batch"),
        Binding("right_curly_bracket", "item(1)", "item +", show=False, id="plane-item-next",
                tooltip="Show the next item of the batch"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | [ / ] | Previous / next channel. |
    | { / } | Previous / next item of the batch. |
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.item = 0
        """The batch item shown."""
        self.channel = 0
        """The channel shown."""
        self.items = 1
        """How many items the blob has (from the last view)."""
        self.channels = 1
        """How many channels the plane's blob has (1 where channels do not apply)."""

    def set_extent(self, items: int, channels: int) -> None:
        self.items = max(items, 1)
        self.channels = max(channels, 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "channel":
            return self.channels > 1
        if action == "item":
            return self.items > 1
        return True

    def action_channel(self, delta: int) -> None:
        channel = min(max(self.channel + delta, 0), self.channels - 1)
        if channel != self.channel:
            self.channel = channel
            self.post_message(PlaneSelected(self.item, self.channel))

    def action_item(self, delta: int) -> None:
        item = min(max(self.item + delta, 0), self.items - 1)
        if item != self.item:
            self.item = item
            self.post_message(PlaneSelected(self.item, self.channel))
