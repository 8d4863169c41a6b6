"""Lungs, mediastinum, diaphragm domes and the airways."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas
from .tissues import T

__all__ = ['paint_airways', 'paint_lungs']


def paint_lungs(cv: Canvas, an: Anatomy) -> None:
    """Two lungs inside the rib cage, the mediastinum between them, and the
    abdomen under the two diaphragm domes (right dome higher than left).

    Inflation (``lung_inflation``) lowers the domes and darkens the lungs.
    """
    zs = cv.zslab(an.rib_bottom, an.apex)
    if zs.stop <= zs.start:
        return
    z = cv.pz[zs]
    ac, bc, cc = an.cavity_profile(z)
    med = an.mediastinum_half_width(z)
    lung_a = np.maximum((ac - med) / 2.0, 0)
    lung_a = np.where(lung_a > 4, lung_a, 0)
    for side in (-1, 1):
        cx = side * (med + lung_a)
        # lungs are D-shaped: boxy medially and posteriorly
        cv.extruded_ellipse(zs, cx, cc + 3, lung_a + 2, bc, T.LUNG, power=2.4,
                            where=(T.FAT, T.MUSCLE))
    # diaphragm domes: everything below the dome surfaces is abdomen (fat,
    # organs painted later). Each dome is the top of an ellipsoid continued
    # downwards as a cylinder.
    for side, top in ((-1, an.dome_r), (1, an.dome_l)):
        rz = 95.0
        cz = top - rz
        zd = cv.zslab(an.body_bottom, top)
        zz = cv.pz[zd]
        a_c, b_c, c_c = an.cavity_profile(np.minimum(zz, cz))
        k = np.sqrt(np.clip(1 - ((zz - cz) / rz) ** 2, 0, 1))
        k = np.where(zz < cz, 1.0, k)
        rx = (a_c * 1.05) * k
        ry = (b_c * 1.15) * k
        cv.extruded_ellipse(zd, side * 0.5 * a_c, c_c + 10, rx, ry, T.FAT, where=(T.LUNG,))
    # costophrenic recesses end: nothing of the lung below the rib cage bottom
    zl = cv.zslab(an.body_bottom, an.dome_l - 70)
    if zl.stop > zl.start:
        z = cv.pz[zl]
        a, b, c = an.body_profile(z)
        cv.extruded_ellipse(zl, 0.0, c, a, b, T.FAT, where=(T.LUNG,))


def paint_airways(cv: Canvas, an: Anatomy) -> None:
    """Trachea from the neck to the carina, and the two main bronchi."""
    y_tr = float(an.spine_y(an.carina)) - 38.0
    top = an.neck_top
    car = np.array([2.0, y_tr, an.carina])
    path = [(0.0, y_tr - 10, top), (0.0, y_tr - 5, an.apex), car]
    cv.tube(path, 10.0, T.MUSCLE)
    cv.tube(path, 8.0, T.AIRWAY)
    for side in (-1, 1):
        end = car + np.array([side * 45.0, 10.0, -30.0 - 8 * (side < 0)])
        far = end + np.array([side * 25.0, 15.0, -35.0])
        cv.tube([car, end, far], 7.0, T.MUSCLE, where=(T.LUNG, T.FAT, T.MUSCLE))
        cv.tube([car, end, far], 5.0, T.AIRWAY, where=(T.LUNG, T.FAT, T.MUSCLE))
