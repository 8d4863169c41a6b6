"""Body outline: skin, subcutaneous fat, muscle wall, breasts, arms and the table."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas
from .tissues import T

__all__ = ['paint_arms', 'paint_body', 'paint_breasts', 'paint_table']


def paint_body(cv: Canvas, an: Anatomy) -> None:
    """Skin, subcutaneous fat and the muscle layer as nested superellipses.

    Fat is thicker anteriorly and laterally in the abdomen; the posterior
    muscle layer (paraspinal) is thick.
    """
    p = an.p
    zs = cv.zslab(an.body_bottom, an.neck_top)
    z = cv.pz[zs]
    a, b, c = an.body_profile(z)
    fat = p['fat_mm'] * np.interp(z, [an.dome_r - 200, an.dome_r, an.apex + 40], [1.3, 1.0, 0.35])
    mus = p['muscle_mm'] * np.interp(z, [an.apex, an.apex + 40], [1.0, 2.2])
    cv.extruded_ellipse(zs, 0.0, c, a, b, T.SKIN, power=2.3)
    cv.extruded_ellipse(zs, 0.0, c, a - 2, b - 2, T.FAT, power=2.3)
    cv.extruded_ellipse(zs, 0.0, c + fat * 0.15, a - 2 - fat, b - 2 - fat * 0.85, T.MUSCLE, power=2.2)
    # the part inside the muscle ring is visceral/mediastinal fat by default
    inner_a = a - 2 - fat - mus
    inner_b = b - 2 - fat - mus
    # paraspinal muscles along the whole back (erector spinae)
    yb = c + b - 2 - 0.5 * fat
    cv.extruded_ellipse(zs, 0.0, yb - 32.0, np.minimum(48.0, 0.32 * a), 34.0, T.MUSCLE, power=2.5,
                        where=(T.FAT,))
    inner = np.where(z > an.rib_bottom + 40, T.MUSCLE, T.FAT)  # chest wall vs abdominal fat
    for tissue in (T.MUSCLE, T.FAT):
        sel = inner == tissue
        cv.extruded_ellipse(zs, 0.0, c + fat * 0.15, np.where(sel, np.maximum(inner_a, 0), 0),
                            np.maximum(inner_b, 0), tissue, power=2.2)


def paint_breasts(cv: Canvas, an: Anatomy) -> None:
    """Breasts on the anterior chest wall (size 0 paints nothing)."""
    bs = an.p['breast_size']
    if bs <= 0:
        return
    zc = an.heart_height * 0.45 + 15
    a, b, c = an.body_profile(zc)
    for side in (-1, 1):
        cx = side * 0.47 * an.W
        cy = float(c - b) + 14.0
        r = (45.0 + 30.0 * bs, 14.0 + 30.0 * bs, 40.0 + 25.0 * bs)  # supine: flattened
        cv.ellipsoid((cx, cy, zc), r, T.FAT, where=(T.AIR, T.SKIN))
        cv.ellipsoid((cx + side * 4, cy - r[1] * 0.3, zc), (r[0] * 0.6, r[1] * 0.5, r[2] * 0.6),
                     T.GLAND, where=(T.FAT,))


def paint_arms(cv: Canvas, an: Anatomy) -> None:
    """Arms beside the chest when they are down (arms up: out of the chest FOV)."""
    if an.p['arms'] != 'down':
        return
    top = an.apex + 10
    zs = cv.zslab(an.dome_r - 350, top)
    z = cv.pz[zs]
    a, b, c = an.body_profile(z)
    r = 42.0 + 0.25 * an.p['fat_mm']
    for side in (-1, 1):
        cx = side * (a + r + 3)
        cv.extruded_ellipse(zs, cx, c, r, r * 1.1, T.SKIN, where=(T.AIR,))
        cv.extruded_ellipse(zs, cx, c, r - 2, r * 1.1 - 2, T.FAT, where=(T.SKIN,))
        cv.extruded_ellipse(zs, cx, c, r - 12, r * 1.1 - 14, T.MUSCLE, where=(T.FAT,))
        hx = cx + side * 2
        cv.extruded_ellipse(zs, hx, c + 5, 12.0, 12.0, T.BONE_CORTEX)
        cv.extruded_ellipse(zs, hx, c + 5, 8.0, 8.0, T.BONE_MARROW)


def paint_table(cv: Canvas, an: Anatomy, prone: bool) -> None:
    """The couch: a hollow carbon slab plus a foam mattress behind the patient.

    In anatomy coordinates the table lies posterior of the body for a supine
    scan and anterior for a prone one (the patient lies on their front).
    """
    p = an.p
    if not p['table']:
        return
    zs = slice(0, cv.shape[0])
    a, b, c = an.body_profile(cv.pz)
    if prone:
        surface = float(np.min(c - b)) - 15.0 * an.p['breast_size']
        sign = -1.0
    else:
        surface = float(np.max(c + b))
        sign = 1.0
    gap = p['table_gap_mm']
    mat = p['mattress_mm']
    y_mat = surface + sign * (gap + mat / 2)
    y_tab = surface + sign * (gap + mat + 14.0)
    if mat > 0:
        cv.extruded_ellipse(zs, 0.0, y_mat, 230.0, mat / 2, T.MATTRESS, power=8, where=(T.AIR,))
    cv.extruded_ellipse(zs, 0.0, y_tab, 240.0, 14.0, T.TABLE, power=8, where=(T.AIR,))
    cv.extruded_ellipse(zs, 0.0, y_tab, 234.0, 10.0, T.AIR, power=8, where=(T.TABLE,))
