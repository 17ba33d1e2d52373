"""``bpinspect NET --compare DUMP``: the blob table marks each blob's agreement with a
dump (✓ / ≠ with the relative difference; nothing while pending)."""

from __future__ import annotations

import numpy as np

from bpinspect.session.dump import write_final
from bpinspect.tui.widgets.blob_table import BlobTable

from .conftest import make_app, make_session
from .test_app import select_layer, settle

SIZE = (160, 50)


def perturbed_dump(tmp_path):
    """A dump of lrn_pool (ip=onehot:3) after forward and backward, with norm1's data
    changed at one position by 1% of its largest value; returns (dir, rel diff)."""
    session = make_session("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    session.continue_()
    out = tmp_path / "dump"
    write_final(session, out)
    path = out / "norm1.data.npy"
    a = np.load(path)
    b = a.copy()
    big = float(np.abs(a).max())
    b.flat[5] += 0.01 * big
    np.save(path, b)
    return out, 0.01 * big / big


def lines_of(table: BlobTable, blob: str) -> dict[str, str]:
    """The head, data and diff lines of ``blob`` in the table."""
    text = table.render_lines_text()[1:]
    for i, line in enumerate(text):
        if line.split()[1:2] == [blob] and i + 2 < len(text):
            return {"head": line, "data": text[i + 1], "diff": text[i + 2]}
    raise AssertionError(f"{blob} not in the table")


async def test_compare_marks_the_perturbed_blob(tmp_path) -> None:
    dump, rel = perturbed_dump(tmp_path)
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"], compare=str(dump),
                   compare_rtol=1e-4)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.main_screen.query_one(BlobTable)
        assert "vs dump" in table.render_lines_text()[0]
        await select_layer(pilot, "norm1")
        before = lines_of(table, "norm1")
        assert "✓" not in before["data"] and "≠" not in before["data"]  # pending
        await pilot.press("c")  # forward and backward
        await settle(pilot)
        await select_layer(pilot, "norm1")
        norm1 = lines_of(table, "norm1")
        pool1 = lines_of(table, "pool1")
        assert f"≠ {rel:.1e}" in norm1["data"]
        assert "✓" in norm1["diff"]  # the diffs were not perturbed
        assert "✓" in pool1["data"] and "✓" in pool1["diff"]
        await select_layer(pilot, "conv1")
        conv1 = lines_of(table, "conv1")
        assert "✓" in conv1["data"] and "≠" not in "".join(conv1.values())


async def test_compare_rtol_lets_the_difference_pass(tmp_path) -> None:
    dump, rel = perturbed_dump(tmp_path)
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"], compare=str(dump),
                   compare_rtol=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await select_layer(pilot, "norm1")
        norm1 = lines_of(app.main_screen.query_one(BlobTable), "norm1")
        assert f"✓ {rel:.1e}" in norm1["data"]


async def test_without_compare_there_is_no_column() -> None:
    app = make_app("lrn_pool.prototxt", top_diff=["ip=onehot:3"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "vs dump" not in app.main_screen.query_one(BlobTable).render_lines_text()[0]


def test_a_bad_dump_is_a_one_line_error(tmp_path, capsys) -> None:
    from bpinspect.cli import main

    from .conftest import NETS

    net = str(NETS / "lrn_pool.prototxt")
    assert main([net, "--compare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bpinspect: --compare ") and "no such directory" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main([net, "--compare", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no .npy files" in err and len(err.strip().splitlines()) == 1


def test_the_column_text() -> None:
    from bpinspect.session.compare import AGREE, DIFFER, ONLY_A, PENDING, SHAPE
    from bpinspect.tui.view_data import Agreement
    from bpinspect.tui.widgets.blob_table import vs_text

    assert vs_text(None) == ""
    assert vs_text(Agreement(PENDING, None)) == ""
    assert vs_text(Agreement(AGREE, 0.0)) == "✓ 0"
    assert vs_text(Agreement(AGREE, 3.14e-7)) == "✓ 3.1e-07"
    assert vs_text(Agreement(DIFFER, 0.021)) == "≠ 2.1e-02"
    assert vs_text(Agreement(SHAPE, None)) == "≠ shape"
    assert vs_text(Agreement(ONLY_A, None)) == "not in dump"
