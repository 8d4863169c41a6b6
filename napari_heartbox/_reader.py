"""napari reader contribution: CT volumes and heart-sector files.

Thin: the reading itself is :func:`napari_heartbox.io.load_ct` and
:func:`napari_heartbox.sector_file.read_sector_file`.

* A folder (DICOM series, searched recursively), ``.dcm``, ``.nii`` or
  ``.nii.gz`` → one Image layer in world (S, P, L) mm with the mediastinal
  window and the CTVolume in ``metadata['heartbox']`` (see
  :mod:`napari_heartbox._napari.layers`).
* A ``.json`` sector file (``heartbox.sector-file/1`` or a bare
  ``heartbox.sector/1``) → a Points layer with the six face handles of the
  box, placed in world mm by the sector's own grid. The "Heart sector"
  widget can load such a file onto its CT to edit it.

napari contract: ``get_reader`` never raises; it returns None for a path
it cannot read. A path that looks readable but fails to load shows the
loader's one-line message as a notification and yields no layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io.dicom_headers import has_dicm_marker

__all__ = ['get_reader']

_CT_SUFFIXES = ('.dcm', '.nii', '.nii.gz')
_MAX_PROBE = 2000  # files looked at when deciding whether a folder holds DICOM


def get_reader(path):
    """Return a reader function for ``path``, or None if it is not ours.

    Parameters
    ----------
    path : str or list of str
        One path (file or folder) or a list of ``.dcm`` files.
    """
    try:
        if isinstance(path, (list, tuple)):
            paths = [str(p) for p in path]
            if paths and all(p.lower().endswith('.dcm') for p in paths):
                return _read_ct
            if len(paths) == 1:
                return get_reader(paths[0])
            return None
        p = Path(path)
        name = p.name.lower()
        if p.is_dir():
            return _read_ct if _folder_has_ct(p) else None
        if name.endswith('.json'):
            return _read_sector if _looks_like_sector_file(p) else None
        if p.is_file() and (name.endswith(_CT_SUFFIXES) or has_dicm_marker(p)):
            return _read_ct
    except OSError:
        return None
    return None


def _read_ct(path):
    from napari.utils.notifications import show_error

    from ._napari.layers import layer_data_from_volume
    from .errors import HeartboxError
    from .io import load_ct

    try:
        volume = load_ct(list(path) if isinstance(path, (list, tuple)) else path)
    except HeartboxError as e:
        show_error(str(e))
        return [(None,)]  # npe2's "accepted, but nothing to show" sentinel
    first = path[0] if isinstance(path, (list, tuple)) else path
    return [layer_data_from_volume(volume, name=_layer_name(first))]


def _read_sector(path):
    from napari.utils.notifications import show_error

    from ._napari.box_editor import handle_positions
    from ._napari.layers import world_matrix
    from .errors import HeartboxError
    from .sector_file import read_sector_file

    try:
        sf = read_sector_file(path)
    except HeartboxError as e:
        show_error(str(e))
        return [(None,)]
    s = sf.sector
    if s is None or not s.found:
        show_error(f'{path}: the sector file holds no heart box (found: false)')
        return [(None,)]
    m = world_matrix(s.grid)
    meta = {
        'name': f'{_layer_name(path)} heart sector (file)',
        'affine': m,
        'face_color': 'orange',
        'metadata': {'heartbox_sector_path': str(path)},
    }
    return [(handle_positions(s), meta, 'points')]


def _layer_name(path) -> str:
    p = Path(path)
    name = p.name
    for suf in ('.nii.gz', '.nii', '.dcm', '.json'):
        if name.lower().endswith(suf):
            return name[: -len(suf)] or p.parent.name
    if name.lower() in ('dicom', 'dcm'):  # e.g. case/dicom → "case"
        return p.parent.name
    return name


def _folder_has_ct(folder: Path) -> bool:
    n = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            low = f.lower()
            if low.endswith(_CT_SUFFIXES) or has_dicm_marker(Path(root) / f):
                return True
            n += 1
            if n >= _MAX_PROBE:
                return False
    return False


def _looks_like_sector_file(p: Path) -> bool:
    if not p.is_file() or p.stat().st_size > 1_000_000:
        return False
    head = p.read_text(encoding='utf-8', errors='replace')[:4096]
    return 'heartbox.sector' in head
