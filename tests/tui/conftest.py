"""Sessions and apps over the demo nets in nets/ (seeded, CPU, deterministic)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

NETS = Path(__file__).resolve().parents[2] / "nets"


def make_options(net: str, **changes: object) -> argparse.Namespace:
    """The Namespace bpinspect.cli builds for ``bpinspect NET``, with ``changes``."""
    options = dict(net=str(NETS / net), weights=None, input=[], mean=None, top_diff=[],
                   phase="test", device="cpu", seed=0, breaks=[], export_dir=None)
    options.update(changes)
    return argparse.Namespace(**options)


def make_session(net: str, **changes: object):
    from bpinspect.session.options import session_from_options

    return session_from_options(make_options(net, **changes))


@pytest.fixture
def lrn_pool_session():
    """conv1 -> relu1 (in place) -> pool1 (MAX) -> norm1 (LRN) -> pool2 (AVE) -> ip,
    with ip=onehot:3 injected."""
    return make_session("lrn_pool.prototxt", top_diff=["ip=onehot:3"])


def make_app(net: str, **changes: object):
    """The app for ``bpinspect NET`` with ``changes`` to the options; animations off (a
    sliding tab underline would only make the Pilot wait)."""
    from bpinspect.tui.app import BpinspectApp

    app = BpinspectApp(make_options(net, **changes))
    app.animation_level = "none"
    return app


@pytest.fixture(autouse=True)
def _plain_terminal_environment(monkeypatch) -> None:
    """Snapshots compare colours: a NO_COLOR or FORCE_COLOR in the caller's shell
    must not change what the app draws."""
    for name in ("NO_COLOR", "FORCE_COLOR", "TEXTUAL_THEME", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)
