"""Lungs, mediastinum, diaphragm domes and the airways."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas
from .tissues import T

__all__ = ['paint_airways', 'paint_lung_disease', 'paint_lungs']


def paint_lungs(cv: Canvas, an: Anatomy) -> None:
    """The whole rib cage as lung, the mediastinum between the lungs as fat,
    and the abdomen under the two diaphragm domes (right dome higher).

    Inflation (``lung_inflation``) lowers the domes (see :class:`.Anatomy`).
    """
    zs = cv.zslab(an.rib_bottom, an.apex)
    if zs.stop <= zs.start:
        return
    z = cv.pz[zs]
    ac, bc, cc = an.cavity_profile(z)
    cv.extruded_ellipse(zs, 0.0, cc, ac, bc, T.LUNG, power=2.3, where=(T.FAT, T.MUSCLE))
    # mediastinum: a posterior band (oesophagus, aorta, azygos) in front of
    # the spine at every level, plus the superior mediastinum (great vessels,
    # trachea, thymic fat) from the sternum to the spine above the heart
    med = an.mediastinum_half_width(z)
    sp = an.spine_y(z)
    front = cc - bc
    post_front = sp - 48.0
    cv.extruded_ellipse(zs, 4.0, (post_front + sp) / 2, 20.0, (sp - post_front) / 2, T.FAT, power=3.0,
                        where=(T.LUNG,))
    sup = np.clip((z - (an.heart_top - 15.0)) / 25.0, 0, 1)
    sup = sup * an.p['mediastinal_fat_scale']
    cv.extruded_ellipse(zs, 4.0, (front + sp) / 2, med * sup, (sp - front) / 2 + 5, T.FAT, power=3.0,
                        where=(T.LUNG,))
    # paraspinal muscles and the spine bulge into the back of the cavity
    cv.extruded_ellipse(zs, 0.0, cc + bc + 5, 30.0, np.maximum(cc + bc + 5 - sp + 18, 0), T.MUSCLE,
                        power=2.5, where=(T.LUNG,))
    # diaphragm domes: everything below the dome surfaces is abdomen (fat,
    # organs painted later). Each dome is the top of an ellipsoid continued
    # downwards as a cylinder.
    for side, top in ((-1, an.dome_r), (1, an.dome_l)):
        rz = 110.0
        cz = top - rz
        zd = cv.zslab(an.body_bottom, top)
        zz = cv.pz[zd]
        a_c, b_c, c_c = an.cavity_profile(np.minimum(zz, cz))
        k = np.sqrt(np.clip(1 - ((zz - cz) / rz) ** 2, 0, 1))
        k = np.where(zz < cz, 1.0, k)
        cv.extruded_ellipse(zd, side * 0.45 * a_c, c_c - 0.1 * b_c, a_c * 0.95 * k, b_c * 1.1 * k, T.FAT,
                            where=(T.LUNG,))
    # central tendon: the heart rests on the diaphragm, so there is no lung
    # between the inferior heart wall and the abdomen below it: a plateau
    # under the heart, a little wider than the sac (edge rounded over 1.5 mm),
    # continued downwards
    if an.tendon is not None:
        tx, ty, ta, tb, _ = an.tendon
        zd = cv.zslab(an.body_bottom, 0.0)
        k = 1.2 * np.sqrt(np.clip(-cv.pz[zd] / 1.5, 0, 1))
        cv.extruded_ellipse(zd, tx, ty, ta * k, tb * k, T.FAT, power=3.0, where=(T.LUNG,))
        # the diaphragm itself: a muscle sheet ``diaphragm_gap_mm`` thick
        zm = cv.zslab(-float(an.p['diaphragm_gap_mm']), 0.0)
        cv.extruded_ellipse(zm, tx, ty, 1.2 * ta, 1.2 * tb, T.MUSCLE, power=3.0, where=(T.FAT,))
    # the liver's medial shoulder against the heart's right-inferior border
    # (Anatomy.liver_contact): abdomen, not lung, beside the heart's lowest slices
    zd = cv.zslab(an.body_bottom, float(an.p['liver_contact_mm']))
    if zd.stop > zd.start:
        cx, cy, ha, hb = an.liver_contact(cv.pz[zd])
        cv.extruded_ellipse(zd, cx, cy, ha, hb, T.FAT, power=3.0, where=(T.LUNG,))
    # no lung below the deepest costophrenic recess
    zl = cv.zslab(an.body_bottom, min(an.dome_l, an.dome_r) - 75)
    if zl.stop > zl.start:
        z = cv.pz[zl]
        a, b, c = an.body_profile(z)
        cv.extruded_ellipse(zl, 0.0, c, a, b, T.FAT, where=(T.LUNG,))


def paint_airways(cv: Canvas, an: Anatomy) -> None:
    """Trachea from the neck to the carina, the two main bronchi, and the neck's
    thyroid lobes and internal jugular veins."""
    y_tr = float(an.spine_y(an.carina)) - 35.0
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
    # neck: thyroid lobes beside the trachea, internal jugular veins
    yt = y_tr - 6.0
    for side in (-1, 1):
        cv.ellipsoid((side * 17.0, yt, an.inlet + 38.0), (11.0, 9.0, 24.0), T.THYROID,
                     where=(T.FAT, T.MUSCLE))
        cv.tube([(side * 32.0, yt - 4.0, an.neck_top), (side * 30.0, yt - 2.0, an.inlet + 5.0)], 6.5,
                T.BLOOD_VEIN, where=(T.FAT, T.MUSCLE))


def paint_lung_disease(cv: Canvas, an: Anatomy, rng: np.random.Generator, prone: bool) -> None:
    """Pleural effusions (dependent fluid layers at the lung bases) and patchy
    opacities (ground glass or consolidation, e.g. pneumonia)."""
    p = an.p
    depth = p['pleural_effusion_mm']
    if depth > 0:
        # fluid lies on the dependent side: posterior when supine, anterior when prone
        zs = cv.zslab(an.rib_bottom, an.dome_r + 60.0)
        z = cv.pz[zs]
        ac, bc, cc = an.cavity_profile(z)
        fade = np.clip((an.dome_r + 60.0 - z) / 60.0, 0, 1)
        h = depth * fade
        sign = -1.0 if prone else 1.0
        for side in (-1, 1):
            if rng.uniform() < 0.3:
                continue  # unilateral effusion
            yc = cc + sign * (bc - h / 2)
            cv.extruded_ellipse(zs, side * 0.55 * ac, yc, 0.5 * ac, np.maximum(h / 2 + 8, 0) * (h > 1),
                                T.WATER, power=3.0, where=(T.LUNG,))
    dep = float(p['dependent_mm'])
    if dep > 0:
        # dependent atelectasis: per side, an ellipse centred on the cavity's
        # dependent wall (only its inner half lies in the lung), widest at
        # 0.22 × the cavity half-width from the midline, so it fills the
        # paravertebral gutter and thins out laterally; thinner towards its top
        top = an.dome_r + float(p['dependent_height_mm'])
        zs = cv.zslab(an.rib_bottom, top)
        if zs.stop > zs.start:
            z = cv.pz[zs]
            ac, bc, cc = an.cavity_profile(z)
            h = dep * (0.35 + 0.65 * np.clip((top - z) / 60.0, 0, 1))
            sign = -1.0 if prone else 1.0
            for side in (-1, 1):
                if rng.uniform() < 0.2:
                    continue  # one-sided
                cv.extruded_ellipse(zs, side * 0.22 * ac, cc + sign * bc, 0.45 * ac, h * (bc > 0), T.DEPENDENT,
                                    power=2.0, where=(T.LUNG,))
    for _ in range(int(p['lung_opacities'])):
        side = rng.choice([-1.0, 1.0])
        z = rng.uniform(an.dome_r - 20.0, an.apex - 30.0)
        ac, bc, cc = (float(v) for v in an.cavity_profile(z))
        if ac < 20:
            continue
        c = (side * rng.uniform(0.35, 0.8) * ac, cc + rng.uniform(-0.6, 0.8) * bc, z)
        r = rng.uniform(8, 35, 3)
        cv.ellipsoid(c, r, T.OPACITY, where=(T.LUNG,))
