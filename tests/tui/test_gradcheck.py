"""g: the numerical gradient check of the selected layer in a modal screen."""

from __future__ import annotations

from bpinspect.session.netcheck import check_layer_in_net
from bpinspect.tui.screens.gradcheck import GradCheckScreen

from .conftest import make_app
from .test_app import select_layer, settle


async def test_g_checks_the_selected_layer_at_its_real_shapes() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await select_layer(pilot, "norm1")
        await pilot.press("g")  # before its forward: the bottoms are not there
        await settle(pilot)
        assert not isinstance(app.screen, GradCheckScreen)
        assert "run forward to it first" in app.main_screen.status.text
        await pilot.press("c")
        await settle(pilot)
        await select_layer(pilot, "norm1")
        await pilot.press("g")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GradCheckScreen)
        check = screen.check
        assert check.layer == "norm1" and [r.what for r in check.results] == ["bottom[0]"]
        assert check.passed and check.results[0].checked > 0
        # Numeric and analytic agree at the worst sampled coordinate, and the screen
        # shows what bpinspect check's function gives on the same bottoms and seed.
        r = check.results[0]
        assert abs(r.analytic_at_worst - r.numeric_at_worst) <= 1e-4 * max(
            1.0, abs(r.analytic_at_worst))
        again = check_layer_in_net(app.session.net, app.session.net.layer_names.index("norm1"),
                                   seed=app.session.seed)
        assert again.results == check.results
        verdict = str(screen.query_one("#gradcheck-verdict").render())
        assert verdict.startswith("passed: largest relative error")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, GradCheckScreen)
        assert "gradient check of norm1: passed" in app.main_screen.status.text
