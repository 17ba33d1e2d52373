"""The batch view: the data layer's images as thumbnails with their labels, checked
against the LMDB records read here with lmdb and Caffe's Datum, and against
hand-reduced pixels."""

from __future__ import annotations

import shutil
from pathlib import Path

import lmdb
import numpy as np
import pytest

from bpinspect.engine.solver import get_solver
from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2
from bpinspect.session.batch_view import batch_view, thumbnail
from bpinspect.session.training import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SOLVER = ROOT / "nets" / "digits_solver.prototxt"


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _records(path, count, tmp_path):
    # A copy: the session's reader holds the original open, and lmdb allows one
    # environment per file and process.
    copy = tmp_path / "copy_lmdb"
    shutil.copytree(path, copy)
    env = lmdb.open(str(copy), readonly=True, lock=False)
    out = []
    with env.begin() as txn:
        for _, value in zip(range(count), txn.cursor(), strict=False):
            datum = caffe_pb2.Datum.FromString(value[1])
            pixels = np.frombuffer(datum.data, np.uint8).reshape(
                datum.channels, datum.height, datum.width)
            out.append((pixels, datum.label))
    env.close()
    return out


def test_the_first_batch_shows_the_first_records_with_their_labels(tmp_path):
    session = TrainingSession(get_solver(str(SOLVER)))
    with pytest.raises(BpinspectError, match="has not read its batch in this pass yet"):
        batch_view(session)
    session.step()  # the data layer's forward
    view = batch_view(session, count=10)
    assert view.top == "data" and view.label_top == "label"
    assert view.shape[0] == 64 and view.shape[1] == 1
    assert view.reduced_by == 1 and view.channels == "grey"
    assert "records 0–63" in view.description
    records = _records(ROOT / "nets" / "digits_train_lmdb", 10, tmp_path)
    assert [img.item for img in view.images] == list(range(10))
    for img, (pixels, label) in zip(view.images, records, strict=True):
        assert img.label == str(label)
        p = pixels[0].astype(np.float64)
        grey = np.round((p - p.min()) / (p.max() - p.min()) * 255).astype(np.uint8)
        assert img.pixels.shape == (16, 16, 3)
        for c in range(3):
            np.testing.assert_array_equal(img.pixels[:, :, c], grey)


def test_paging_starts_at_the_item_asked_for_and_stops_at_the_batch_end():
    session = TrainingSession(get_solver(str(SOLVER)))
    session.step()
    view = batch_view(session, first=60, count=10)
    assert [img.item for img in view.images] == [60, 61, 62, 63]


def test_colour_images_are_bgr_reduced_by_block_means():
    image = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    image[0] *= -1  # blue goes down, red up: each channel has its own order
    out = thumbnail(image, block=2)
    assert out.shape == (2, 2, 3)
    # Block means by hand, channels reversed (BGR -> RGB), then one min..max stretch.
    means = np.empty((3, 2, 2))
    for c in range(3):
        for i in range(2):
            for j in range(2):
                means[c, i, j] = image[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean()
    rgb = means[::-1]
    expected = np.round((rgb - rgb.min()) / (rgb.max() - rgb.min()) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected.transpose(1, 2, 0))


def test_a_constant_image_is_mid_grey_and_non_finite_pixels_are_red():
    flat = thumbnail(np.full((1, 2, 2), 7.0))
    assert (flat == 128).all()
    image = np.zeros((1, 2, 2))
    image[0, 0, 1] = np.nan
    image[0, 1, 1] = 1.0
    out = thumbnail(image)
    assert tuple(out[0, 1]) == (255, 0, 0)
    assert tuple(out[1, 1]) == (255, 255, 255) and tuple(out[0, 0]) == (0, 0, 0)
