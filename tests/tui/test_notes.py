"""Start-up notes (seeded weights, a seeded input, a legacy net upgraded) go to the
notes line over the status line and to the notes screen (N), never to toasts that
would cover the help screen and the panes."""

from __future__ import annotations

from bpinspect.tui.screens.help import HelpScreen
from bpinspect.tui.screens.notes import NotesScreen
from bpinspect.tui.widgets.notes_line import NotesLine

from .conftest import make_app
from .test_app import settle, shown


async def test_start_up_notes_are_a_line_and_a_screen_not_toasts() -> None:
    app = make_app("lrn_pool.prototxt")  # no --weights, no --input: both are seeded
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        notes = list(app.session.notes)
        assert len(notes) >= 2, notes  # the filler and the seeded input
        assert not app._notifications, "a note became a toast"
        line = app.main_screen.query_one(NotesLine)
        text = shown(line)
        assert f"{len(notes)} notes (N reads them)" in text
        assert " ".join(notes[-1].split())[:40] in text  # the newest note, on one line
        await pilot.press("question_mark")  # the help screen is not covered by anything
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and not app._notifications
        await pilot.press("escape")
        await pilot.press("N")
        await pilot.pause()
        assert isinstance(app.screen, NotesScreen)
        listed = "\n".join(str(s.render()) for s in app.screen.query(".note"))
        for i, note in enumerate(notes, 1):
            assert f"{i}. {note}" in listed
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NotesScreen)


async def test_a_note_made_later_joins_the_line() -> None:
    app = make_app("lrn_pool.prototxt")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        before = len(app.session.notes)
        app.session._note("something happened while stepping")
        await pilot.press("n")
        await settle(pilot)
        text = shown(app.main_screen.query_one(NotesLine))
        assert f"{before + 1} notes" in text and "something happened while stepping" in text
        assert not app._notifications

