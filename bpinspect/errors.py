"""The one exception type that reaches the user.

Every error caused by the user's input (a file, a layer, a blob, a spec)
is raised as a BpinspectError whose message is one line naming the culprit.
The CLI prints it and exits with code 2; the TUI shows it in a notification.
Anything else escaping is a bug in bpinspect.
"""

from __future__ import annotations

EXIT_USAGE = 2


class BpinspectError(Exception):
    """A user-facing error: one line, naming the file, line, layer or blob."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))
