"""CTVolume ⇄ napari layer data, and the CT checks the widget needs.

World coordinates
-----------------
napari shows the CT in world axes ``(z, y, x)`` = **(S, P, L) in mm**: the
DICOM LPS patient position of each voxel centre, listed in array order
(patient superior, posterior, left). For the usual axis-aligned CT this is a
plain ``scale`` = spacing and ``translate`` = the centre of voxel
``(0, 0, 0)``; only a flipped or oblique grid needs ``affine=``. Voxel ``i``
covers data coordinates ``[i - 0.5, i + 0.5]`` (napari's convention as
well), so a half-open range ``[a, b)`` spans data ``[a - 0.5, b - 0.5]``.

This module imports neither napari nor Qt itself (it only builds tuples and
reads layer attributes) but lives in the napari shell because it speaks in
napari terms.
"""

from __future__ import annotations

import numpy as np

from ..grid import Grid
from ..volume import CTVolume, SeriesInfo

__all__ = [
    'CT_CONTRAST_LIMITS',
    'META_KEY',
    'ct_geometry_problem',
    'ct_layer_problem',
    'layer_data_from_volume',
    'volume_from_layer',
    'world_matrix',
]

#: mediastinal window (level 40, width 400) in HU
CT_CONTRAST_LIMITS = (-160.0, 240.0)

#: key in ``layer.metadata`` holding the CTVolume and its JSON description
META_KEY = 'heartbox'

# LPS (L, P, S) rows → world (S, P, L) rows
_LPS_TO_WORLD = np.array(
    [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float
)


def world_matrix(grid: Grid) -> np.ndarray:
    """4×4 map from voxel ``(z, y, x, 1)`` to napari world ``(S, P, L, 1)`` mm."""
    return _LPS_TO_WORLD @ grid.matrix


def layer_data_from_volume(volume: CTVolume, name: str = 'CT', **extra) -> tuple:
    """Image LayerData ``(hu, meta, 'image')`` for a CT volume.

    Parameters
    ----------
    volume : CTVolume
        The CT (HU int16, axis order z, y, x).
    name : str
        Layer name.
    **extra
        More ``add_image`` keyword arguments (override the defaults).

    Returns
    -------
    tuple
        A napari LayerData tuple. ``meta['metadata']['heartbox']`` holds the
        CTVolume (``'volume'``) plus its grid, series info and warnings as
        JSON-friendly dicts.
    """
    m = world_matrix(volume.grid)
    lin = m[:3, :3]
    meta = {
        'name': name,
        'axis_labels': ('z', 'y', 'x'),
        'units': ('mm', 'mm', 'mm'),
        'contrast_limits': CT_CONTRAST_LIMITS,
        'colormap': 'gray',
        'metadata': {
            META_KEY: {
                'volume': volume,
                'grid': volume.grid.to_dict(),
                'series': volume.info.to_dict(),
                'warnings': list(volume.warnings),
            }
        },
    }
    diag = np.diag(lin)
    if np.allclose(lin, np.diag(diag)) and np.all(diag > 0):
        meta['scale'] = tuple(float(v) for v in diag)
        meta['translate'] = tuple(float(v) for v in m[:3, 3])
    else:  # flipped or oblique grid: the full voxel → world affine
        meta['affine'] = m
    meta.update(extra)
    return (volume.hu, meta, 'image')


def ct_layer_problem(layer) -> str | None:
    """Why ``layer`` cannot be used as a CT, or None when it can.

    Returns a one-line hint for a non-image, RGB or 2D layer.
    """
    if layer is None:
        return 'Open a 3D CT first (File ▸ Open, or File ▸ Open Sample ▸ Synthetic chest CT).'
    if type(layer).__name__ != 'Image':
        return f'"{layer.name}" is not an image layer: choose a 3D CT image.'
    if getattr(layer, 'rgb', False):
        return f'"{layer.name}" is an RGB image: the heart box needs a 3D CT (z, y, x).'
    if layer.ndim != 3:
        return (
            f'"{layer.name}" is {layer.ndim}D: the heart box needs a 3D CT '
            '(z, y, x), e.g. a DICOM series folder or a NIfTI volume.'
        )
    return None


def ct_geometry_problem(layer) -> str | None:
    """A one-line warning when a CT layer carries no patient geometry, else None.

    A layer made by this plugin (or any layer with a scale other than 1 or a
    transform) has one. An image opened with napari's built-in reader has
    scale 1 and no position: its boxes are still right in voxels, but its
    "mm" would be voxel indices, so the widgets show voxels only.
    """
    md = layer.metadata if isinstance(layer.metadata, dict) else {}
    if META_KEY in md:
        return None
    unit = np.allclose(layer.scale, 1.0) and np.allclose(layer.translate, 0.0)
    if unit and np.allclose(np.asarray(layer.affine.affine_matrix), np.eye(layer.ndim + 1)):
        return (
            f'"{layer.name}" has no CT geometry (scale 1, no patient position: opened by '
            "napari's built-in reader?): boxes are in voxels only. For mm, open the file "
            'with File ▸ Open with Plugin ▸ napari-heartbox.'
        )
    return None


def volume_from_layer(layer) -> CTVolume:
    """The CTVolume behind a CT image layer.

    Uses the volume stored by :func:`layer_data_from_volume` when the layer
    still shows its data; otherwise rebuilds one from the layer's data and
    its data→world transform (world = S, P, L mm), with HU cast to int16.
    """
    md = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
    vol = md.get('volume')
    if isinstance(vol, CTVolume) and vol.hu is layer.data:
        return vol
    data = np.asarray(layer.data)
    if 'grid' in md:
        grid = Grid.from_dict(md['grid'])
    else:
        world = np.asarray(layer.affine.affine_matrix) @ np.asarray(
            _scale_translate(layer)
        )
        grid = Grid(data.shape, _spacing(world), np.linalg.inv(_LPS_TO_WORLD) @ world)
    hu = data
    if hu.dtype != np.int16:
        hu = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    info = SeriesInfo(
        series_uid=md.get('series', {}).get('series_uid'), source_format='napari'
    )
    return CTVolume(hu, grid, info, list(md.get('warnings', [])))


def _scale_translate(layer) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.diag(np.asarray(layer.scale, float))
    m[:3, 3] = np.asarray(layer.translate, float)
    return m


def _spacing(world: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.linalg.norm(world[:3, :3], axis=0))
