"""A Python layer that raises: the app shows the line and the user's frames in its error
modal, and keeps running with the session where it was."""

from __future__ import annotations

import sys
import textwrap

from bpinspect.tui.screens.error import ErrorModal
from bpinspect.tui.screens.main import MainScreen

from .conftest import make_app
from .test_app import SIZE, settle

MODULE = '''
import caffe


class Picky(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        raise ValueError("picky refuses")
'''


async def test_a_raising_python_layer_is_shown_and_the_app_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "bpi_user_tui_picky.py").write_text(textwrap.dedent(MODULE))
    net = tmp_path / "net.prototxt"
    net.write_text(
        'force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
        'layer { name: "picky" type: "Python" bottom: "data" top: "out" '
        'python_param { module: "bpi_user_tui_picky" layer: "Picky" } }\n'
    )
    app = make_app(str(net))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.session is not None
            await pilot.press("n", "n")
            await settle(pilot)
            modal = app.screen
            assert isinstance(modal, ErrorModal)
            assert "layer 'picky'" in modal.message and "ValueError: picky refuses" in modal.message
            assert "bpi_user_tui_picky.py" in modal.details and "in forward" in modal.details
            assert "bpinspect/" not in modal.details
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            session = app.session
            assert session.last_step is not None and session.last_step.layer_name == "data"
            assert session.schedule[session.cursor].layer_name == "picky"
    finally:
        sys.modules.pop("bpi_user_tui_picky", None)
