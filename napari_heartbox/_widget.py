"""napari widget contributions (thin): the code lives in ``_napari/``."""

from __future__ import annotations

from ._napari.sector_widget import HeartSectorWidget
from ._napari.worklist_widget import WorklistWidget

__all__ = ['HeartSectorWidget', 'WorklistWidget']
