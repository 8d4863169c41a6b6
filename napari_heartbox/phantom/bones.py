"""Skeleton: vertebrae with discs and posterior elements, ribs with costal
cartilage, sternum, scapulae, clavicles and the iliac wings."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas, rotation
from .tissues import T

__all__ = ['paint_bones']

_PITCH = 27.0  # mm per vertebra (body + disc), thoracic/lumbar average
_DISC = 6.0


def _spine(cv: Canvas, an: Anatomy) -> None:
    zs = cv.zslab(an.body_bottom, an.neck_top)
    if zs.stop <= zs.start:
        return
    z = cv.pz[zs]
    y = an.spine_y(z)
    # vertebral bodies grow towards the lumbar spine; narrower in the neck
    r = np.interp(z, [an.dome_r - 300, an.dome_r, an.apex, an.apex + 60], [25.0, 20.0, 15.0, 11.0])
    phase = np.mod(z - an.carina, _PITCH)
    disc = phase < _DISC
    bone = ~disc
    cv.extruded_ellipse(zs, 0.0, y, np.where(bone, r * 1.1, 0), np.where(bone, r, 0), T.BONE_CORTEX)
    cv.extruded_ellipse(zs, 0.0, y, np.where(bone, r * 1.1 - 2.5, 0), np.where(bone, r - 2.5, 0), T.BONE_MARROW)
    cv.extruded_ellipse(zs, 0.0, y, np.where(disc, r * 1.1, 0), np.where(disc, r, 0), T.DISC)
    # posterior arch: ring around the canal, spinous and transverse processes
    arch = bone & (phase > _DISC + 4)
    yc = y + r + 9.0
    ra = np.where(arch, 15.0, 0)
    cv.extruded_ellipse(zs, 0.0, yc + 3, np.where(arch, 42.0, 0), np.where(arch, 7.0, 0), T.BONE_CORTEX)
    cv.extruded_ellipse(zs, 0.0, yc, ra, ra, T.BONE_CORTEX)
    cv.extruded_ellipse(zs, 0.0, yc + 22, np.where(arch, 4.5, 0), np.where(arch, 18.0, 0), T.BONE_CORTEX)
    cv.extruded_ellipse(zs, 0.0, yc + 22, np.where(arch, 2.5, 0), np.where(arch, 15.0, 0), T.BONE_MARROW)
    cv.extruded_ellipse(zs, 0.0, yc, 9.0, 8.5, T.CSF)


def _rib_path(an: Anatomy, z_head: float, side: int, theta_end: float, drop: float):
    """Points of one rib from its head at the spine to its anterior end."""
    th = np.linspace(0.18, theta_end, 9)
    zz = z_head - drop * (1 - np.cos(th)) / 2
    a, b, c = an.cavity_profile(zz)
    a = np.maximum(a, 30.0) + 7.0
    b = np.maximum(b, 30.0) + 7.0
    # follow the cavity's superellipse (power 2.3) so ribs hug the lung surface
    e = 2.0 / 2.3
    x = side * a * np.abs(np.sin(th)) ** e
    y = c + b * np.sign(np.cos(th)) * np.abs(np.cos(th)) ** e
    return np.stack([x, y, zz], axis=1)


def _ribs(cv: Canvas, an: Anatomy, rng: np.random.Generator) -> None:
    drop = 55.0 + 25.0 * rng.uniform()
    for k in range(12):
        z_head = an.apex - 8.0 - k * 24.5
        if z_head + 10 < cv.pz.min() - drop - 30 or z_head - drop - 30 > cv.pz.max() + 10:
            continue  # this rib (with its cartilage) is outside the slices
        end = np.pi * (0.8 if k < 7 else 0.72 if k < 10 else 0.5)
        for side in (-1, 1):
            pts = _rib_path(an, z_head, side, end, drop * (0.6 if k == 0 else 1.0))
            cv.tube(pts, 5.0, T.BONE_CORTEX)
            cv.tube(pts, 3.0, T.BONE_MARROW)
            if k < 10:  # costal cartilage towards the sternum
                tip = pts[-1]
                a, b, c = an.cavity_profile(tip[2])
                st = np.array([side * 14.0, float(c - b) - 4.0, tip[2] - (4.0 if k < 7 else 25.0)])
                cv.tube([tip, st], 4.5, T.CARTILAGE)


def _sternum(cv: Canvas, an: Anatomy) -> None:
    zs = cv.zslab(an.sternum_bottom, an.inlet)
    if zs.stop <= zs.start:
        return
    z = cv.pz[zs]
    a, b, c = an.cavity_profile(z)
    y = c - b - 9.0
    w = np.where(z > an.inlet - 45, 26.0, 15.0)
    cv.extruded_ellipse(zs, 0.0, y, w, 7.5, T.BONE_CORTEX)
    cv.extruded_ellipse(zs, 0.0, y, w - 2.0, 5.5, T.BONE_MARROW)


def _shoulder_girdle(cv: Canvas, an: Anatomy) -> None:
    zc = an.apex - 55.0
    a, b, c = an.cavity_profile(zc)
    a0, b0, c0 = an.body_profile(an.inlet)
    ab, bb, cb = (float(v) for v in an.body_profile(zc))
    for side in (-1, 1):
        # scapula: a thin plate on the posterior chest wall, under the
        # posterior muscles, lying along the body surface (tangent there)
        t = 0.5
        x0, y0 = t * ab, bb * np.sqrt(1 - t**2)
        inset = 2.0 + 0.5 * an.p['fat_mm'] + 22.0
        ny_, nx_ = y0 / bb**2, x0 / ab**2
        nrm = np.hypot(nx_, ny_)
        px = side * (x0 - inset * nx_ / nrm)
        py = cb + y0 - inset * ny_ / nrm
        yaw = -side * np.degrees(np.arctan2(nx_, ny_))
        rot = rotation(yaw)
        cv.ellipsoid((px, py, zc), (48.0, 5.0, 75.0), T.BONE_CORTEX, rot=rot)
        cv.ellipsoid((px, py, zc), (45.0, 2.5, 72.0), T.BONE_MARROW, rot=rot)
        # clavicle from the sternal notch to the acromion
        cl = [(side * 18.0, float(c0 - b0) + 22.0, an.inlet + 5), (side * 60.0, float(c0 - b0) + 20.0, an.inlet + 15),
              (side * float(a0) * 0.85, float(c0) + 5.0, an.apex + 10)]
        cv.tube(cl, 7.0, T.BONE_CORTEX)
        cv.tube(cl, 4.5, T.BONE_MARROW)


def _pelvis(cv: Canvas, an: Anatomy) -> None:
    top = an.dome_r - 300.0
    for side in (-1, 1):
        rot = rotation(side * 35.0)
        c = (side * 95.0, 35.0, top - 60.0)
        cv.ellipsoid(c, (55.0, 11.0, 65.0), T.BONE_CORTEX, rot=rot)
        cv.ellipsoid(c, (52.0, 7.5, 62.0), T.BONE_MARROW, rot=rot)


def paint_bones(cv: Canvas, an: Anatomy, rng: np.random.Generator) -> None:
    """Paint the whole skeleton (after soft tissue and organs)."""
    _spine(cv, an)
    _ribs(cv, an, rng)
    _sternum(cv, an)
    _shoulder_girdle(cv, an)
    _pelvis(cv, an)
