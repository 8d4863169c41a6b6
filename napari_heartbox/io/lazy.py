"""``open_ct``: a CT whose pixels are read only where they are needed.

The heart model scores a few slices per centimetre (the coarse-to-fine slice
schedule, ``docs/model.md``), so finding the sector of a DICOM series needs
the headers of every file but the pixels of only those slices. ``open_ct``
runs ``load_ct``'s header pass (same series selection, geometry, warnings)
and returns a :class:`CTSeries`; :meth:`CTSeries.read_slices` reads and
converts just the requested slices with the loader's own pixel code, and
:meth:`CTSeries.load` gives the whole :class:`~napari_heartbox.volume.CTVolume`.
NIfTI inputs (one compressed stream) are loaded whole at once.

Used by ``napari-heartbox propose`` (six numbers do not need the volume);
napari and ``load_ct`` keep loading the whole volume, which they display.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from ..errors import CTLoadError
from ..grid import Grid
from ..volume import CTVolume, SeriesInfo
from .dicom_pixels import read_output_slices
from .load import Progress, _fill, _resolve, _scan_dicom, _Scanned, as_ct_load_error
from .nifti import load_nifti

__all__ = ['CTSeries', 'open_ct']


class CTSeries:
    """A CT series after the header pass; pixels on demand.

    Attributes
    ----------
    grid : Grid
        Shape ``(Z, Y, X)``, spacing and LPS affine, as ``load_ct`` gives.
    info : SeriesInfo
    warnings : list of str
        The header pass's warnings, plus those of the pixels read so far
        (clipping) or of the full load after a fallback.
    shape : tuple of int
    """

    def __init__(self, scanned: _Scanned | None = None, volume: CTVolume | None = None,
                 where: str = 'the series'):
        self._where = where  # names the input in errors
        self._scanned = scanned
        self._volume = volume
        self._lock = threading.Lock()
        self._clipped = 0
        src = volume if volume is not None else scanned
        self.grid: Grid = src.grid
        self.info: SeriesInfo = src.info
        self.warnings: list[str] = list(src.warnings)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.grid.shape)

    def read_slices(self, zs) -> np.ndarray:
        """HU int16 ``(len(zs), Y, X)`` of output slices ``zs`` (z index 0 = most inferior).

        An image that cannot be read makes the series load whole (the loader
        then replaces it by its nearest readable neighbour and warns), so the
        answer is always the one :func:`load_ct` would give.
        """
        idx = np.asarray(zs, np.int64)
        if self._volume is not None:
            return self._volume.hu[idx]
        try:
            with as_ct_load_error(self._where):
                hu, clipped = read_output_slices(self._scanned.plan, idx.tolist())
        except CTLoadError:
            return self.load().hu[idx]
        if clipped:
            with self._lock:
                self._clipped += clipped
        return hu

    def load(self) -> CTVolume:
        """The whole volume (read once, then kept)."""
        with self._lock:
            if self._volume is None:
                with as_ct_load_error(self._where):
                    self._volume = _fill(self._scanned, None)
                self.warnings = list(self._volume.warnings)
                self._clipped = 0
            return self._volume

    def read_warnings(self) -> list[str]:
        """The warnings, with the clipping seen in the slices read so far."""
        w = list(self.warnings)
        if self._clipped:
            w.append(
                f'HU values outside the int16 range were clipped in {self._clipped} '
                'of the slice(s) read'
            )
        return w


def open_ct(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    series_uid: str | None = None,
    progress: Progress | None = None,
) -> CTSeries:
    """Open a CT like :func:`~napari_heartbox.io.load_ct`, reading no pixels yet.

    Parameters
    ----------
    path, series_uid, progress
        As for :func:`~napari_heartbox.io.load_ct` (``progress`` covers the
        header pass).

    Returns
    -------
    CTSeries

    Raises
    ------
    CTLoadError
        The same one-line errors as ``load_ct``.
    """
    with as_ct_load_error(path):
        kind, arg, source = _resolve(path)
        if kind == 'nifti':
            return CTSeries(volume=load_nifti(arg, progress=progress))
        return CTSeries(_scan_dicom(arg, source=source, series_uid=series_uid, progress=progress),
                        where=source or str(path))
