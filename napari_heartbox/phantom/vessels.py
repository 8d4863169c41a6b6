"""Great vessels: aorta (root, ascending, arch, descending), pulmonary trunk and
arteries, SVC / IVC, arch branches, pulmonary veins, and the oesophagus.

All are tubes along polylines in anatomy mm. Roots start inside the heart;
the heart label (``heart.paint_heart``) is geometric, so the vessels above
the valves are never part of it.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas
from .heart import HeartGeometry
from .tissues import T

__all__ = ['paint_outflow', 'paint_vessels']

_SOFT = (T.FAT, T.LUNG, T.MUSCLE, T.PERICARDIUM, T.EPICARDIAL_FAT, T.LIVER, T.AIR)


def _ch(g: HeartGeometry, name: str):
    return next(c for c in g.chambers if c.name == name)


def aortic_root(an: Anatomy, g: HeartGeometry) -> np.ndarray:
    """Aortic valve position (anatomy mm): between the atria, above the LV."""
    s = an.p['heart_scale']
    return g.origin + g.frame @ (np.array([-22.0, 4.0, 24.0]) * s)


def pulmonary_valve(an: Anatomy, g: HeartGeometry) -> np.ndarray:
    """Pulmonary valve: left, anterior and superior of the aortic valve."""
    s = an.p['heart_scale']
    return aortic_root(an, g) + np.array([16.0, -14.0, 14.0]) * s


def paint_vessels(cv: Canvas, an: Anatomy, g: HeartGeometry, rng: np.random.Generator) -> None:
    """Vessels outside the heart (painted before the heart), with random
    hilar vessel trees in the lungs."""
    p = an.p
    s = p['heart_scale']
    ar = aortic_root(an, g)
    pv = pulmonary_valve(an, g)
    # real ascending aorta 30-38 mm, pulmonary trunk 25-32 mm, SVC ~22 mm: above
    # the heart they form one large soft-tissue / contrast mass
    gap = float(p['vessel_gap_mm'])
    r_asc = 15.5 + 3.0 * (s - 0.85) / 0.3 + 2.0 * p['chamber_jitter'][0]
    r_desc = r_asc * 0.78
    sp = float(an.spine_y(an.carina))
    y_desc = sp - 26.0
    arch_top = an.carina + 28.0 + 6 * p['chamber_jitter'][1]
    asc_top = np.array([ar[0] - 8, ar[1] - 4 - p['aorta_anterior_mm'], an.carina - 5])
    arch = [
        ar, asc_top,
        np.array([ar[0] - 2, ar[1] + 10, arch_top - 8]),
        np.array([4.0, (ar[1] + y_desc) / 2, arch_top]),
        np.array([20.0, y_desc - 6, arch_top - 10]),
        np.array([22.0, y_desc, an.carina - 20]),
    ]
    desc = [arch[-1], np.array([18.0, y_desc, 0.0]),
            np.array([6.0, float(an.spine_y(an.dome_r - 120)) - 28, an.dome_r - 120]),
            np.array([2.0, float(an.spine_y(an.dome_r - 300)) - 26, an.dome_r - 300])]
    cv.tube(arch[:3], r_asc + 2.0 + gap, T.FAT, where=(T.LUNG,))  # fat around the mass
    cv.tube(arch, r_asc, T.BLOOD_LEFT)
    cv.tube(desc, r_desc, T.BLOOD_LEFT)
    # arch branches up into the neck
    for dx, r in ((-14.0, 6.5), (2.0, 5.0), (14.0, 5.5)):
        base = np.array([arch[3][0] + dx, arch[3][1] - 2, arch_top])
        top = np.array([dx * 2.2, base[1] - 6, an.neck_top])
        cv.tube([base, base + np.array([dx * 0.6, -4, 40]), top], r, T.BLOOD_LEFT, where=_SOFT)
    # Real CT: from the heart's top up to the arch, the ascending aorta, the
    # pulmonary trunk (on its left-anterior side, bifurcating behind it), the
    # right pulmonary artery (behind the aorta and SVC, over the left atrium)
    # and the SVC (on its right-posterior side) touch each other: one compact
    # mass of blood-density tubes, separated by fat planes ``vessel_gap_mm``
    # thin. So the trunk, the bifurcation and the SVC are placed against the
    # ascending aorta's centreline, at its height.
    r_pa = 13.5 * s + 1.5 * p['chamber_jitter'][2]

    def aorta_at(z):
        t = float(np.clip((z - ar[2]) / max(asc_top[2] - ar[2], 1.0), 0, 1))
        return ar + t * (asc_top - ar)

    def beside(z, direction, r):
        d = np.array([direction[0], direction[1], 0.0])
        return aorta_at(z) + d / np.linalg.norm(d) * (r_asc + r + gap)

    # pulmonary trunk and arteries (right-heart blood)
    z_bif = max(an.carina - 6, pv[2] + 22)
    z_mid = 0.5 * (pv[2] + z_bif)
    bif = beside(z_bif, (0.55, 1.0), r_pa * 0.8)
    trunk = [pv, beside(z_mid, (1.0, -0.35), r_pa), bif]
    cv.tube(trunk, r_pa + 2.0 + gap, T.FAT, where=(T.LUNG,))
    cv.tube(trunk, r_pa, T.BLOOD_RIGHT)
    lpa = [bif, np.array([bif[0] + 30, bif[1] + 12, bif[2] - 2]), np.array([bif[0] + 55, bif[1] + 25, bif[2] - 30])]
    behind = beside(bif[2] - 6, (-0.2, 1.0), r_pa * 0.75)
    rpa = [bif, behind, np.array([-60.0, behind[1] + 4, bif[2] - 16]),
           np.array([-80.0, behind[1] + 12, bif[2] - 50])]
    cv.tube(lpa, r_pa * 0.8, T.BLOOD_RIGHT)
    cv.tube(rpa, r_pa * 0.75, T.BLOOD_RIGHT)
    # SVC down into the RA (against the aorta's right-posterior side); IVC up
    # from the abdomen into the RA
    ra = _ch(g, 'RA')
    ra_top = ra.centre + g.frame[:, 2] * ra.radii[2] * 0.6
    ra_bot = ra.centre - g.frame[:, 2] * ra.radii[2] * 0.7
    svc_mid = beside(ra_top[2] + 20, (-1.0, 0.45), 11.0)
    svc_hi = beside(an.carina, (-1.0, 0.3), 11.0)
    svc = [np.array([svc_hi[0] - 6, svc_hi[1] + 2, an.apex - 10]), svc_hi, svc_mid, ra_top]
    cv.tube(svc, 11.0, T.BLOOD_VEIN)
    cv.tube([svc[0], np.array([-20.0, svc[0][1] - 4, an.apex + 20]),
             np.array([-30.0, svc[0][1] + 6, an.neck_top])], 7.0, T.BLOOD_VEIN, where=_SOFT)
    ivc = [ra_bot, np.array([ra_bot[0] - 4, ra_bot[1] + 12, -25.0]),
           np.array([-22.0, float(an.spine_y(an.dome_r - 150)) - 28, an.dome_r - 150]),
           np.array([-18.0, float(an.spine_y(an.dome_r - 300)) - 24, an.dome_r - 300])]
    cv.tube(ivc, 12.0, T.BLOOD_VEIN)
    # pulmonary veins from the LA into the lungs
    la = _ch(g, 'LA')
    for side in (-1, 1):
        for dz in (-12.0, 12.0):
            end = la.centre + np.array([side * 75.0, 10.0, dz * 1.6])
            cv.tube([la.centre, end], 6.5, T.BLOOD_LEFT, where=(T.LUNG, T.FAT))
            _branches(cv, end, np.array([side, 0.1, dz / 30.0]), 5.0, T.BLOOD_LEFT, rng, depth=2)
    # lobar / segmental pulmonary arteries fanning out from the hila
    for start, side in ((lpa[-1], 1.0), (rpa[-1], -1.0), (lpa[1], 1.0), (rpa[2], -1.0)):
        _branches(cv, np.asarray(start, float), np.array([side, 0.2, rng.uniform(-0.8, 0.8)]), 5.5,
                  T.BLOOD_RIGHT, rng, depth=2)
    # oesophagus behind the trachea and the LA, down to the stomach
    y_tr = float(an.spine_y(an.carina)) - 38.0
    eso = [np.array([-2.0, y_tr + 16, an.neck_top]), np.array([2.0, y_tr + 18, an.carina]),
           np.array([6.0, sp - 28 + 6, 10.0]), np.array([28.0, sp - 40, an.dome_l - 25])]
    cv.tube(eso, 8.0, T.ESOPHAGUS, where=_SOFT)


def _branches(cv: Canvas, start, direction, radius: float, tissue: int, rng, depth: int) -> None:
    """A small random vessel tree in the lung: 2–3 children per level,
    each ~70 % of the parent radius, spreading from ``direction``."""
    if depth <= 0 or radius < 1.5:
        return
    d0 = np.asarray(direction, float) / np.linalg.norm(direction)
    for _ in range(int(rng.integers(2, 4))):
        d = d0 + rng.normal(0, 0.55, 3)
        d /= np.linalg.norm(d)
        length = rng.uniform(25, 45) * radius / 5.0 + 10.0
        end = start + d * length
        cv.tube([start, end], radius, tissue, where=(T.LUNG,))
        _branches(cv, end, d, radius * 0.7, tissue, rng, depth - 1)


def paint_outflow(cv: Canvas, an: Anatomy, g: HeartGeometry) -> None:
    """Ventricular outflow tracts up to the valves (painted after the heart)."""
    lv, rv = _ch(g, 'LV'), _ch(g, 'RV')
    ar, pv = aortic_root(an, g), pulmonary_valve(an, g)
    s = an.p['heart_scale']
    cv.tube([lv.centre - g.frame[:, 0] * 15 * s, ar], 13.0 * s, T.BLOOD_LEFT,
            where=(T.MYOCARDIUM, T.BLOOD_LEFT, T.EPICARDIAL_FAT, T.PERICARDIUM, T.BLOOD_RIGHT))
    cv.tube([rv.centre + g.frame[:, 2] * 12 * s, pv], 15.0 * s, T.MYOCARDIUM,
            where=(T.EPICARDIAL_FAT, T.PERICARDIUM, T.FAT, T.LUNG))
    cv.tube([rv.centre + g.frame[:, 2] * 12 * s, pv], 11.0 * s, T.BLOOD_RIGHT,
            where=(T.MYOCARDIUM, T.EPICARDIAL_FAT, T.PERICARDIUM, T.FAT, T.LUNG))
