"""Breakpoint bookkeeping and each condition on arrays with known contents."""

from __future__ import annotations

import numpy as np
import pytest

from bpinspect.errors import BpinspectError
from bpinspect.session.breakpoints import (
    BreakpointSet,
    LayerBreakpoint,
    MaxAbsAbove,
    NonFinite,
    ZeroDiff,
    make_condition,
)
from bpinspect.session.schedule import Step

FWD = Step(3, 1, "conv1", "Convolution", "forward", False, "")
BWD = Step(9, 1, "conv1", "Convolution", "backward", False, "")


def test_layer_breakpoints():
    bp = BreakpointSet(["data", "conv1", "relu1"])
    assert bp.toggle("conv1") is True
    assert bp.has("conv1", "forward") and bp.has("conv1", "backward") and bp.has("conv1", "both")
    assert bp.stops_before(FWD) and bp.stops_before(BWD)
    bp.remove("conv1", "backward")
    assert bp.layer_breakpoints() == [LayerBreakpoint("conv1", "forward")]
    assert not bp.stops_before(BWD)
    assert bp.toggle("conv1", "both") is True  # backward was unset: set both
    assert bp.toggle("conv1", "both") is False
    assert bp.layer_breakpoints() == []
    bp.add("relu1", "backward")
    bp.add("data")
    assert bp.layer_breakpoints() == [LayerBreakpoint("data", "both"),
                                      LayerBreakpoint("relu1", "backward")]
    skipped = Step(10, 0, "data", "Input", "backward", True, "no bottoms")
    assert not bp.stops_before(skipped)


def test_layer_breakpoint_errors():
    bp = BreakpointSet(["conv1"])
    with pytest.raises(BpinspectError, match="no layer named 'conv9'"):
        bp.add("conv9")
    with pytest.raises(BpinspectError, match="direction 'sideways'"):
        bp.toggle("conv1", "sideways")


def test_nonfinite_condition():
    c = NonFinite()
    assert c.match(np.ones(5, np.float32)) is None
    a = np.ones(5, np.float32)
    a[1] = np.nan
    a[3] = -np.inf
    assert c.match(a) == "1 NaN, 1 Inf"
    assert c.match(np.array([3e38, 3e38], np.float32)) is None  # finite, even if the sum is big


def test_max_abs_condition():
    c = MaxAbsAbove(2.0)
    assert c.match(np.array([1.0, -2.0], np.float32)) is None
    assert "max |x| = 2.5 > 2" in c.match(np.array([1.0, -2.5], np.float32))
    with pytest.raises(BpinspectError):
        make_condition("max_abs", None)
    with pytest.raises(BpinspectError):
        make_condition("sometimes")


def test_zero_diff_condition_checks_only_diffs():
    bp = BreakpointSet(["conv1"])
    bp.set_condition("zero_diff", True)
    zeros = np.zeros((2, 2), np.float32)
    assert bp.check(FWD, [("conv1", "data", zeros)]) == []
    hits = bp.check(BWD, [("data", "diff", zeros), ("conv1#0", "diff", np.ones(2))])
    assert [(h.kind, h.blob, h.what) for h in hits] == [("zero_diff", "data", "diff")]
    assert "dead gradient" in hits[0].message and "'conv1'" in hits[0].message
    assert ZeroDiff().match(np.array([0.0, 1e-30])) is None


def test_conditions_replace_by_kind_and_report_all_matches():
    bp = BreakpointSet(["conv1"])
    bp.set_condition("max_abs", True, 1.0)
    bp.set_condition("max_abs", True, 5.0)
    bp.set_condition("nonfinite", True)
    assert [c.kind for c in bp.conditions] == ["max_abs", "nonfinite"]
    assert bp.condition("max_abs") == MaxAbsAbove(5.0)
    a = np.array([10.0, np.nan], np.float32)
    hits = bp.check(FWD, [("conv1", "data", a)])
    assert {h.kind for h in hits} == {"nonfinite"}  # max(|x|) is NaN: not above the bound
    hits = bp.check(FWD, [("conv1", "data", np.array([10.0], np.float32))])
    assert [h.kind for h in hits] == ["max_abs"]
    bp.set_condition("max_abs", False)
    assert [c.kind for c in bp.conditions] == ["nonfinite"]
