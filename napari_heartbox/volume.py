"""`CTVolume`: HU voxels plus geometry and series metadata.

See :mod:`napari_heartbox.grid` for the axis order (``z, y, x``; z index 0 is
the most inferior slice) and the LPS affine convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .grid import Grid

if TYPE_CHECKING:
    from .sector import Sector

__all__ = ['CTVolume', 'SeriesInfo', 'strided_sample']


def strided_sample(a, target: int = 1_000_000) -> np.ndarray:
    """A view of 3D array ``a`` taking every k-th voxel on each axis, about ``target`` voxels.

    ``k = max(1, round((a.size / target) ** (1/3)))``: cheap statistics (percentiles,
    distinct values) over a whole volume without reading all of it.
    """
    step = max(1, round((a.size / target) ** (1 / 3)))
    return a[::step, ::step, ::step]


@dataclass(frozen=True)
class SeriesInfo:
    """Series metadata kept with a volume.

    Patient name, ID and birth date are never copied here. ``description``
    (SeriesDescription, or a NIfTI header's ``descrip``: free text that can
    name the patient or the study) and ``study_uid`` are kept in memory but
    left out of every output unless asked for (:meth:`to_dict`,
    ``napari-heartbox info --include-ids``).
    """

    series_uid: str | None = None
    modality: str = 'CT'
    manufacturer: str | None = None
    slice_thickness_mm: float | None = None
    description: str | None = None
    study_uid: str | None = None
    source_format: str = 'unknown'  # 'dicom', 'dicom-enhanced', 'nifti', 'synthetic'
    source_files: tuple[str, ...] = ()

    def to_dict(self, include_ids: bool = False) -> dict:
        """JSON-friendly dict; ``description`` and ``study_uid`` only with ``include_ids``.

        The SeriesInstanceUID is always there: a sector file needs it to match its CT.
        """
        d = {
            'series_uid': self.series_uid,
            'modality': self.modality,
            'manufacturer': self.manufacturer,
            'slice_thickness_mm': self.slice_thickness_mm,
            'source_format': self.source_format,
            'n_source_files': len(self.source_files),
        }
        if include_ids:
            d.update(description=self.description, study_uid=self.study_uid)
        return d


@dataclass(eq=False)
class CTVolume:
    """A CT volume in Hounsfield units on a known patient grid.

    Parameters
    ----------
    hu : numpy.ndarray
        int16 array ``(Z, Y, X)`` of Hounsfield units. z index 0 is the most
        inferior slice; y is the image row; x the image column.
    grid : Grid
        Shape, spacing ``(dz, dy, dx)`` mm and the voxel→LPS affine.
    info : SeriesInfo
        Series metadata (no patient identifiers).
    warnings : list of str
        Problems noticed while loading (gaps, duplicates, tilt, skipped
        files...). Each is one human-readable sentence.
    """

    hu: np.ndarray
    grid: Grid
    info: SeriesInfo = field(default_factory=SeriesInfo)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.hu, np.ndarray) or self.hu.ndim != 3:
            raise ValueError('hu must be a 3-D numpy array (z, y, x)')
        if self.hu.dtype != np.int16:
            raise ValueError(f'hu must be int16, got {self.hu.dtype}')
        if tuple(self.hu.shape) != self.grid.shape:
            raise ValueError(
                f'hu shape {self.hu.shape} does not match grid {self.grid.shape}'
            )

    @classmethod
    def from_array(
        cls,
        hu,
        spacing=(1.0, 1.0, 1.0),
        origin_lps=(0.0, 0.0, 0.0),
        **kw,
    ) -> CTVolume:
        """Wrap an HU array on an axis-aligned grid.

        Parameters
        ----------
        hu : array-like
            ``(Z, Y, X)`` HU values; cast (with clipping) to int16.
        spacing : tuple of float
            ``(dz, dy, dx)`` mm.
        origin_lps : tuple of float
            LPS mm of the centre of voxel ``(0, 0, 0)``.
        """
        a = np.asarray(hu)
        if a.dtype != np.int16:
            a = np.clip(np.rint(a) if a.dtype.kind == 'f' else a, -32768, 32767)
            a = a.astype(np.int16)
        grid = Grid.axis_aligned(a.shape, spacing, origin_lps)
        return cls(a, grid, **kw)

    # convenience views of the grid ----------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)``."""
        return self.grid.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """``(dz, dy, dx)`` in mm."""
        return self.grid.spacing

    @property
    def affine(self) -> np.ndarray:
        """4×4 voxel ``(z, y, x, 1)`` → LPS mm (voxel centres)."""
        return self.grid.matrix

    @property
    def series_uid(self) -> str | None:
        """SeriesInstanceUID, if known."""
        return self.info.series_uid

    def crop(self, sector: Sector) -> CTVolume:
        """Return the voxels inside ``sector`` as a new volume.

        The result's affine is shifted so every voxel keeps its patient
        position. The HU array is a copy (the input is never modified).
        """
        if not sector.found:
            raise ValueError('cannot crop to a sector with found=False')
        if sector.grid.shape != self.shape:
            raise ValueError(
                f'sector grid {sector.grid.shape} does not match volume {self.shape}'
            )
        a = self.grid.matrix
        start = np.array([r[0] for r in sector.ranges], dtype=float)
        a[:3, 3] = a[:3, :3] @ start + a[:3, 3]
        hu = np.ascontiguousarray(self.hu[sector.slices])
        grid = Grid(hu.shape, self.spacing, a)
        return CTVolume(hu, grid, self.info, list(self.warnings))

    def describe(self) -> str:
        """A short human-readable summary of geometry and warnings."""
        z, y, x = self.shape
        dz, dy, dx = self.spacing
        lines = [
            (
                f'{z} slices of {y}x{x}, spacing (z, y, x) = '
                f'({dz:.4g}, {dy:.4g}, {dx:.4g}) mm'
            ),
            f'HU range {int(self.hu.min())} .. {int(self.hu.max())}',
        ]
        if self.info.series_uid:
            lines.append(f'SeriesInstanceUID {self.info.series_uid}')
        if self.warnings:
            lines += [f'warning: {w}' for w in self.warnings]
        return '\n'.join(lines)

    def __repr__(self) -> str:
        return (
            f'CTVolume(shape={self.shape}, spacing={tuple(round(s, 4) for s in self.spacing)}, '
            f'series_uid={self.info.series_uid!r}, warnings={len(self.warnings)})'
        )
