"""Experiment (models/EXPERIMENTS.md round 16, not shipped): a fixed-millimetre in-plane window.

The preprocessing graph divides an ``H×W`` slice into 64×64 cells of
``ceil(H/64)×ceil(W/64)`` pixels, so a cell's size in mm is the field of view
over 64: 4.5 mm on a 289 mm reconstruction, 7.8 mm on a 500 mm one. The same
heart is then a different number of cells depending on what else is in view.

A *grid window* fixes the cell size instead: ``k = max(1, round(cell_mm / spacing))``
pixels per cell on each in-plane axis, and a window of ``64·k`` pixels centred
on the slice (air-padded where the slice is smaller, cropped where it is
larger). The graph given that window computes ``ceil(64k/64) = k``, so its
cells are ``k`` pixels, i.e. ``cell_mm`` within the rounding of ``k``.

Windows of one patient line up: the window's first pixel is snapped to a
lattice of ``k``-pixel steps fixed in patient space (along each in-plane
axis), so a crop of a scan and the scan itself (same spacing) get the same
cells wherever they overlap.

Conventions: array axes ``(z, y, x)``; window offsets are pixel indices of the
original slice (negative: the window starts before the slice, air padding);
ranges are half-open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_heartbox.model.postprocess import CELLS

__all__ = ['Window', 'apply_window', 'plan_window', 'unwindow_sector', 'window_sector', 'window_volume']

PAD_HU = -1024  # air outside the slice


@dataclass(frozen=True)
class Window:
    """In-plane window ``rows [y0, y0 + 64·ky)``, ``columns [x0, x0 + 64·kx)`` of a slice."""

    y0: int
    x0: int
    ky: int
    kx: int

    @property
    def shape(self) -> tuple[int, int]:
        return CELLS * self.ky, CELLS * self.kx


def _snap(start: int, k: int, lattice_index: int) -> int:
    """``start`` moved by at most ``k/2`` so that ``lattice_index + start`` is a multiple of ``k``."""
    d = (-(lattice_index + start)) % k
    if d > k // 2:
        d -= k
    return start + d


def plan_window(shape_hw, spacing_yx, cell_mm: float, lattice_yx=(0, 0)) -> Window:
    """The window of a slice of ``shape_hw`` pixels of ``spacing_yx`` mm.

    Parameters
    ----------
    shape_hw : (int, int)
        Slice rows and columns.
    spacing_yx : (float, float)
        Row and column spacing (mm).
    cell_mm : float
        Wanted cell size (mm); each axis gets ``k = max(1, round(cell_mm / spacing))``.
    lattice_yx : (int, int)
        Index of the slice's pixel ``(0, 0)`` on a patient-fixed pixel lattice
        (the patient coordinate along each axis divided by the spacing,
        rounded); windows start on multiples of ``k`` of it.
    """
    out = []
    for n, s, lat in zip(shape_hw, spacing_yx, lattice_yx, strict=True):
        k = max(1, int(round(float(cell_mm) / float(s))))
        start = int(np.floor((n - CELLS * k) / 2))
        out += [_snap(start, k, int(lat)), k]
    return Window(y0=out[0], ky=out[1], x0=out[2], kx=out[3])


def apply_window(a: np.ndarray, w: Window, fill) -> np.ndarray:
    """``a[..., y, x]`` cut to the window, ``fill`` outside the slice (a new array)."""
    hh, ww = w.shape
    h, wd = a.shape[-2:]
    out = np.full(a.shape[:-2] + (hh, ww), fill, dtype=a.dtype)
    sy0, sy1 = max(0, w.y0), min(h, w.y0 + hh)
    sx0, sx1 = max(0, w.x0), min(wd, w.x0 + ww)
    if sy1 > sy0 and sx1 > sx0:
        out[..., sy0 - w.y0 : sy1 - w.y0, sx0 - w.x0 : sx1 - w.x0] = a[..., sy0:sy1, sx0:sx1]
    return out


def _lattice(grid) -> tuple[int, int]:
    """Patient-fixed lattice index of pixel ``(0, 0)`` along the row and column axes."""
    a = np.asarray(grid.affine, float)
    origin = a[:3, 3]
    idx = []
    for axis, s in ((1, grid.spacing[1]), (2, grid.spacing[2])):
        u = a[:3, axis] / np.linalg.norm(a[:3, axis])
        idx.append(int(round(float(origin @ u) / s)))
    return idx[0], idx[1]


def window_volume(volume, cell_mm: float):
    """``(windowed CTVolume, Window)``: ``volume`` on its fixed-mm window, the
    affine shifted so that every voxel keeps its patient position."""
    from napari_heartbox.grid import Grid
    from napari_heartbox.volume import CTVolume

    g = volume.grid
    w = plan_window(g.shape[1:], g.spacing[1:], cell_mm, _lattice(g))
    hu = apply_window(volume.hu, w, PAD_HU)
    shift = np.eye(4)
    shift[1, 3], shift[2, 3] = w.y0, w.x0
    grid = Grid((g.shape[0],) + w.shape, g.spacing, np.asarray(g.affine) @ shift)
    return CTVolume(hu, grid, info=volume.info), w


def _moved(sector, grid, dy: int, dx: int):
    """``sector`` moved by ``(dy, dx)`` pixels onto ``grid``, its faces clipped to ``grid``'s slice."""
    from dataclasses import replace

    if not sector.found:
        return replace(sector, grid=grid)
    h, wd = grid.shape[1:]
    y = tuple(min(h, max(0, v + dy)) for v in sector.y)
    x = tuple(min(wd, max(0, v + dx)) for v in sector.x)
    return replace(sector, grid=grid, y=y, x=x)


def unwindow_sector(sector, grid, w: Window):
    """A sector on the windowed grid, as a sector on the original ``grid``
    (faces clipped to the original slice)."""
    return _moved(sector, grid, w.y0, w.x0)


def window_sector(sector, window_grid, w: Window):
    """A sector on the original grid, as a sector on the window's grid ``window_grid``
    (faces clipped to the window)."""
    return _moved(sector, window_grid, -w.y0, -w.x0)
