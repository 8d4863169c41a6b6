"""Reading CT volumes (DICOM, NIfTI) and writing synthetic DICOM series.

``load_ct`` is the one entry point for reading (``open_ct`` runs its header
pass only and reads pixels on demand, for ``propose``); ``write_dicom_series`` writes
a :class:`~napari_heartbox.volume.CTVolume` as a synthetic CT series (tests,
benchmarks, browser tests). Conventions and rules: ``docs/loading.md``.
"""

from .lazy import CTSeries, open_ct
from .load import load_ct
from .write_dicom import write_dicom_series

__all__ = ['CTSeries', 'load_ct', 'open_ct', 'write_dicom_series']
