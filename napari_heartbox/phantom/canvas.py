"""The phantom's drawing surface: a tissue-label volume painted with analytic shapes.

Conventions
-----------
* Shapes are described in **anatomy millimetres**, a patient frame with the
  same axis directions as DICOM LPS (+x = patient Left, +y = Posterior,
  +z = Superior) whose origin is at the body midline (x = 0), the body's
  antero-posterior centre at heart level (y = 0) and the inferior wall of the
  heart (z = 0). The acquisition maps this frame to real LPS by a translation.
* The label volume is stored like every volume in the package, ``(z, y, x)``
  with z index 0 the most inferior slice. Each array axis is parallel to one
  patient axis but may run in either direction (prone / feet-first scans flip
  rows and/or columns), so each axis carries a 1-D array of the anatomy-mm
  coordinate of every voxel **centre** (``pz``, ``py``, ``px``).
* Every shape is rasterised as *spans*: for each image row ``(z, y)`` the
  shape occupies one interval of patient x, computed analytically (ellipse,
  superellipse, quadric). A voxel is inside when its centre is inside. Only
  the shape's bounding box is touched, which keeps a 512² × 150 volume in the
  one-second range with numpy alone.
"""

from __future__ import annotations

import numpy as np

__all__ = ['Canvas', 'ellipsoid_quadric', 'rotation']

_ZCHUNK = 24  # slices painted per step


def rotation(yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0) -> np.ndarray:
    """Rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` in the LPS frame.

    Parameters
    ----------
    yaw_deg, pitch_deg, roll_deg : float
        Angles in degrees about the S (z), P (y) and L (x) axes.
    """
    a, b, c = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def ellipsoid_quadric(radii, rot=None) -> tuple[np.ndarray, np.ndarray]:
    """Quadric matrix and half bounding-box extent of a rotated ellipsoid.

    Parameters
    ----------
    radii : tuple of 3 float
        Semi-axes (mm) along the ellipsoid's own axes.
    rot : (3, 3) array, optional
        Columns are the ellipsoid axes in LPS (x, y, z) order.

    Returns
    -------
    q : (3, 3) array
        ``(p - c)ᵀ q (p - c) <= 1`` is the inside.
    half : (3,) array
        Half extent of the axis-aligned bounding box (x, y, z).
    """
    r = np.asarray(radii, float)
    rot = np.eye(3) if rot is None else np.asarray(rot, float)
    q = rot @ np.diag(1.0 / r**2) @ rot.T
    half = np.sqrt(((rot * r[None, :]) ** 2).sum(axis=1))
    return q, half


def _axis_range(coords: np.ndarray, lo: float, hi: float) -> slice:
    """Index slice of the (monotonic) centre coordinates inside ``[lo, hi]``."""
    idx = np.flatnonzero((coords >= lo) & (coords <= hi))
    if idx.size == 0:
        return slice(0, 0)
    return slice(int(idx[0]), int(idx[-1]) + 1)


class Canvas:
    """A ``(z, y, x)`` uint8 tissue-label volume plus its anatomy coordinates.

    Parameters
    ----------
    pz, py, px : 1-D arrays
        Anatomy-mm coordinate (S, P, L respectively) of each slice, row and
        column centre. ``px`` must be an arithmetic progression (either sign).
    """

    def __init__(self, pz, py, px):
        self.pz = np.asarray(pz, np.float64)
        self.py = np.asarray(py, np.float64)
        self.px = np.asarray(px, np.float64)
        self.shape = (self.pz.size, self.py.size, self.px.size)
        self.label = np.zeros(self.shape, np.uint8)
        self._x0 = float(self.px[0])
        self._sx = float(self.px[1] - self.px[0]) if self.px.size > 1 else 1.0
        self._xi = np.arange(self.px.size, dtype=np.int32)

    # ------------------------------------------------------------- spans
    def _span_mask(self, zs: slice, ys: slice, lo, hi):
        """Boolean mask over the box ``(zs, ys, xs)`` and the column slice xs.

        ``lo``/``hi`` are patient-x interval ends per row, shape
        ``(nz_box, ny_box)``; NaN or ``lo > hi`` means an empty row.
        """
        ia = (lo - self._x0) / self._sx
        ib = (hi - self._x0) / self._sx
        a = np.minimum(ia, ib)
        b = np.maximum(ia, ib)
        ok = np.isfinite(a) & np.isfinite(b) & (hi >= lo)
        i0 = np.where(ok, np.ceil(a - 1e-9), 0).astype(np.int32)
        i1 = np.where(ok, np.floor(b + 1e-9) + 1, 0).astype(np.int32)
        i0 = np.clip(i0, 0, self.shape[2])
        i1 = np.clip(i1, 0, self.shape[2])
        if not np.any(i1 > i0):
            return None, slice(0, 0)
        xa = int(i0[i1 > i0].min())
        xb = int(i1[i1 > i0].max())
        xi = self._xi[xa:xb]
        m = (xi >= i0[..., None]) & (xi < i1[..., None])
        return m, slice(xa, xb)

    def fill_rows(self, zs: slice, ys: slice, lo, hi, value, *, where=None, out=None):
        """Paint spans ``[lo, hi]`` (patient x) of the rows in ``(zs, ys)``.

        Parameters
        ----------
        zs, ys : slice
            Slice and row index ranges of the box.
        lo, hi : arrays ``(nz_box, ny_box)``
            Span ends in anatomy mm.
        value : int
            Tissue label to paint (ignored when ``out`` is given).
        where : sequence of int, optional
            Only overwrite voxels whose current label is in this set.
        out : bool array of the canvas shape, optional
            Paint ``True`` into this mask instead of the label volume.
        """
        if zs.stop - zs.start <= 0 or ys.stop - ys.start <= 0:
            return
        lo = np.broadcast_to(lo, (zs.stop - zs.start, ys.stop - ys.start))
        hi = np.broadcast_to(hi, lo.shape)
        allowed = None
        if where is not None:
            allowed = np.zeros(256, bool)
            allowed[np.asarray(where, np.uint8)] = True
        # a few slices at a time: bounded temporaries for whole-body shapes
        for k0 in range(0, lo.shape[0], _ZCHUNK):
            k1 = min(lo.shape[0], k0 + _ZCHUNK)
            zc = slice(zs.start + k0, zs.start + k1)
            m, xs = self._span_mask(zc, ys, lo[k0:k1], hi[k0:k1])
            if m is None:
                continue
            if out is not None:
                out[zc, ys, xs] |= m
                continue
            view = self.label[zc, ys, xs]
            if allowed is not None:
                m &= allowed[view]
            np.copyto(view, np.uint8(value), where=m)

    # ------------------------------------------------------------ shapes
    def zslab(self, z_lo: float, z_hi: float) -> slice:
        """Slice indices whose centres lie in ``[z_lo, z_hi]`` (anatomy mm)."""
        return _axis_range(self.pz, z_lo, z_hi)

    def extruded_ellipse(
        self, zs: slice, cx, cy, ax, ay, value, *, power=2.0, where=None, out=None
    ):
        """Paint a stack of axial (super)ellipses, one per slice of ``zs``.

        Parameters
        ----------
        zs : slice
            Slice indices.
        cx, cy, ax, ay : float or arrays ``(n_slices,)``
            Centre (L, P mm) and semi-axes per slice; ``ax <= 0`` skips.
        value : int
            Tissue label.
        power : float
            Superellipse exponent (2 = ellipse, larger = boxier).
        """
        n = zs.stop - zs.start
        if n <= 0:
            return
        cx, cy, ax, ay = (np.broadcast_to(np.asarray(v, float), (n,)) for v in (cx, cy, ax, ay))
        ymin = float(np.min(np.where(ay > 0, cy - ay, np.inf)))
        ymax = float(np.max(np.where(ay > 0, cy + ay, -np.inf)))
        if not np.isfinite(ymin):
            return
        ys = _axis_range(self.py, ymin, ymax)
        if ys.stop <= ys.start:
            return
        dy = (self.py[ys][None, :] - cy[:, None]) / np.where(ay > 0, ay, 1.0)[:, None]
        t = 1.0 - np.abs(dy) ** power
        with np.errstate(invalid='ignore'):
            half = ax[:, None] * np.where(t > 0, t, np.nan) ** (1.0 / power)
        half[(ax <= 0) | (ay <= 0)] = np.nan
        self.fill_rows(zs, ys, cx[:, None] - half, cx[:, None] + half, value, where=where, out=out)

    def quadric(self, centre, q, half, value, *, zclip=None, planes=(), where=None, out=None):
        """Paint the inside of a quadric ``(p-c)ᵀq(p-c) <= 1`` within a box.

        Parameters
        ----------
        centre : (3,) array
            Centre (x=L, y=P, z=S) in anatomy mm.
        q : (3, 3) array
            Quadric matrix (ellipsoid, or a cylinder ``(I - ddᵀ)/r²``).
        half : (3,) array
            Half extent of the bounding box to evaluate.
        zclip : (float, float), optional
            Extra limit on z.
        planes : sequence of (normal, offset)
            Keep only points with ``normal · p <= offset``.
        """
        c = np.asarray(centre, float)
        zlo, zhi = c[2] - half[2], c[2] + half[2]
        if zclip is not None:
            zlo, zhi = max(zlo, zclip[0]), min(zhi, zclip[1])
        zs = _axis_range(self.pz, zlo, zhi)
        ys = _axis_range(self.py, c[1] - half[1], c[1] + half[1])
        if zs.stop <= zs.start or ys.stop <= ys.start:
            return
        dz = self.pz[zs][:, None] - c[2]
        dy = self.py[ys][None, :] - c[1]
        a = q[0, 0]
        b = 2.0 * (q[0, 1] * dy + q[0, 2] * dz)
        cc = q[1, 1] * dy**2 + 2 * q[1, 2] * dy * dz + q[2, 2] * dz**2 - 1.0
        if a > 1e-12:
            disc = b * b - 4 * a * cc
            with np.errstate(invalid='ignore'):
                s = np.sqrt(np.where(disc > 0, disc, np.nan))
            lo = c[0] + (-b - s) / (2 * a)
            hi = c[0] + (-b + s) / (2 * a)
        else:  # degenerate along x (cylinder parallel to x): all or nothing
            inside = cc <= 0
            lo = np.where(inside, c[0] - half[0], np.nan)
            hi = np.where(inside, c[0] + half[0], np.nan)
        lo = np.maximum(lo, c[0] - half[0])
        hi = np.minimum(hi, c[0] + half[0])
        for normal, offset in planes:
            nx, ny, nz = normal
            rest = offset - ny * self.py[ys][None, :] - nz * self.pz[zs][:, None]
            if abs(nx) < 1e-12:
                bad = rest < 0
                lo = np.where(bad, np.nan, lo)
            elif nx > 0:
                hi = np.minimum(hi, rest / nx)
            else:
                lo = np.maximum(lo, rest / nx)
        self.fill_rows(zs, ys, lo, hi, value, where=where, out=out)

    def ellipsoid(self, centre, radii, value, rot=None, **kw):
        """Paint a (rotated) ellipsoid; see :meth:`quadric` for keywords."""
        q, half = ellipsoid_quadric(radii, rot)
        self.quadric(centre, q, half, value, **kw)

    def tube(self, points, radius, value, **kw):
        """Paint a circular tube of constant ``radius`` along a polyline.

        Each segment is a finite cylinder (quadric clipped by its two end
        planes); each vertex is a sphere, so joints are round.
        """
        pts = np.asarray(points, float)
        r = float(radius)
        for p in pts:
            self.ellipsoid(p, (r, r, r), value, **kw)
        for p0, p1 in zip(pts[:-1], pts[1:], strict=True):
            d = p1 - p0  # direction and length of the segment
            length = float(np.linalg.norm(d))
            if length < 1e-6:
                continue
            d = d / length
            q = (np.eye(3) - np.outer(d, d)) / r**2
            mid = (p0 + p1) / 2
            half = np.abs(d) * length / 2 + r * np.sqrt(np.clip(1 - d**2, 0, 1))
            planes = ((-d, -float(d @ p0)), (d, float(d @ p1)))
            self.quadric(mid, q, half + 1e-6, value, planes=planes, **kw)
