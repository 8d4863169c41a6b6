"""Synthetic benchmark inputs: a phantom chest CT resampled to N × 512² and written as DICOM.

Conventions as in :mod:`napari_heartbox.grid`: arrays are ``(z, y, x)``, z
index 0 = most inferior slice, LPS affine to voxel centres. Nothing here
touches real patient data; everything is written under a temp/cache folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_heartbox.grid import Grid
from napari_heartbox.volume import CTVolume, SeriesInfo

__all__ = ['base_phantom', 'resample_volume', 'volume_with_slices', 'dicom_folder']

MATRIX = 512


def _fallback_phantom() -> CTVolume:
    """Ellipsoid body/lungs/heart on 300 × 512² (used only if the phantom package is missing)."""
    nz, n = 300, MATRIX
    z, y, x = np.ogrid[0:nz, 0:n, 0:n]
    hu = np.full((nz, n, n), -1000, np.int16)
    body = ((y - 256) / 170.0) ** 2 + ((x - 256) / 230.0) ** 2 < 1
    hu[np.broadcast_to(body, hu.shape)] = 40
    lungs = (((y - 250) / 120.0) ** 2 + ((np.abs(x - 256) - 100) / 80.0) ** 2 < 1) & (
        z > 60
    )
    hu[np.broadcast_to(lungs, hu.shape)] = -850
    heart = ((z - 150) / 60.0) ** 2 + ((y - 220) / 60.0) ** 2 + (
        (x - 280) / 70.0
    ) ** 2 < 1
    hu[heart] = 60
    return CTVolume.from_array(
        hu, spacing=(1.0, 0.7, 0.7), info=SeriesInfo(source_format='synthetic')
    )


def base_phantom(seed: int = 0) -> tuple[CTVolume, str]:
    """The demo chest phantom (whole heart in view), and a description of its source."""
    try:
        from napari_heartbox.phantom import sample_chest_ct
    except ImportError:
        return (
            _fallback_phantom(),
            'fallback ellipsoids (napari_heartbox.phantom not available)',
        )
    return sample_chest_ct(
        seed
    ).volume, f'napari_heartbox.phantom.sample_chest_ct({seed})'


def resample_volume(volume: CTVolume, nz: int, matrix: int = MATRIX) -> CTVolume:
    """Nearest-neighbour resample to ``nz × matrix²`` covering the same physical extent.

    Spacing is scaled so the anatomy keeps its size in mm; the grid stays
    axis-aligned with the original's LPS origin corner.
    """
    z0, y0, x0 = volume.shape
    zi = np.minimum(((np.arange(nz) + 0.5) * z0 / nz).astype(int), z0 - 1)
    yi = np.minimum(((np.arange(matrix) + 0.5) * y0 / matrix).astype(int), y0 - 1)
    xi = np.minimum(((np.arange(matrix) + 0.5) * x0 / matrix).astype(int), x0 - 1)
    hu = volume.hu[zi][:, yi][:, :, xi]
    dz, dy, dx = volume.spacing
    spacing = (dz * z0 / nz, dy * y0 / matrix, dx * x0 / matrix)
    a = volume.grid.matrix
    # keep the first voxel's outer edge fixed: new centre = old edge + half the new step
    edge = a[:3, 3] - 0.5 * (a[:3, 0] + a[:3, 1] + a[:3, 2])
    scale = np.diag([spacing[0] / dz, spacing[1] / dy, spacing[2] / dx])
    a[:3, :3] = a[:3, :3] @ scale
    a[:3, 3] = edge + 0.5 * (a[:3, 0] + a[:3, 1] + a[:3, 2])
    grid = Grid(hu.shape, spacing, a)
    return CTVolume(
        np.ascontiguousarray(hu), grid, SeriesInfo(source_format='synthetic')
    )


def volume_with_slices(base: CTVolume, nz: int) -> CTVolume:
    """``base`` resampled to ``nz`` slices of 512² (cached by the caller)."""
    return resample_volume(base, nz, MATRIX)


def dicom_folder(volume: CTVolume, folder: Path) -> Path:
    """Write ``volume`` as a synthetic uncompressed DICOM series (names shuffled)."""
    from napari_heartbox.io import write_dicom_series

    if folder.is_dir() and len(list(folder.glob('*.dcm'))) == volume.shape[0]:
        return folder  # cached from an earlier run
    write_dicom_series(volume, folder, shuffle_names=True, seed=volume.shape[0])
    return folder
