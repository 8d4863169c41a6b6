"""Reading CT volumes (DICOM, NIfTI) and writing synthetic DICOM series.

``load_ct`` is the one entry point for reading; ``write_dicom_series`` writes
a :class:`~napari_heartbox.volume.CTVolume` as a synthetic CT series (tests,
benchmarks, browser tests). Conventions and rules: ``docs/loading.md``.
"""

from .load import load_ct
from .write_dicom import write_dicom_series

__all__ = ['load_ct', 'write_dicom_series']
