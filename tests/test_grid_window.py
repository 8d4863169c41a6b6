"""The fixed-millimetre in-plane window (models.grid_window)."""

from __future__ import annotations

import numpy as np
import pytest

from models.grid_window import (
    PAD_HU,
    apply_window,
    plan_window,
    unwindow_sector,
    window_sector,
    window_volume,
)
from napari_heartbox.grid import Grid
from napari_heartbox.sector import Sector
from napari_heartbox.volume import CTVolume


def _volume(shape=(6, 300, 420), spacing=(2.0, 0.7, 0.7), origin=(-100.0, -150.0, -30.0)):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, size=shape).astype(np.int16)
    return CTVolume(hu, Grid.axis_aligned(shape, spacing, origin_lps=origin))


@pytest.mark.parametrize(('spacing', 'k'), [(0.564453125, 11), (0.7, 9), (0.98, 6), (1.4, 4), (8.0, 1)])
def test_each_axis_gets_round_cell_over_spacing_pixels_per_cell(spacing, k):
    w = plan_window((512, 512), (spacing, spacing), 6.0)
    assert (w.ky, w.kx) == (k, k)
    assert w.shape == (64 * k, 64 * k)
    # centred on the slice to within half a cell
    assert abs((w.y0 + w.shape[0] / 2) - 256) <= k / 2 + 0.5


def test_window_pads_with_air_and_keeps_every_voxel_in_place():
    vol = _volume()
    wv, w = window_volume(vol, 6.0)
    assert wv.shape[1:] == w.shape and w.ky == 9
    assert w.y0 < 0 and w.x0 < 0  # 300 and 420 pixels are less than 576: padded on both sides
    # every original voxel sits at its own patient position in the window
    for zyx in [(0, 0, 0), (3, 123, 77), (5, 299, 419)]:
        z, y, x = zyx
        assert wv.hu[z, y - w.y0, x - w.x0] == vol.hu[z, y, x]
        np.testing.assert_allclose(wv.grid.index_to_lps((z, y - w.y0, x - w.x0)), vol.grid.index_to_lps(zyx))
    assert wv.hu[:, : -w.y0].max() == PAD_HU and wv.hu[:, :, : -w.x0].max() == PAD_HU


def test_a_larger_slice_is_cropped():
    a = np.arange(2 * 700 * 700, dtype=np.int32).reshape(2, 700, 700)
    w = plan_window(a.shape[1:], (1.0, 1.0), 6.0)  # k = 6: 384 pixels
    out = apply_window(a, w, -1)
    assert out.shape == (2, 384, 384) and w.y0 > 0
    np.testing.assert_array_equal(out, a[:, w.y0 : w.y0 + 384, w.x0 : w.x0 + 384])


def test_a_crop_of_a_scan_gets_the_same_cells_where_they_overlap():
    """Windows start on a patient-fixed lattice: a crop by whole pixels (same
    spacing) is cut into cells whose edges are the full scan's cell edges."""
    vol = _volume(shape=(4, 512, 512), spacing=(2.0, 0.78, 0.78), origin=(-199.3, -180.0, -40.0))
    full, wf = window_volume(vol, 6.0)
    for y0, x0 in [(37, 101), (120, 5), (0, 250)]:
        crop = vol.crop(Sector(vol.grid, z=(0, 4), y=(y0, y0 + 260), x=(x0, x0 + 231)))
        cw, wc = window_volume(crop, 6.0)
        assert (wc.ky, wc.kx) == (wf.ky, wf.kx)
        # the patient offset between the two windows' first pixels is whole cells
        d = cw.grid.index_to_lps((0, 0, 0)) - full.grid.index_to_lps((0, 0, 0))
        cell = np.array([wf.kx * 0.78, wf.ky * 0.78])
        ratio = d[:2] / cell
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-6)


def test_a_sector_on_the_window_maps_back_to_the_same_patient_box():
    vol = _volume()
    wv, w = window_volume(vol, 6.0)
    inside = Sector(wv.grid, z=(1, 5), y=(-w.y0 + 40, -w.y0 + 200), x=(-w.x0 + 10, -w.x0 + 300), confidence=0.8)
    back = unwindow_sector(inside, vol.grid, w)
    assert back.grid == vol.grid and back.confidence == 0.8
    assert back.ranges == ((1, 5), (40, 200), (10, 300))
    for a, b in zip(back.patient_mm(), inside.patient_mm(), strict=True):
        np.testing.assert_allclose(a, b)
    # a box reaching into the padding is clipped to the slice
    wide = Sector(wv.grid, z=(0, 6), y=(0, wv.shape[1]), x=(5, wv.shape[2]))
    assert unwindow_sector(wide, vol.grid, w).ranges == ((0, 6), (0, 300), (0, 420))
    # and the other way: a sector of the scan, on the window's grid, and back
    there = window_sector(back, wv.grid, w)
    assert there.ranges == inside.ranges and there.grid == wv.grid
    assert unwindow_sector(there, vol.grid, w).ranges == back.ranges
    none = Sector.not_found(wv.grid)
    assert not unwindow_sector(none, vol.grid, w).found
