"""m zooms the focused pane to the whole screen: the schedule too, not only as wide as
its column."""

from __future__ import annotations

import pytest

from .conftest import make_app
from .test_app import settle


@pytest.mark.parametrize("size", [(160, 50), (100, 28)])
async def test_m_zooms_the_schedule_to_the_full_width(size) -> None:
    app = make_app("lrn_pool.prototxt")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.main_screen
        left = screen.query_one("#left")
        assert left.region.width < size[0] // 2
        screen.layer_list.focus()
        await pilot.press("m")
        await pilot.pause()
        assert screen.maximized is left
        assert left.region.width >= size[0] - 2
        await pilot.press("m")
        await pilot.pause()
        assert screen.maximized is None and left.region.width < size[0] // 2
