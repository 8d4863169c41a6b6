"""The body's own in-plane window (models.body_window, round 17's experiment)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('scipy')

from models.body_window import (  # noqa: E402
    MARGIN_MM,
    OUT_PX,
    PAD_HU,
    BodyWindowModel,
    body_extent,
    body_window_volume,
    on_grid,
)
from napari_heartbox.grid import Grid  # noqa: E402
from napari_heartbox.sector import Sector  # noqa: E402
from napari_heartbox.volume import CTVolume  # noqa: E402


def _chest(shape=(30, 512, 512), spacing=(5.0, 0.8, 0.8), body=(150, 120), centre=(270, 240),
           table_row=470):
    """Air, an elliptic 'body' of half-axes ``body`` pixels (soft tissue, lungs inside) and a
    table strip below it that does not touch it."""
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = centre
    inside = ((yy - cy) / body[1]) ** 2 + ((xx - cx) / body[0]) ** 2 <= 1
    lung = ((yy - cy) / (0.6 * body[1])) ** 2 + ((np.abs(xx - cx) - 0.45 * body[0]) / (0.35 * body[0])) ** 2 <= 1
    sl = np.full((h, w), -1000, np.int16)
    sl[inside] = 40
    sl[inside & lung] = -850
    sl[table_row : table_row + 6, 20:-20] = 100  # the table: apart from the body, and wider
    hu = np.repeat(sl[None], z, axis=0)
    return CTVolume(hu, Grid.axis_aligned(shape, spacing, origin_lps=(-200.0, -210.0, -400.0)))


def test_extent_is_the_body_and_not_the_table():
    vol = _chest()
    cy, cx, side = body_extent(vol.hu, vol.grid.spacing)
    assert abs(cy - 270.5) <= 1 and abs(cx - 240.5) <= 1  # pixel-edge coordinates of the centre
    # the wider of the body's two extents (2·150 + 1 pixels of 0.8 mm) plus the margin on both sides
    assert side == pytest.approx(301 * 0.8 + 2 * MARGIN_MM, abs=0.01)


def test_outside_the_slice_is_air():
    vol = _chest(centre=(256, 160), table_row=480)  # body near the left edge: the window reaches past it
    wv, extent = body_window_volume(vol)
    assert extent is not None and extent[1] - extent[2] / 2 / 0.8 < 0
    assert wv.hu[:, :, 0].max() == PAD_HU


def test_a_body_cut_by_the_field_of_view_keeps_the_whole_slice():
    vol = _chest(body=(300, 230), centre=(256, 256), table_row=505)  # wider than the 512-pixel slice
    wv, extent = body_window_volume(vol)
    assert extent is None and wv is vol


def test_resampled_window_keeps_patient_positions():
    vol = _chest()
    wv, extent = body_window_volume(vol)
    assert extent is not None and wv.shape == (30, OUT_PX, OUT_PX)
    s = extent[2] / OUT_PX
    np.testing.assert_allclose(wv.grid.spacing, (5.0, s, s))
    # the window's centre is the body's centre, in patient mm
    mid = wv.grid.index_to_lps((0, OUT_PX / 2 - 0.5, OUT_PX / 2 - 0.5))
    np.testing.assert_allclose(mid, vol.grid.index_to_lps((0, extent[0] - 0.5, extent[1] - 0.5)), atol=1e-6)
    # a voxel deep inside the body and one in the lung read the same HU at the same place
    for yx in [(270, 240), (270, 240 + 67)]:
        p = vol.grid.index_to_lps((3, *yx))
        j = np.rint(wv.grid.lps_to_index(p[None])[0]).astype(int)
        assert wv.hu[tuple(j)] == vol.hu[(3, *yx)]
    assert wv.hu[:, 0, 0].max() == -1000  # the window's corner: the slice's own air outside the body


def test_a_box_goes_to_the_window_and_back_within_one_pixel():
    vol = _chest()
    wv, _ = body_window_volume(vol)
    box = Sector(vol.grid, (4, 20), (200, 330), (150, 300))
    back = on_grid(on_grid(box, wv.grid), vol.grid)
    assert back.z == box.z
    for a, b in ((back.y, box.y), (back.x, box.x)):
        assert abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1


def test_mask_on_the_window_has_the_box_of_the_box_on_the_window():
    vol = _chest()
    mask = np.zeros(vol.shape, bool)
    mask[6:18, 230:300, 200:290] = True
    model = BodyWindowModel(model=None)
    wv, extent = model.window(vol)
    wm = model.window_mask(mask, vol, extent)
    zz, yy, xx = np.nonzero(wm)
    box = on_grid(Sector(vol.grid, (6, 18), (230, 300), (200, 290)), wv.grid)
    assert (zz.min(), zz.max() + 1) == box.z
    for (lo, hi), got in ((box.y, (yy.min(), yy.max() + 1)), (box.x, (xx.min(), xx.max() + 1))):
        assert abs(got[0] - lo) <= 1 and abs(got[1] - hi) <= 1
