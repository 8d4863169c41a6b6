"""napari writer contributions: heart-sector JSON and cropped CT as NIfTI.

* ``write_sector`` — the "heart box: <image>" handle layer → a sector file
  (``heartbox.sector-file/1``: proposal + corrected box, keyed by
  SeriesInstanceUID; see :mod:`napari_heartbox.sector_file`).
* ``write_nifti`` — a CT image layer (e.g. the "heart crop") → ``.nii`` /
  ``.nii.gz`` with its patient geometry. NIfTI stores RAS, so the LPS
  affine is flipped in x and y; the array is written in NIfTI's
  ``(i, j, k) = (x, y, z)`` order.

napari never writes into the user's input folder by itself: the path is
the one the user chose in the save dialog.
"""

from __future__ import annotations

import numpy as np

__all__ = ['nifti_affine', 'write_nifti', 'write_sector']


def write_sector(path: str, data, meta: dict) -> list[str]:
    """Write a heart-sector handle layer as a sector file; returns ``[path]``."""
    from .errors import HeartboxError
    from .sector import Sector
    from .sector_file import write_sector_file

    content = (meta.get('metadata') or {}).get('heartbox_sector_file')
    if not content or content.get('corrected') is None:
        raise HeartboxError(
            f'{meta.get("name", "layer")} is not a heart-sector layer made by '
            'the "Heart sector" widget: nothing to save'
        )
    corrected = Sector.from_dict(content['corrected'])
    proposal = content.get('proposal')
    proposal = Sector.from_dict(proposal) if proposal else None
    if not str(path).lower().endswith('.json'):
        path = f'{path}.json'
    return [str(write_sector_file(path, corrected, proposal))]


def nifti_affine(lps_affine) -> np.ndarray:
    """NIfTI (RAS) affine for voxel ``(x, y, z)`` from our LPS ``(z, y, x)`` one."""
    ras_from_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    swap = np.zeros((4, 4))
    swap[0, 2] = swap[1, 1] = swap[2, 0] = swap[3, 3] = 1.0  # (x,y,z,1) -> (z,y,x,1)
    return ras_from_lps @ np.asarray(lps_affine, float) @ swap


def write_nifti(path: str, data, meta: dict) -> list[str]:
    """Write a 3D CT image layer as NIfTI; returns ``[path]``."""
    import nibabel as nib

    from ._napari.layers import _LPS_TO_WORLD, META_KEY
    from .errors import HeartboxError
    from .grid import Grid

    arr = np.asarray(data)
    if arr.ndim != 3:
        raise HeartboxError(
            f'{meta.get("name", "layer")}: only 3D (z, y, x) images can be saved as NIfTI'
        )
    md = (meta.get('metadata') or {}).get(META_KEY, {})
    if 'grid' in md and tuple(md['grid']['shape']) == arr.shape:
        lps = Grid.from_dict(md['grid']).matrix
    else:  # rebuild from the layer transform (world = S, P, L mm)
        world = np.eye(4)
        world[:3, :3] = np.diag(np.asarray(meta.get('scale', (1, 1, 1)), float))
        world[:3, 3] = np.asarray(meta.get('translate', (0, 0, 0)), float)
        if meta.get('affine') is not None:
            world = np.asarray(meta['affine'], float) @ world
        lps = np.linalg.inv(_LPS_TO_WORLD) @ world
    p = str(path)
    if not p.lower().endswith(('.nii', '.nii.gz')):
        p += '.nii.gz'
    img = nib.Nifti1Image(
        np.ascontiguousarray(arr.transpose(2, 1, 0)), nifti_affine(lps)
    )
    img.header.set_xyzt_units('mm')
    nib.save(img, p)
    return [p]
