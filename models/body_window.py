"""Experiment (round 17, not shipped): the body's own in-plane window.

The preprocessing graph cuts a slice into 64×64 cells of ``ceil(H/64)``
pixels, so the scale at which the network sees the chest is the field of view
over 64, which differs between scanners and protocols. Here each scan is
resampled in-plane, before the graph, onto a square window around the
patient's body, so that the chest always fills about the same number of cells:

* body: the largest 8-connected region above ``BODY_HU`` HU on slices sampled
  every ``SAMPLE_MM`` mm along z (the table, lying apart from the body, is left
  out); its extent is the median of those slices' bounding boxes, so that arms
  and shoulders on a few slices do not set it;
* window: that extent grown by ``MARGIN_MM`` on every side, made square (in mm)
  about its centre, never larger than the slice's own field of view (a body
  cut by the field of view keeps the whole slice, unresampled), resampled
  bilinearly to ``OUT_PX`` × ``OUT_PX`` pixels (air, -1024 HU, outside the
  slice).

Conventions: arrays are ``(z, y, x)``; the window's geometry is a
:class:`napari_heartbox.grid.Grid` whose voxel centres are patient positions
(the original affine, scaled and shifted); boxes move between grids through
their patient-mm faces. The constants were fixed before any real scan was
scored with the window (models/EXPERIMENTS.md round 17).
"""

from __future__ import annotations

import numpy as np

__all__ = ['BodyWindowModel', 'body_extent', 'body_window_volume', 'on_grid', 'resample_to_window']

BODY_HU = -400.0  # body: soft tissue and bone; lung inside it is enclosed by the bbox
SAMPLE_MM = 20.0  # slices sampled for the body's extent
MARGIN_MM = 10.0  # grown on every side of the body's extent
OUT_PX = 512  # the window's pixels per side after resampling (8 pixels per cell)
PAD_HU = -1024


def _largest_region_bbox(mask: np.ndarray):
    """``(y0, y1, x0, x1)`` (half-open) of the largest 8-connected region of a 2D mask, or None."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    ys, xs = np.nonzero(lab == 1 + int(np.argmax(sizes)))
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def body_extent(hu: np.ndarray, spacing):
    """``(centre_y, centre_x, side)`` of the square body window, in pixel-edge units and mm.

    ``centre_*`` are in pixel-edge coordinates of the slice (pixel ``i`` spans
    ``[i, i+1)``); ``side`` is in mm, at most the slice's field of view. A
    volume with no body (all air) gets the whole slice.
    """
    nz, h, w = hu.shape
    dz, dy, dx = (float(s) for s in spacing)
    step = max(1, int(round(SAMPLE_MM / dz)))
    boxes = [b for z in range(step // 2, nz, step) if (b := _largest_region_bbox(hu[z] > BODY_HU))]
    if not boxes:
        return h / 2, w / 2, max(h * dy, w * dx)
    b = np.array(boxes, float)
    cy, cx = float(np.median((b[:, 0] + b[:, 1]) / 2)), float(np.median((b[:, 2] + b[:, 3]) / 2))
    side = max(np.median(b[:, 1] - b[:, 0]) * dy, np.median(b[:, 3] - b[:, 2]) * dx) + 2 * MARGIN_MM
    return cy, cx, float(min(side, max(h * dy, w * dx)))


def _full_slice(grid, side: float) -> bool:
    h, w = grid.shape[1:]
    dy, dx = float(grid.spacing[1]), float(grid.spacing[2])
    return side >= max(h * dy, w * dx) - 1e-6 and abs(h * dy - w * dx) < 1e-6


def resample_to_window(a: np.ndarray, grid, extent, *, order: int = 1, fill=PAD_HU):
    """``(a on the window, window Grid)`` for a ``(z, y, x)`` array on ``grid`` and an
    :func:`body_extent` ``extent`` (bilinear for ``order=1``, nearest for 0)."""
    from scipy import ndimage as ndi

    from napari_heartbox.grid import Grid

    nz = grid.shape[0]
    dy, dx = float(grid.spacing[1]), float(grid.spacing[2])
    cy, cx, side = extent
    s = side / OUT_PX  # new pixel size (mm)
    # new pixel j spans edge coordinates [j, j+1) of the window; its centre, in the old
    # slice's edge coordinates, is c - side/2/d + (j + 0.5)·s/d, i.e. that minus 0.5 as an index
    jj = np.arange(OUT_PX) + 0.5
    ys = cy - side / 2 / dy + jj * s / dy - 0.5
    xs = cx - side / 2 / dx + jj * s / dx - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    out = np.empty((nz, OUT_PX, OUT_PX), a.dtype)
    for z in range(nz):
        v = ndi.map_coordinates(a[z].astype(np.float32), [yy, xx], order=order, mode='constant',
                                cval=float(fill))
        out[z] = np.rint(v) if np.issubdtype(a.dtype, np.integer) else v > 0.5 if a.dtype == bool else v
    aff = np.asarray(grid.affine, float).copy()
    u_y, u_x = aff[:3, 1] / dy, aff[:3, 2] / dx  # row and column axes, per original pixel → unit
    aff[:3, 3] = aff[:3, 3] + u_y * dy * ys[0] + u_x * dx * xs[0]  # voxel (0, 0, 0)'s centre
    aff[:3, 1], aff[:3, 2] = u_y * s, u_x * s
    return out, Grid((nz, OUT_PX, OUT_PX), (float(grid.spacing[0]), s, s), aff)


def body_window_volume(volume):
    """``(windowed CTVolume, extent)``: ``volume`` resampled onto its body window, or
    ``(volume, None)`` when the window is the whole (square) slice."""
    from napari_heartbox.volume import CTVolume

    extent = body_extent(volume.hu, volume.grid.spacing)
    if _full_slice(volume.grid, extent[2]):
        return volume, None
    hu, grid = resample_to_window(volume.hu, volume.grid, extent)
    return CTVolume(hu, grid, info=volume.info), extent


def on_grid(sector, grid):
    """``sector`` moved onto ``grid`` through its patient-mm faces (clipped to ``grid``)."""
    from dataclasses import replace

    from napari_heartbox.sector import Sector

    if not sector.found:
        return replace(sector, grid=grid)
    lo, hi = sector.patient_mm()
    return Sector.from_patient_mm(grid, lo, hi)


class BodyWindowModel:
    """A model that sees every scan on its body window; ``propose`` answers on the caller's grid."""

    def __init__(self, model):
        self.model = model

    @property
    def postprocess(self) -> dict:
        return self.model.postprocess

    def window(self, volume):
        """``(windowed volume, extent or None)`` for ``volume``."""
        return body_window_volume(volume)

    @staticmethod
    def window_mask(mask: np.ndarray, volume, extent) -> np.ndarray:
        """A voxel mask of ``volume`` on its window (nearest voxel)."""
        if extent is None:
            return mask
        return resample_to_window(np.asarray(mask, bool), volume.grid, extent, order=0, fill=0)[0]

    def propose(self, volume, *, margin_mm=None, progress=None):
        wv, extent = self.window(volume)
        sec = self.model.propose(wv, margin_mm=margin_mm)
        return sec if extent is None else on_grid(sec, volume.grid)
