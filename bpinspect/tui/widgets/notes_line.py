"""One line over the status line: how many notes the session made and the newest one.

The notes (a legacy input upgraded, a seeded filler, a seeded input, what a
training run dropped from its history) matter once and then only get in the
way: as toasts they covered the help screen and the gradient-flow pane for
their whole life. Here they take one line that never covers anything, and
``N`` opens them all (``NotesScreen``).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from bpinspect.tui.formatting import foreground, forget_foreground


class NotesLine(Widget):
    """``notes 3  newest: ... (N: all notes)``; not displayed while there are none."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"notes-line--label", "notes-line--key"}
    """
    | Class | Description |
    | :- | :- |
    | `notes-line--label` | The count and the hint. |
    | `notes-line--key` | The key that opens every note. |
    """

    DEFAULT_CSS = """
    NotesLine {
        height: 1;
        padding: 0 1;
        display: none;
        color: $text-warning;
    }
    NotesLine.-has-notes { display: block; }
    NotesLine > .notes-line--label { color: $text-muted; }
    NotesLine > .notes-line--key { text-style: bold; color: $text; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.notes: list[str] = []
        """Every note so far, oldest first."""

    def notify_style_update(self) -> None:
        super().notify_style_update()
        forget_foreground(self)

    def add(self, notes: list[str]) -> None:
        """Keep ``notes`` (the newest is shown)."""
        if not notes:
            return
        self.notes.extend(notes)
        self.add_class("-has-notes")
        self.refresh()

    def render(self) -> RenderResult:
        if not self.notes:
            return Text()
        label = foreground(self, "notes-line--label")
        count = len(self.notes)
        # The hint first: a long note is cut at the right edge, the way to read it is not.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{count} note{'s' if count > 1 else ''} (", style=label)
        text.append("N", style=foreground(self, "notes-line--key"))
        text.append(" reads them)  ", style=label)
        text.append(" ".join(self.notes[-1].split()))
        return text
