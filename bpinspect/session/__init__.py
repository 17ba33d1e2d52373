"""The debugger session (no UI in it), its helpers, and the gradient checks."""

from __future__ import annotations

__all__ = ["Session", "session_from_options"]


def __getattr__(name: str):  # lazy: the gradient checker must not pull in the session
    if name == "Session":
        from bpinspect.session.session import Session

        return Session
    if name == "session_from_options":
        from bpinspect.session.options import session_from_options

        return session_from_options
    raise AttributeError(name)
