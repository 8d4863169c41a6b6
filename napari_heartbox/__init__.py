"""napari-heartbox: find the heart sector in a chest CT in well under a second.

Public API (core, importable without Qt or napari)::

    from napari_heartbox import load_ct, propose, Sector, CTVolume
    volume = load_ct('path/to/dicom_folder')
    sector = propose(volume)            # -> Sector
    heart = volume.crop(sector)         # -> CTVolume

Names are imported lazily so that ``import napari_heartbox`` stays cheap
(the CLI must start without napari, Qt or onnxruntime).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

try:
    from importlib.metadata import version as _dist_version

    __version__ = _dist_version('napari-heartbox')
except Exception:  # noqa: BLE001 - not installed (plain source tree)
    __version__ = '0.0.0+unknown'

_LAZY = {
    'CTVolume': 'napari_heartbox.volume',
    'SeriesInfo': 'napari_heartbox.volume',
    'Grid': 'napari_heartbox.grid',
    'Sector': 'napari_heartbox.sector',
    'box_iou_mm': 'napari_heartbox.sector',
    'HeartboxError': 'napari_heartbox.errors',
    'CTLoadError': 'napari_heartbox.errors',
    'ModelError': 'napari_heartbox.errors',
    'load_ct': 'napari_heartbox.io',
    'open_ct': 'napari_heartbox.io',
    'CTSeries': 'napari_heartbox.io',
    'propose': 'napari_heartbox.model',
    # napari helpers (import napari only when used)
    'add_ct_layer': 'napari_heartbox._napari',
    'attach_box_editor': 'napari_heartbox._napari',
}

__all__ = ['__version__', *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover - static analysers only; runtime is lazy
    from ._napari import add_ct_layer, attach_box_editor  # noqa: F401
    from .errors import CTLoadError, HeartboxError, ModelError  # noqa: F401
    from .grid import Grid  # noqa: F401
    from .io import CTSeries, load_ct, open_ct  # noqa: F401
    from .model import propose  # noqa: F401
    from .sector import Sector, box_iou_mm  # noqa: F401
    from .volume import CTVolume, SeriesInfo  # noqa: F401


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return __all__
