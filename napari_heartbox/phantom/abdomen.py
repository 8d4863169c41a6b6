"""Upper abdomen under the diaphragm: liver, stomach, spleen, kidneys, bowel,
psoas muscles. Painted only into abdominal fat (``where=FAT``) so they never
cross the diaphragm into the lungs or the body wall."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas, rotation
from .tissues import T

__all__ = ['paint_abdomen']


def paint_abdomen(cv: Canvas, an: Anatomy, rng: np.random.Generator) -> None:
    """Paint the abdominal organs for one patient."""
    if cv.pz.min() > an.dome_r + 5:
        return
    a, b, c = an.cavity_profile(an.dome_r - 60)
    a, b, c = float(a), float(b), float(c)
    only = (T.FAT,)
    # liver: as in real CT, the right lobe fills the whole right dome up to its
    # top (a round soft-tissue blob surrounded by lung on the highest axial
    # slices), the bulk fills the front-right upper abdomen, and the left lobe
    # crosses the midline directly under the heart, anteriorly, up into the
    # left dome. Same dome ellipsoid as in ``thorax.paint_lungs`` (rz 110 mm),
    # shrunk by the diaphragm's thickness.
    rz, dia = 110.0, 5.0
    a_d, b_d, c_d = (float(v) for v in an.cavity_profile(an.dome_r - rz))
    cv.ellipsoid((-0.45 * a_d, c_d - 0.1 * b_d, an.dome_r - rz), (0.95 * a_d - dia, 1.1 * b_d - dia, rz - dia),
                 T.LIVER, zclip=(an.dome_r - 150.0, an.dome_r), where=only)
    lc = (-0.3 * a, c + 0.0 * b, an.dome_r - 95.0)
    cv.ellipsoid(lc, (0.72 * a, 0.95 * b, 95.0), T.LIVER, where=only)
    cv.ellipsoid((0.12 * a, c - 0.4 * b, an.dome_l - 30.0), (0.55 * a, 0.5 * b, 40.0), T.LIVER,
                 rot=rotation(-15), where=only)
    # the left lobe also fills the anterior, right part of the central tendon
    # under the heart (``liver_under_heart`` of its LR extent), up to the
    # diaphragm sheet: in real CT the heart's inferior wall lies on the liver. A
    # plateau (edge rounded over 10 mm) down to 70 mm below the heart.
    if an.tendon is not None:
        tx, ty, ta, tb, top = an.tendon
        f = float(an.p['liver_under_heart'])
        zt = cv.zslab(-70.0, top)
        k = np.sqrt(np.clip((top - cv.pz[zt]) / 10.0, 0, 1))
        cv.extruded_ellipse(zt, tx - ta + f * ta, ty - 0.1 * tb, f * ta * k, 0.9 * tb * k, T.LIVER, where=only)
    # ... and beside the heart's lowest slices, the dome's medial shoulder
    # (Anatomy.liver_contact) under the diaphragm sheet
    zc = cv.zslab(an.body_bottom, float(an.p['liver_contact_mm']))
    if zc.stop > zc.start:
        cx, cy, ha, hb = an.liver_contact(cv.pz[zc], inset=float(an.p['diaphragm_gap_mm']))
        cv.extruded_ellipse(zc, cx, cy, ha, hb, T.LIVER, power=3.0, where=only)
    # stomach under the left dome, anterior; gas cap in the fundus (prone: the
    # gas rises the other way, but the anatomy frame stays put — close enough)
    sc = np.array([0.45 * a, c - 0.15 * b, an.dome_l - 55.0])
    sr = (0.32 * a, 0.45 * b, 48.0)
    cv.ellipsoid(sc, sr, T.STOMACH_FLUID, where=only)
    gas_level = sc[2] + sr[2] * rng.uniform(0.2, 0.7)
    cv.ellipsoid(sc, sr, T.GAS, planes=(((0.0, 0.0, -1.0), -gas_level),), where=(T.STOMACH_FLUID,))
    # spleen: left, posterior
    cv.ellipsoid((0.72 * a, c + 0.55 * b, an.dome_l - 60.0), (26.0, 0.42 * b, 55.0), T.SPLEEN,
                 rot=rotation(35), where=only)
    # kidneys beside the spine
    for side in (-1, 1):
        kz = an.dome_r - 135.0 - (10.0 if side < 0 else 0.0)
        y = float(an.spine_y(kz))
        cv.ellipsoid((side * 62.0, y - 5.0, kz), (28.0, 30.0, 55.0), T.KIDNEY, rot=rotation(side * 30), where=only)
        # psoas along the lumbar spine
        zs = cv.zslab(an.dome_r - 420, an.dome_r - 150)
        zz = cv.pz[zs]
        r = np.clip((an.dome_r - 150 - zz) / 8.0, 0, 22)
        cv.extruded_ellipse(zs, side * 38.0, an.spine_y(zz), r, r * 0.9, T.MUSCLE, where=only)
    # bowel: the visceral cavity below the liver is filled with bowel loops
    # (textured in the image formation: mottled wall/content, gas, fat septa)
    zb = cv.zslab(an.body_bottom, an.dome_r - 70.0)
    if zb.stop > zb.start:
        zz = cv.pz[zb]
        ab, bb, cb = an.body_profile(zz)
        wall = 2.0 + an.p['fat_mm'] + an.p['muscle_mm']
        k = np.clip((an.dome_r - 70.0 - zz) / 60.0, 0, 1)  # bowel grows in below the liver
        cv.extruded_ellipse(zb, 0.0, cb - 0.15 * bb, (ab - wall - 12) * (0.5 + 0.5 * k),
                            (bb - wall) * 0.72 * (0.5 + 0.5 * k), T.BOWEL, where=only)
    for _ in range(int(rng.integers(4, 10))):  # larger gas pockets (colon)
        bz = an.dome_r - rng.uniform(90, 380)
        bx, by = rng.uniform(-0.75, 0.75) * a, c + rng.uniform(-0.9, 0.3) * b
        r = rng.uniform(10, 26)
        cv.ellipsoid((bx, by, bz), (r, r * rng.uniform(0.6, 1.2), r * rng.uniform(0.8, 1.8)), T.GAS,
                     where=(T.BOWEL, T.FAT))
    # urinary bladder low in the pelvis
    cv.ellipsoid((0.0, c - 0.35 * b, an.dome_r - 470.0), (50.0, 40.0, 40.0), T.WATER, where=only + (T.BOWEL,))
