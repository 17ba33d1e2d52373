"""What a newcomer meets: a net with no loss and nothing injected says, before its
backward runs, that backward will carry zeros and how to inject."""

from __future__ import annotations

from .conftest import make_app
from .test_app import settle


async def test_no_loss_nothing_injected_says_backward_carries_zeros() -> None:
    app = make_app("lrn_pool.prototxt")  # no loss layer, no --top-diff
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        session = app.session
        assert not session.injections and not session.net.loss_weights
        app.main_screen.layer_list.focus()
        forward = sum(1 for s in session.schedule if s.direction == "forward")
        for _ in range(forward - 1):
            await pilot.press("n")
        await settle(pilot)
        assert "carry zeros" not in app.main_screen.status.text
        await pilot.press("n")  # the last forward: backward is next
        await settle(pilot)
        assert session.next_step.direction == "backward"
        status = app.main_screen.status.text
        assert "backward will carry zeros" in status and "onehot:281 at ip" in status


async def test_with_an_injection_there_is_no_hint() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        app.main_screen.layer_list.focus()
        session = app.session
        forward = sum(1 for s in session.schedule if s.direction == "forward")
        for _ in range(forward):
            await pilot.press("n")
        await settle(pilot)
        assert "carry zeros" not in app.main_screen.status.text


async def test_the_saliency_tab_says_so_too() -> None:
    from bpinspect.tui.view_data import TAB_SALIENCY
    from bpinspect.tui.widgets.saliency_pane import SaliencyPane

    for top_diff, hinted in (([], True), (["ip=onehot:3"], False)):
        app = make_app("lrn_pool.prototxt", top_diff=top_diff)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(pilot)
            await pilot.press("c")  # the whole pass: backward has reached the input
            await settle(pilot)
            app.main_screen.tabs.active = TAB_SALIENCY
            await settle(pilot)
            text = str(app.main_screen.query_one(SaliencyPane).query_one(
                "#saliency-info").render())
            assert ("no loss and nothing injected" in text) is hinted, text
            assert ("onehot:281 at ip" in text) is hinted
            assert ("saliency of data" in text) is not hinted
