"""g: the numerical gradient check of the selected layer in a modal screen."""

from __future__ import annotations

import threading

from bpinspect.session.netcheck import check_layer_in_net
from bpinspect.tui.formatting import fmt_num
from bpinspect.tui.screens.gradcheck import GradCheckScreen

from .conftest import make_app
from .test_app import select_layer, settle, shown


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


async def test_the_modal_lists_every_sampled_coordinate_and_marks_failures(
        monkeypatch) -> None:
    from bpinspect.layers.registry import layer_class

    lrn = layer_class("LRN")
    real = lrn.backward

    def ten_percent_off(self, top, propagate_down, bottom):
        real(self, top, propagate_down, bottom)
        bottom[0].diff = bottom[0].diff * 1.1

    monkeypatch.setattr(lrn, "backward", ten_percent_off)
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await select_layer(pilot, "norm1")
        await pilot.press("g")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GradCheckScreen)
        (r,) = screen.check.results
        assert r.checked == len(r.coords) >= 4 and not r.passed
        lines = [line for line in shown(screen.query_one("#gradcheck-coords-table")).splitlines()
                 if line.strip()][1:]  # under the heading
        assert len(lines) == r.checked
        for line, coord, a, n in zip(lines, r.coords, r.analytic, r.numeric, strict=True):
            assert "(" + ", ".join(map(str, coord)) + ")" in line
            assert fmt_num(a) in line and fmt_num(n) in line
            # 10 % off is a failure wherever the gradient is not tiny
            failed = abs(a - n) / max(abs(a), abs(n), 1.0) > 1e-4
            assert ("FAIL" in line) == failed
        assert any("FAIL" in line for line in lines)
        assert "FAILED" in str(screen.query_one("#gradcheck-verdict").render())


async def test_escape_cancels_a_check_between_coordinates(monkeypatch) -> None:
    from bpinspect.layers.registry import layer_class

    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await select_layer(pilot, "norm1")
        # From now on only the check's own LRN runs forward: its first perturbed
        # forward waits until the test has pressed escape.
        lrn = layer_class("LRN")
        real = lrn.forward
        calls, started, released = [], threading.Event(), threading.Event()

        def held(self, bottom, top):
            calls.append(1)
            if len(calls) == 2:
                started.set()
                released.wait(10)
            real(self, bottom, top)

        monkeypatch.setattr(lrn, "forward", held)
        await pilot.press("g")
        for _ in range(500):
            if started.is_set():
                break
            await pilot.pause(0.01)
        assert started.is_set()
        await pilot.press("escape")
        released.set()
        await settle(pilot)
        assert not isinstance(app.screen, GradCheckScreen)
        # The coordinate under way is finished (its two forwards), then the check stops.
        assert "gradient check of norm1 cancelled after 1 coordinate" in \
            app.main_screen.status.text
        assert len(calls) == 3
        monkeypatch.setattr(lrn, "forward", real)
        await pilot.press("g")  # and the next check runs to its end
        await settle(pilot)
        assert isinstance(app.screen, GradCheckScreen) and app.screen.check.passed
