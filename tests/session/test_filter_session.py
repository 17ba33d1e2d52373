"""The debugger over a Filter, whose top shrinks in forward: the history records the
smaller arrays, steps back and forward again give the same arrays, the view of the
layer shows the filtered shapes; an HDF5Output is rewritten when its forward runs
again after a step back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bpinspect.backend import to_host
from bpinspect.session.session import Session
from bpinspect.tui.view_data import StatsCache, ViewRequest, layer_panel
from tests.engine.test_reshape_in_forward import FILTER_NET

NET = FILTER_NET  # the engine test's net: a Filter between two InnerProducts

SAVE = """
layer {{ name: "save" type: "HDF5Output" bottom: "fh" bottom: "flabel"
         hdf5_output_param {{ file_name: "{path}" }} }}
"""

DATA = np.random.default_rng(0).standard_normal((6, 3))
LABEL = np.array([0, 1, 2, 0, 1, 2.0])
SELECTOR = np.array([1, 0, 1, 1, 0, 0.0]).reshape(6, 1)  # items 0, 2, 3


@pytest.fixture
def session(make_net):
    net = make_net(NET, dtype=np.float64)
    return Session(net, inputs={"data": DATA, "label": LABEL, "sel": SELECTOR})


def every_array(s):
    """Each step's recorded arrays, on the host, by (step, blob, kind)."""
    return {(rec.step, rec.seed, key): to_host(a).copy()
            for rec in s.history for key, a in rec.arrays.items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


def test_the_filtered_blobs_are_recorded_at_their_smaller_shape(session):
    s = session
    s.continue_()
    filt = s.step_of("filt", "forward").index
    assert s.stats("fh", step=filt).shape == (3, 4)
    assert s.stats("flabel", step=filt).shape == (3,)
    np.testing.assert_array_equal(to_host(s.array("fh", step=filt)),
                                  to_host(s.array("h", step=filt))[[0, 2, 3]])
    assert s.stats("ip", step=s.step_of("ip", "forward").index).shape == (3, 3)
    back = s.step_of("filt", "backward").index
    h_diff = to_host(s.array("h", "diff", step=back))
    np.testing.assert_array_equal(h_diff[[0, 2, 3]],
                                  to_host(s.array("fh", "diff", step=back - 1)))
    assert not h_diff[[1, 4, 5]].any()


def test_step_back_over_the_filter_and_forward_again_gives_the_same_arrays(session):
    s = session
    s.continue_()
    first = every_array(s)
    s.goto(s.step_of("filt", "forward").index)  # back to before the Filter's forward
    assert s.next_step.layer_name == "filt" and s.next_step.direction == "forward"
    s.continue_()
    assert_same(every_array(s), first)
    while s.step_back() is not None:  # all the way back, then the whole pass again
        pass
    s.continue_()
    assert_same(every_array(s), first)


def test_another_selector_gives_other_shapes_and_still_steps_back(session):
    s = session
    s.continue_()
    s.set_input("sel", np.array([0, 1, 0, 0, 0, 0.0]).reshape(6, 1))
    s.continue_()
    filt = s.step_of("filt", "forward").index
    assert s.stats("fh", step=filt).shape == (1, 4)
    assert s.stats("ip", "diff", step=s.step_of("relu", "backward").index).shape == (1, 3)
    second = every_array(s)
    s.goto(filt)
    s.continue_()
    assert_same(every_array(s), second)


def test_the_layer_panel_shows_the_filtered_shapes(session):
    s = session
    s.continue_()
    panel = layer_panel(s, "filt", ViewRequest(layer="filt"), StatsCache())
    entries = {(e.role, e.name): e for e in panel.entries}
    assert entries[("bottom", "h")].data.shape == (6, 4)
    assert entries[("top", "fh")].data.shape == (3, 4) == entries[("top", "fh")].shape
    assert entries[("top", "fh")].diff.shape == (3, 4)
    assert entries[("top", "flabel")].data.shape == (3,)


def test_hdf5_output_is_rewritten_when_its_forward_runs_again(make_net, tmp_path):
    path = tmp_path / "kept.h5"
    net = make_net(NET + SAVE.format(path=path), dtype=np.float64)
    s = Session(net, inputs={"data": DATA, "label": LABEL, "sel": SELECTOR})
    s.run_to("save", "forward")
    with h5py.File(path, "r") as f:
        first = f["data"][()]
        assert first.shape == (3, 4, 1, 1) and f["label"][()].ravel().tolist() == [0, 2, 0]
    s.step_back()
    with h5py.File(path, "a") as f:  # what the undone forward wrote is replaced
        del f["data"]
    s.step()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][()], first)
    s.continue_()
    s.set_input("sel", np.ones((6, 1)))  # a restart: the pass runs again
    s.continue_()
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (6, 4, 1, 1)
        assert f["label"][()].ravel().tolist() == LABEL.tolist()


def test_the_gradient_check_of_a_filter_checks_its_blobs_not_its_selector(session):
    """g / bpinspect check on a Filter: the projections are drawn for the tops its
    forward made (3 of 6 items kept), and the selector, a step function, is left out."""
    from bpinspect.session.netcheck import check_layer_in_net

    s = session
    s.run_to("filt", "forward")
    s.step_back()  # its bottoms computed, its own forward not yet run
    net = s.net
    check = check_layer_in_net(net, net.layer_index("filt"), max_coords=12)
    assert check.passed and not check.note
    assert [r.what for r in check.results] == ["bottom[0]", "bottom[1]"]
    assert all(r.checked > 0 for r in check.results)
    # The kept items' gradient is the projection, the others' zero: a real check.
    assert check.max_rel_error < 1e-6
