"""Numbers, shapes and statistics rows as they read on screen."""

from __future__ import annotations

import math

from bpinspect.session.stats import BlobStats
from bpinspect.tui.formatting import STAT_COLUMNS, fmt_num, fmt_percent, fmt_shape, stats_cells


def _stats(**changes: object) -> BlobStats:
    base = dict(shape=(2, 3), dtype="float32", count=6, min=-1.5, max=2.25, mean=0.125,
                std=1.0, l2=3.5, max_abs=2.25, frac_zero=0.5, nan=0, inf=0)
    base.update(changes)
    return BlobStats(**base)  # type: ignore[arg-type]


def test_numbers_keep_four_significant_digits_in_ten_characters() -> None:
    assert fmt_num(0.0) == "0"
    assert fmt_num(237.84) == "237.8"
    assert fmt_num(-0.00021341) == "-0.0002134"
    assert fmt_num(-1.2346e-12) == "-1.235e-12"
    assert fmt_num(-1.2345e-120) == "-1.23e-120"  # 11 characters at 4 digits: 3 then
    assert fmt_num(123456789.0) == "1.235e+08"
    assert fmt_num(math.nan) == "nan"
    assert fmt_num(-math.inf) == "-inf"
    assert fmt_num(None) == ""
    for v in (-1.234567e-300, 9.87654e300, -0.000123456, 1e-5):
        assert len(fmt_num(v)) <= 10


def test_shapes_and_percentages() -> None:
    assert fmt_shape((1, 96, 55, 55)) == "1×96×55×55"
    assert fmt_shape(()) == "scalar"
    assert fmt_percent(0.0) == "0%"
    assert fmt_percent(0.0004) == "<0.1%"
    assert fmt_percent(0.8459) == "84.6%"


def test_stats_row_has_a_cell_per_column_and_flags_nonfinite() -> None:
    cells = stats_cells(_stats())
    assert len(cells) == len(STAT_COLUMNS)
    assert [c.plain for c in cells] == ["-1.5", "2.25", "0.125", "1", "3.5", "50.0%", "0/0"]
    assert not cells[-1].style
    bad = stats_cells(_stats(nan=3, inf=1), nonfinite_style="bold red")
    assert bad[-1].plain == "3/1"
    assert str(bad[-1].style) == "bold red"
    assert [c.plain for c in stats_cells(None)] == [""] * len(STAT_COLUMNS)
