"""The Qt-free box model: editing, clamping, undo/redo/reset, events."""

from __future__ import annotations

import sys

import pytest

from napari_heartbox.box_model import BoxModel, default_box
from napari_heartbox.grid import Grid
from napari_heartbox.sector import Sector


@pytest.fixture
def grid():
    return Grid.axis_aligned((40, 64, 80), (2.5, 0.7, 0.7), (-100.0, -50.0, 20.0))


@pytest.fixture
def proposal(grid):
    return Sector(
        grid, (10, 30), (20, 50), (30, 60), confidence=0.9, series_uid='1.2.3'
    )


def test_proposal_becomes_current_and_emits(grid, proposal):
    seen = []
    m = BoxModel(grid)
    m.changed.connect(seen.append)
    assert m.sector is None and not m.has_box
    m.set_proposal(proposal)
    assert m.sector == proposal and m.proposal == proposal
    assert seen == [proposal]
    assert not m.is_corrected and not m.can_undo


def test_set_face_moves_only_that_face_and_clamps(grid, proposal):
    m = BoxModel(grid, proposal)
    assert m.set_face(0, 1, 35)
    assert m.sector.ranges == ((10, 35), (20, 50), (30, 60))
    # the high face cannot go below start + 1, nor beyond the grid
    m.set_face(0, 1, 3)
    assert m.sector.z == (10, 11)
    m.set_face(2, 1, 500)
    assert m.sector.x == (30, 80)
    m.set_face(1, 0, -7)
    assert m.sector.y == (0, 50)
    m.set_face(1, 0, 60)  # low face cannot pass the high face
    assert m.sector.y == (49, 50)
    # metadata of the proposal is kept on edits
    assert m.sector.series_uid == '1.2.3'
    assert m.is_corrected


def test_set_range_and_nudge(grid, proposal):
    m = BoxModel(grid, proposal)
    m.set_range(1, 5, 5)  # empty → widened to one voxel
    assert m.sector.y == (5, 6)
    m.nudge(2, 0, -3)
    assert m.sector.x == (27, 60)
    m.nudge(2, 1, +2)
    assert m.sector.x == (27, 62)
    assert not m.set_range(2, 27, 62)  # no change → no undo step


def test_undo_redo_reset(grid, proposal):
    seen = []
    m = BoxModel(grid, proposal)
    m.changed.connect(seen.append)
    m.set_face(0, 0, 12)
    m.set_face(0, 1, 28)
    assert m.sector.z == (12, 28)
    assert m.undo() and m.sector.z == (12, 30)
    assert m.undo() and m.sector.z == (10, 30)
    assert not m.undo()
    assert m.redo() and m.sector.z == (12, 30)
    m.set_face(2, 0, 40)  # a new edit clears the redo stack
    assert not m.can_redo
    assert m.reset() and m.sector == proposal
    assert not m.is_corrected
    assert m.undo() and m.sector.x == (40, 60)  # reset is undoable
    assert len(seen) == 8  # 3 edits, 1 reset, 3 undos, 1 redo


def test_coalesced_edits_are_one_undo_step(grid, proposal):
    m = BoxModel(grid, proposal)
    for stop in range(31, 40):
        m.set_range(0, 10, stop, coalesce='slider-z')
    m.end_coalesce()
    m.set_range(0, 10, 20, coalesce='slider-z')
    assert m.sector.z == (10, 20)
    m.undo()
    assert m.sector.z == (10, 39)
    m.undo()
    assert m.sector.z == (10, 30)
    assert not m.can_undo


def test_no_heart_found_then_start_box(grid):
    m = BoxModel(grid, Sector.not_found(grid, confidence=0.02))
    assert not m.has_box
    with pytest.raises(ValueError, match='no heart box to edit'):
        m.nudge(0, 0, 1)
    assert m.start_box()
    assert m.sector == default_box(grid)
    z, y, x = m.sector.ranges
    assert z == (13, 27) and y[0] == 21 and x[0] == 26
    assert m.undo() and not m.has_box


def test_grid_mismatch_is_refused(grid, proposal):
    other = Grid.axis_aligned((10, 10, 10), (1, 1, 1))
    m = BoxModel(grid, proposal)
    with pytest.raises(ValueError, match='does not match'):
        m.set_sector(Sector(other, (0, 5), (0, 5), (0, 5)))


def test_disconnect(grid, proposal):
    seen = []
    m = BoxModel(grid, proposal)
    m.changed.connect(seen.append)
    m.changed.disconnect(seen.append)
    m.nudge(0, 0, 1)
    assert seen == []


def test_box_model_is_core_safe():
    # the model must never pull in Qt or napari
    import subprocess

    code = (
        'import sys, napari_heartbox.box_model; '
        'bad = [m for m in ("napari", "qtpy", "PyQt6", "superqt") if m in sys.modules]; '
        'print(bad); sys.exit(1 if bad else 0)'
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
