"""The voxel grid of a CT volume: shape, spacing and the voxel→patient affine.

Conventions (used everywhere in napari-heartbox)
------------------------------------------------
* Array axis order is ``(z, y, x)``: ``volume[z, y, x]``.

  - ``z`` is the slice index. **Index 0 is the most inferior slice** (smallest
    patient S coordinate); the index increases towards the head.
  - ``y`` is the image row (DICOM rows, usually anterior → posterior).
  - ``x`` is the image column (usually patient right → left).
* Patient coordinates are **DICOM LPS** millimetres: +x = patient Left,
  +y = Posterior, +z = Superior. NIfTI files (RAS on disk) are converted to
  LPS when they are read.
* ``affine`` is a 4×4 matrix that maps a homogeneous voxel index in array
  order, ``(z, y, x, 1)``, to the patient position ``(L, P, S, 1)`` of that
  voxel's **centre**. Voxel ``i`` covers the index interval
  ``[i - 0.5, i + 0.5]``; box faces sit on voxel **edges**.
* ``spacing`` is ``(dz, dy, dx)`` in mm, where ``dz`` is the distance between
  slice planes measured along the slice normal (for a gantry-tilted series this
  is smaller than the length of the affine's z column, which carries the
  shear).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ['Grid']


def _as_affine_tuple(affine) -> tuple[tuple[float, ...], ...]:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f'affine must be 4x4, got shape {a.shape}')
    if not np.allclose(a[3], (0.0, 0.0, 0.0, 1.0)):
        raise ValueError('affine last row must be (0, 0, 0, 1)')
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise ValueError('affine is singular')
    return tuple(tuple(float(v) for v in row) for row in a)


@dataclass(frozen=True)
class Grid:
    """Geometry of a ``(z, y, x)`` voxel array in patient (LPS) space.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` voxel counts.
    spacing : tuple of float
        ``(dz, dy, dx)`` in mm (``dz`` along the slice normal).
    affine : array-like, shape (4, 4)
        Maps ``(z, y, x, 1)`` voxel-centre indices to LPS mm.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]

    def __init__(self, shape, spacing, affine):
        shape = tuple(int(s) for s in shape)
        spacing = tuple(float(s) for s in spacing)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f'shape must be three positive ints, got {shape}')
        if len(spacing) != 3 or not all(
            np.isfinite(s) and s > 0 for s in spacing
        ):
            raise ValueError(
                f'spacing must be three positive numbers, got {spacing}'
            )
        object.__setattr__(self, 'shape', shape)
        object.__setattr__(self, 'spacing', spacing)
        object.__setattr__(self, 'affine', _as_affine_tuple(affine))

    @classmethod
    def axis_aligned(cls, shape, spacing, origin_lps=(0.0, 0.0, 0.0)):
        """Grid whose axes run along +S (z), +P (y) and +L (x).

        Parameters
        ----------
        shape : tuple of int
            ``(Z, Y, X)``.
        spacing : tuple of float
            ``(dz, dy, dx)`` mm.
        origin_lps : tuple of float
            LPS position of the centre of voxel ``(0, 0, 0)``.
        """
        dz, dy, dx = (float(s) for s in spacing)
        a = np.zeros((4, 4))
        a[0, 2] = dx  # x index → L
        a[1, 1] = dy  # y index → P
        a[2, 0] = dz  # z index → S
        a[:3, 3] = origin_lps
        a[3, 3] = 1.0
        return cls(shape, spacing, a)

    @property
    def matrix(self) -> np.ndarray:
        """The affine as a fresh ``(4, 4)`` float64 array."""
        return np.array(self.affine, dtype=np.float64)

    def index_to_lps(self, idx) -> np.ndarray:
        """Map voxel indices ``(..., 3)`` in ``(z, y, x)`` order to LPS mm."""
        idx = np.asarray(idx, dtype=np.float64)
        a = self.matrix
        return idx @ a[:3, :3].T + a[:3, 3]

    def lps_to_index(self, lps) -> np.ndarray:
        """Map LPS mm points ``(..., 3)`` to fractional ``(z, y, x)`` indices."""
        lps = np.asarray(lps, dtype=np.float64)
        inv = np.linalg.inv(self.matrix)
        return lps @ inv[:3, :3].T + inv[:3, 3]

    @property
    def is_axis_aligned(self) -> bool:
        """True when each voxel axis is parallel to one patient axis."""
        m = self.matrix[:3, :3]
        return bool(np.all((np.abs(m) > 1e-6).sum(axis=0) == 1))

    @property
    def nbytes_int16(self) -> int:
        """Bytes of an int16 array on this grid."""
        z, y, x = self.shape
        return 2 * z * y * x

    def to_dict(self) -> dict:
        """JSON-friendly representation."""
        return {
            'shape': list(self.shape),
            'spacing_mm': list(self.spacing),
            'affine_lps': [list(r) for r in self.affine],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        """Inverse of :meth:`to_dict`."""
        return cls(d['shape'], d['spacing_mm'], d['affine_lps'])
