"""`Sector`: the one type for a heart box.

A sector is an axis-aligned box on a CT voxel grid, stored as **half-open**
voxel ranges ``z = [z0, z1)``, ``y = [y0, y1)``, ``x = [x0, x1)`` in array
order (see :mod:`napari_heartbox.grid` for the axis conventions). So
``volume.hu[z0:z1, y0:y1, x0:x1]`` is exactly the voxels inside the box.

In patient space the box faces lie on voxel **edges**: voxel ``z0`` spans
index ``[z0 - 0.5, z0 + 0.5]``, so the inferior face is at index
``z0 - 0.5`` and the superior face at ``z1 - 0.5``.

``found=False`` is a valid answer ("no heart in view"); such a sector has
empty ranges and no patient box.

The JSON form follows the ``heartbox.sector/1`` schema, whose single source
is ``napari_heartbox/schemas/sector.schema.json`` (documented in
``docs/sector-schema.md``). No patient name, ID or birth date is ever part
of it.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np

from .grid import Grid

__all__ = ['SCHEMA_ID', 'Sector', 'box_iou_mm', 'sector_schema']

SCHEMA_ID = 'heartbox.sector/1'

Range = tuple[int, int]


def sector_schema() -> dict:
    """Return the ``heartbox.sector/1`` JSON Schema (a dict)."""
    text = (
        resources.files('napari_heartbox')
        .joinpath('schemas/sector.schema.json')
        .read_text(encoding='utf-8')
    )
    return json.loads(text)


def _check_range(name: str, r, n: int) -> Range:
    a, b = (int(v) for v in r)
    if not 0 <= a < b <= n:
        raise ValueError(
            f'{name} range [{a}, {b}) is not a non-empty half-open range '
            f'inside [0, {n})'
        )
    return (a, b)


@dataclass(frozen=True)
class Sector:
    """An axis-aligned heart box on a CT grid (immutable).

    Parameters
    ----------
    grid : Grid
        The voxel grid the ranges refer to.
    z, y, x : tuple of int
        Half-open voxel ranges ``[start, stop)`` in array order. Ignored
        (stored as ``(0, 0)``) when ``found`` is False.
    found : bool
        False when no heart is in view.
    confidence : float
        In ``[0, 1]``: the model's calibrated probability that the box is
        right (1.0 for a box drawn by a person).
    series_uid : str or None
        SeriesInstanceUID of the CT the box belongs to.
    model_sha256 : str or None
        SHA-256 of the ONNX model that proposed it (None if hand-made).
    note : str or None
        Why there is no box, when the reason is the input rather than the
        model (e.g. a scan too short along z to hold a heart).
    """

    grid: Grid
    z: Range = (0, 0)
    y: Range = (0, 0)
    x: Range = (0, 0)
    found: bool = True
    confidence: float = 1.0
    series_uid: str | None = None
    model_sha256: str | None = None
    note: str | None = None

    def __post_init__(self):
        if not isinstance(self.grid, Grid):
            raise TypeError('grid must be a napari_heartbox.Grid')
        conf = float(self.confidence)
        if not 0.0 <= conf <= 1.0 or math.isnan(conf):
            raise ValueError(f'confidence must be in [0, 1], got {conf}')
        object.__setattr__(self, 'confidence', conf)
        object.__setattr__(self, 'found', bool(self.found))
        if self.found:
            for name, n in zip('zyx', self.grid.shape, strict=True):
                r = _check_range(name, getattr(self, name), n)
                object.__setattr__(self, name, r)
        else:
            for name in 'zyx':
                object.__setattr__(self, name, (0, 0))

    # ------------------------------------------------------------------ build
    @classmethod
    def not_found(cls, grid: Grid, confidence: float = 0.0, **kw) -> Sector:
        """A ``found=False`` sector ("no heart in view")."""
        kw.pop('found', None)
        return cls(grid, found=False, confidence=confidence, **kw)

    @classmethod
    def from_inclusive(cls, grid: Grid, z, y, x, **kw) -> Sector:
        """Build from inclusive ``[first, last]`` voxel indices."""
        return cls(
            grid,
            (z[0], z[1] + 1),
            (y[0], y[1] + 1),
            (x[0], x[1] + 1),
            **kw,
        )

    @classmethod
    def from_patient_mm(cls, grid: Grid, lps_min, lps_max, **kw) -> Sector:
        """Voxel box on ``grid`` closest to an LPS box given at voxel edges.

        Each face is snapped to the nearest voxel edge and the result is
        clipped to the grid; raises ``ValueError`` if nothing is left.
        """
        lo = np.asarray(lps_min, float)
        hi = np.asarray(lps_max, float)
        corners = np.array(
            [
                [(hi if c else lo)[i] for i, c in enumerate(bits)]
                for bits in itertools.product((0, 1), repeat=3)
            ]
        )
        idx = grid.lps_to_index(corners)
        # faces at edges: index e = i - 0.5  →  voxel boundary i = e + 0.5
        start = np.floor(idx.min(axis=0) + 0.5 + 0.5).astype(int)
        stop = np.floor(idx.max(axis=0) + 0.5 + 0.5).astype(int)
        start = np.clip(start, 0, grid.shape)
        stop = np.clip(stop, 0, grid.shape)
        return cls(grid, *[(int(a), int(b)) for a, b in zip(start, stop, strict=True)], **kw)

    # -------------------------------------------------------------- geometry
    @property
    def ranges(self) -> tuple[Range, Range, Range]:
        """``(z, y, x)`` half-open ranges."""
        return (self.z, self.y, self.x)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Slices that select the box from a ``(z, y, x)`` array."""
        return tuple(slice(a, b) for a, b in self.ranges)

    @property
    def size_voxels(self) -> tuple[int, int, int]:
        """Number of voxels along ``(z, y, x)``."""
        return tuple(b - a for a, b in self.ranges)

    @property
    def size_mm(self) -> tuple[float, float, float]:
        """Extent along ``(z, y, x)`` in mm (voxel count × spacing)."""
        return tuple(
            n * s for n, s in zip(self.size_voxels, self.grid.spacing, strict=True)
        )

    @property
    def volume_ml(self) -> float:
        """Box volume in millilitres."""
        return float(np.prod(self.size_mm) / 1000.0)

    def corners_index(self) -> np.ndarray:
        """The 8 box corners in fractional ``(z, y, x)`` index space (edges)."""
        return np.array(
            [
                [r[b] - 0.5 for r, b in zip(self.ranges, bits, strict=True)]
                for bits in itertools.product((0, 1), repeat=3)
            ],
            dtype=np.float64,
        )

    def patient_mm(self) -> tuple[np.ndarray, np.ndarray] | None:
        """LPS ``(min, max)`` corners of the box in mm, at voxel edges.

        Returns None when ``found`` is False. For an oblique grid this is the
        LPS bounding box of the 8 transformed corners.
        """
        if not self.found:
            return None
        pts = self.grid.index_to_lps(self.corners_index())
        return pts.min(axis=0), pts.max(axis=0)

    def contains_index(self, zyx) -> bool:
        """True if voxel index ``(z, y, x)`` is inside the box."""
        return self.found and all(
            a <= int(i) < b for i, (a, b) in zip(zyx, self.ranges, strict=True)
        )

    # ------------------------------------------------------------ operations
    def with_ranges(self, z=None, y=None, x=None, **kw) -> Sector:
        """Copy with some ranges (or other fields) replaced."""
        return replace(
            self,
            z=self.z if z is None else z,
            y=self.y if y is None else y,
            x=self.x if x is None else x,
            found=kw.pop('found', True),
            **kw,
        )

    def expand_mm(self, margin_mm) -> Sector:
        """Grow every face outwards by ``margin_mm`` (clipped to the grid).

        Parameters
        ----------
        margin_mm : float or tuple of 3 floats
            Margin per face, one value or one per ``(z, y, x)`` axis. Each is
            rounded *up* to whole voxels on that axis (so the box never
            shrinks below the requested margin). Negative margins shrink
            (rounded towards zero voxels) but never below one voxel.
        """
        if not self.found:
            return self
        m = np.broadcast_to(np.asarray(margin_mm, dtype=float), (3,))
        new = []
        for (a, b), mm, sp, n in zip(
            self.ranges, m, self.grid.spacing, self.grid.shape, strict=True
        ):
            k = math.ceil(mm / sp - 1e-9) if mm >= 0 else -math.floor(-mm / sp + 1e-9)
            a2, b2 = max(0, a - k), min(n, b + k)
            if a2 >= b2:  # shrunk to nothing: keep the centre voxel
                c = (a + b - 1) // 2
                a2, b2 = c, c + 1
            new.append((a2, b2))
        return self.with_ranges(*new)

    def intersection(self, other: Sector) -> Sector | None:
        """The overlap of two sectors on the same grid, or None if disjoint."""
        self._check_same_grid(other)
        if not (self.found and other.found):
            return None
        rs = []
        for (a, b), (c, d) in zip(self.ranges, other.ranges, strict=True):
            lo, hi = max(a, c), min(b, d)
            if lo >= hi:
                return None
            rs.append((lo, hi))
        return self.with_ranges(*rs)

    def iou(self, other: Sector) -> float:
        """Intersection over union of two sectors on the same grid.

        Two ``found=False`` sectors agree perfectly (1.0); one found and one
        not give 0.0.
        """
        self._check_same_grid(other)
        if not self.found and not other.found:
            return 1.0
        inter = self.intersection(other)
        if inter is None:
            return 0.0
        vi = int(np.prod(inter.size_voxels))
        va = int(np.prod(self.size_voxels))
        vb = int(np.prod(other.size_voxels))
        return vi / (va + vb - vi)

    def _check_same_grid(self, other: Sector) -> None:
        if self.grid.shape != other.grid.shape or not np.allclose(
            self.grid.matrix, other.grid.matrix, atol=1e-4
        ):
            raise ValueError('sectors are on different grids')

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The ``heartbox.sector/1`` JSON object for this sector."""
        pm = self.patient_mm()
        d = {
            'schema': SCHEMA_ID,
            'found': self.found,
            'confidence': round(self.confidence, 6),
            'voxel': (
                {k: list(getattr(self, k)) for k in 'zyx'} if self.found else None
            ),
            'patient_mm': (
                {
                    'min': [round(float(v), 4) for v in pm[0]],
                    'max': [round(float(v), 4) for v in pm[1]],
                }
                if pm is not None
                else None
            ),
            'shape': list(self.grid.shape),
            'spacing_mm': [round(s, 6) for s in self.grid.spacing],
            'affine_lps': [[round(v, 6) for v in r] for r in self.grid.affine],
            'series_uid': self.series_uid,
            'model_sha256': self.model_sha256,
        }
        if self.note:
            d['note'] = self.note
        return d

    def to_json(self, **kw) -> str:
        """Serialise to a JSON string (see :meth:`to_dict`)."""
        kw.setdefault('indent', 2)
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict, grid: Grid | None = None) -> Sector:
        """Parse a ``heartbox.sector/1`` object.

        Parameters
        ----------
        d : dict
            The JSON object.
        grid : Grid, optional
            Grid to attach; by default rebuilt from ``shape``, ``spacing_mm``
            and ``affine_lps``. When given, its shape must match ``shape``.
        """
        if not isinstance(d, dict) or d.get('schema') != SCHEMA_ID:
            got = d.get('schema') if isinstance(d, dict) else type(d).__name__
            raise ValueError(f'not a {SCHEMA_ID} object (schema: {got!r})')
        if grid is None:
            grid = Grid(d['shape'], d['spacing_mm'], d['affine_lps'])
        elif list(grid.shape) != list(d['shape']):
            raise ValueError(
                f'sector shape {d["shape"]} does not match the volume '
                f'{list(grid.shape)}'
            )
        kw = {
            'found': bool(d['found']),
            'confidence': float(d.get('confidence', 1.0)),
            'series_uid': d.get('series_uid'),
            'model_sha256': d.get('model_sha256'),
            'note': d.get('note'),
        }
        if not kw['found']:
            return cls.not_found(grid, **kw)
        v = d['voxel']
        return cls(grid, tuple(v['z']), tuple(v['y']), tuple(v['x']), **kw)

    @classmethod
    def from_json(cls, text: str, grid: Grid | None = None) -> Sector:
        """Parse a JSON string (see :meth:`from_dict`)."""
        return cls.from_dict(json.loads(text), grid)

    def __repr__(self) -> str:
        if not self.found:
            return f'Sector(found=False, confidence={self.confidence:.3f})'
        return (
            f'Sector(z={list(self.z)}, y={list(self.y)}, x={list(self.x)}, '
            f'confidence={self.confidence:.3f})'
        )


def box_iou_mm(a_min, a_max, b_min, b_max) -> float:
    """IoU of two axis-aligned boxes given by their ``min``/``max`` corners.

    Works on any consistent coordinates (e.g. LPS mm); used to compare boxes
    that live on different grids.
    """
    a_min, a_max, b_min, b_max = (
        np.asarray(v, float) for v in (a_min, a_max, b_min, b_max)
    )
    inter = np.clip(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0, None)
    vi = float(np.prod(inter))
    va = float(np.prod(a_max - a_min))
    vb = float(np.prod(b_max - b_min))
    union = va + vb - vi
    return vi / union if union > 0 else 0.0
