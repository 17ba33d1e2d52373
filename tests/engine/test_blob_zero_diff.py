"""Blob.zero_diff: the zeros a reader sees, and the accumulator that skips writing them."""

from __future__ import annotations

import numpy as np

from bpinspect.engine.blob import Blob


def test_a_zeroed_diff_reads_as_zeros_in_the_same_array() -> None:
    blob = Blob("w", (2, 3))
    held = blob.diff
    held[...] = 5
    blob.zero_diff()
    assert blob.diff is held
    np.testing.assert_array_equal(blob.diff, 0)


def test_the_accumulator_is_told_the_values_stand_for_zeros_once() -> None:
    blob = Blob("w", (2, 3))
    blob.diff[...] = 5
    blob.zero_diff()
    array, zero = blob.diff_to_accumulate()
    assert zero
    array[...] = 1  # 0 + gradient, into every element
    again, zero_again = blob.diff_to_accumulate()
    assert again is array and not zero_again
    np.testing.assert_array_equal(blob.diff, 1)


def test_assigning_or_zeroing_at_once_leaves_nothing_pending() -> None:
    blob = Blob("w", (2,))
    blob.zero_diff()
    blob.diff = np.array([3.0, 4.0], np.float32)
    np.testing.assert_array_equal(blob.diff, [3, 4])
    held = blob.diff
    blob.zero_diff(at_once=True)
    np.testing.assert_array_equal(held, 0)
    assert not blob.diff_to_accumulate()[1]
