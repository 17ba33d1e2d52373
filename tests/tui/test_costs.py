"""Cost per layer in the schedule: each layer's last forward and backward time and the
memory of its tops and params, updated as steps run; columns hide when narrow."""

from __future__ import annotations

from bpinspect.tui.formatting import fmt_bytes_short, fmt_ms
from bpinspect.tui.widgets.layer_list import LayerList

from .conftest import make_app
from .test_app import settle, shown


def memory_by_numpy(session, layer: str) -> int:
    """Data + diff of the layer's tops (not in place) and of its params, counted here."""
    info = session.layer_info(layer)
    net = session.net
    total = 0
    for t in info.tops:
        if t not in info.bottoms:
            total += 2 * net.blobs[t].data.nbytes
    for p in net.params.get(layer, []):
        total += 2 * p.data.nbytes
    return total


def line_of(layers: LayerList, name: str) -> str:
    for line in shown(layers).splitlines():
        if line[10:].split()[:1] == [name]:
            return line
    raise AssertionError(f"{name} not shown")


async def test_times_and_memory_follow_the_steps() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        session = app.session
        layers = app.main_screen.layer_list
        heading = str(app.main_screen.query_one("#layers-heading").render())
        assert heading.split()[-3:] == ["fwd", "bwd", "mem"]
        rows = {r.name: r for r in layers.rows}
        for name in ("conv1", "pool1", "norm1", "ip"):
            assert rows[name].memory_bytes == memory_by_numpy(session, name)
            assert rows[name].forward_ms is None and rows[name].backward_ms is None
        assert rows["relu1"].memory_bytes == 0  # in place: its top is conv1's blob
        assert line_of(layers, "conv1").split()[-3:] == [
            "·", "·", fmt_bytes_short(memory_by_numpy(session, "conv1"))]
        layers.focus()
        await pilot.press("n", "n")  # data, conv1 forward
        await settle(pilot)
        rows = {r.name: r for r in layers.rows}
        meter = app.cost_meter
        assert rows["conv1"].forward_ms == meter.cost("conv1").forward_ms is not None
        assert rows["conv1"].backward_ms is None and rows["pool1"].forward_ms is None
        assert fmt_ms(rows["conv1"].forward_ms) in line_of(layers, "conv1")
        await pilot.press("c")  # the rest of the pass
        await settle(pilot)
        rows = {r.name: r for r in layers.rows}
        assert all(r.forward_ms is not None for r in rows.values())
        assert rows["norm1"].backward_ms == meter.cost("norm1").backward_ms is not None
        assert line_of(layers, "data").split()[-2] == "–"  # needs no backward
        first = rows["ip"].forward_ms
        await pilot.press("r", "n", "n", "n", "n", "n", "n", "n")  # restart, ip again
        await settle(pilot)
        assert layers.rows[-1].forward_ms == meter.cost("ip").forward_ms != first


async def test_narrow_list_hides_the_memory_column_first() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=(100, 28)) as pilot:
        await settle(pilot)
        layers = app.main_screen.layer_list
        width = layers.scrollable_content_region.width
        type_cells, columns = layers.columns(width)
        assert columns == 2 and type_cells == 0
        heading = str(app.main_screen.query_one("#layers-heading").render())
        assert heading.split()[-2:] == ["fwd", "bwd"] and "mem" not in heading
        assert all(len(line.rstrip()) <= width for line in shown(layers).splitlines())
        assert "Convolution" not in shown(layers)
