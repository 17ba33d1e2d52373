"""The one exception type that reaches the user.

Every error caused by the user's input (a file, a layer, a blob, a spec)
is raised as a BpinspectError whose message is one line naming the culprit.
The CLI prints it and exits with code 2; the TUI shows it in a notification.
A LayerCodeError (the user's Python layer raised) also carries the user's
traceback in ``details``: the CLI prints it under the line, the TUI shows
both in its error modal.
Anything else escaping is a bug in bpinspect.
"""

from __future__ import annotations

EXIT_USAGE = 2


class BpinspectError(Exception):
    """A user-facing error: one line, naming the file, line, layer or blob."""

    def __init__(self, message: str) -> None:
        # One line on any terminal: newlines become spaces, and the characters that a
        # terminal would take as a line break or a control sequence (from a corrupt
        # name in a file) are shown escaped.
        text = " ".join(message.split("\n"))
        if not text.isprintable():
            text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
        super().__init__(text)


class LayerCodeError(BpinspectError):
    """The user's own code (a Python layer) raised: a one-line message naming the
    layer, module and class, and ``details``, the traceback of the user's frames."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
        self.original: BaseException | None = None  # the exception the user's code raised


def error_details(exc: BaseException) -> str:
    """The lines to show under an error's message (a user traceback), or ''."""
    return str(getattr(exc, "details", "") or "")
