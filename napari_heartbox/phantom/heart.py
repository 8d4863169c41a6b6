"""The heart: four chambers, myocardium, epicardial fat, pericardium, calcium.

Geometry lives in a *heart frame* (unit vectors in LPS):

* ``e1`` the long axis from the base to the apex, pointing left, anterior and
  inferior (``heart_yaw_deg`` from anterior towards left in the axial plane,
  ``heart_tilt_deg`` below it), then rolled by ``heart_roll_deg`` about itself;
* ``e2`` perpendicular, towards the right ventricle (right-anterior);
* ``e3 = e2 × e1``, towards the base's superior side.

Every chamber is an ellipsoid (cavity) inside a slightly larger one
(myocardium). A smooth *envelope* ellipsoid, 0.9 × the chambers' extent in
the heart frame, is filled with wall tissue so the chambers form one organ.
The pericardial sac is the union of the envelope and the chambers grown by
the epicardial fat thickness (+1.5 mm pericardium). The diaphragm flattens
the inferior wall: everything of the heart lies above the plane z = 0
(anatomy mm), ``heart_flatten_mm`` above the chambers' natural lowest point.

The **heart label** is that sac, cut to the slices between the lowest
ventricular myocardium (z = 0) and the roof of the atria / left atrial
appendage — the definition used by the reference boxes in
``../shared/data/ct/*/reference_box.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas, ellipsoid_quadric, rotation
from .tissues import T

__all__ = ['HeartGeometry', 'heart_geometry', 'paint_fat_pads', 'paint_heart', 'paint_prepericardial_fat']


@dataclass
class Chamber:
    """One chamber: cavity ellipsoid and wall thickness (mm)."""

    name: str
    centre: np.ndarray  # LPS anatomy mm
    radii: np.ndarray  # cavity semi-axes along the heart frame
    wall: float
    blood: int
    ventricle: bool
    rot: np.ndarray | None = None  # semi-axes' frame (None: the heart frame)

    def frame(self, heart_frame: np.ndarray) -> np.ndarray:
        """Rotation of the semi-axes: its own, else the heart frame."""
        return heart_frame if self.rot is None else self.rot


@dataclass
class HeartGeometry:
    """Positioned chambers and the heart frame."""

    frame: np.ndarray  # columns e1, e2, e3
    chambers: list
    fat: float
    z_bottom: float  # lowest ventricular myocardium (anatomy mm)
    z_top: float  # highest atrial wall (anatomy mm)
    origin: np.ndarray  # heart-frame origin in anatomy mm
    envelope: Chamber  # smooth wall-tissue core joining the chambers
    sac_min: np.ndarray  # LPS-anatomy bounding box of the sac (before flattening)
    sac_max: np.ndarray

    def point(self, a, b, c) -> np.ndarray:
        """Heart-frame offsets from the heart origin → anatomy mm."""
        return self.origin + self.frame @ np.array([a, b, c], float)


def _frame(p) -> np.ndarray:
    yaw, tilt = np.deg2rad(p['heart_yaw_deg']), np.deg2rad(p['heart_tilt_deg'])
    h = np.array([np.sin(yaw), -np.cos(yaw), 0.0])  # left-anterior in the axial plane
    e1 = np.cos(tilt) * h + np.sin(tilt) * np.array([0.0, 0.0, -1.0])
    e2 = np.array([-np.cos(yaw), -np.sin(yaw), 0.0])  # right-anterior
    e2 -= e1 * (e2 @ e1)
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(e2, e1)
    if e3[2] < 0:
        e3 = -e3
    f = np.stack([e1, e2, e3], axis=1)
    # roll about the long axis
    r = np.deg2rad(p['heart_roll_deg'])
    c, s = np.cos(r), np.sin(r)
    e2r = c * f[:, 1] + s * f[:, 2]
    e3r = -s * f[:, 1] + c * f[:, 2]
    return np.stack([f[:, 0], e2r, e3r], axis=1)


def heart_geometry(an: Anatomy) -> HeartGeometry:
    """Place the chambers for one patient (flat heart bottom at z = 0).

    May deepen the chest (``an.D``) when the heart would not leave room for the
    oesophagus and aorta in front of the spine.
    """
    p = an.p
    s = p['heart_scale']
    j = np.asarray(p['chamber_jitter'], float)
    f = _frame(p)
    # (centre in heart frame (a, b, c), cavity radii, wall) per chamber, mm at s = 1
    spec = [
        # atria large (real: they merge smoothly with the ventricles). The LA's
        # semi-axes are patient-aligned (x LR, y AP, z SI), not heart-frame: the
        # real LA is the widest, most posterior chamber with a broad, flat roof
        # right under the right pulmonary artery, so the heart's top slices are
        # wide, not a small atrial dome
        ('LA', (-24, -12, 16), (31, 19, 21), 2.0, T.BLOOD_LEFT, False),
        ('LAA', (-12, -33, 27), (13, 8, 8), 1.5, T.BLOOD_LEFT, False),
        ('RA', (-26, 27, 5), (27, 23, 29), 2.0, T.BLOOD_RIGHT, False),
        ('RV', (6, 20, 0), (31, 15, 29), 4.0, T.BLOOD_RIGHT, True),
        ('LV', (12, -8, 0), (30, 22, 23), 10.0, T.BLOOD_LEFT, True),
    ]
    chambers = []
    for i, (name, c, r, w, blood, vent) in enumerate(spec):
        c = np.asarray(c, float) * s + 4.0 * j[(2 * i) % 12 : (2 * i) % 12 + 3].sum() / 3
        r = np.asarray(r, float) * s * (1 + 0.08 * j[(2 * i + 1) % 12])
        rot = np.eye(3) if name == 'LA' else None
        chambers.append(Chamber(name, f @ c, r, w * (0.85 + 0.3 * (j[i] + 1) / 2), blood, vent, rot))
    # placement: sac centred ``heart_x_mm`` left of the midline, its front
    # ``heart_gap_mm`` + ``prepericardial_fat_mm`` behind the anterior chest
    # wall, myocardium bottom at z=0
    lo, hi, sac_lo, sac_hi = [], [], [], []
    for ch in chambers:
        _, half = ellipsoid_quadric(ch.radii + ch.wall, ch.frame(f))
        lo.append(ch.centre[2] - half[2] if ch.ventricle else np.inf)
        hi.append(ch.centre[2] + half[2] if not ch.ventricle else -np.inf)
        _, half = ellipsoid_quadric(ch.radii + ch.wall + p['epicardial_fat_mm'], ch.frame(f))
        sac_lo.append(ch.centre - half)
        sac_hi.append(ch.centre + half)
    sac_lo, sac_hi = np.min(sac_lo, axis=0), np.max(sac_hi, axis=0)
    # the inferior (diaphragmatic) surface is flat: cut the chambers by a
    # horizontal plane ``heart_flatten_mm`` above their lowest point
    zb = min(lo) + p['heart_flatten_mm']
    zmid = 0.5 * (max(hi) - zb)
    for _ in range(4):
        a, b, c = an.cavity_profile(zmid)
        front = float(c - b)
        shift = np.array([
            p['heart_x_mm'] - 0.5 * (sac_lo[0] + sac_hi[0]),
            front + p['heart_gap_mm'] + p['prepericardial_fat_mm'] - sac_lo[1],
            -zb,
        ])
        # keep room for the oesophagus and aorta in front of the vertebrae:
        # a chest too shallow for this heart is made deeper
        room = float(an.spine_y(zmid)) - 22.0 - 12.0 - (sac_hi[1] + shift[1])
        if room >= 0:
            break
        an.D += -room / 2.0 + 0.5
    for ch in chambers:
        ch.centre = ch.centre + shift
    # a smooth envelope ellipsoid inside the chambers' extent (heart frame):
    # fills the gaps between the chamber ellipsoids (see paint_heart)
    loc = np.array([f.T @ (ch.centre - shift) for ch in chambers])
    # half extents along the heart frame's axes
    rad = np.array([ellipsoid_quadric(ch.radii + ch.wall, f.T @ ch.frame(f))[1] for ch in chambers])
    e_lo, e_hi = (loc - rad).min(axis=0), (loc + rad).max(axis=0)
    env = Chamber('envelope', f @ (0.5 * (e_lo + e_hi)) + shift, 0.5 * (e_hi - e_lo) * 0.9, 0.0,
                  T.EPICARDIAL_FAT, False)
    return HeartGeometry(f, chambers, p['epicardial_fat_mm'], 0.0, max(hi) - zb, shift, env,
                         sac_lo + shift, sac_hi + shift)


def paint_heart(cv: Canvas, an: Anatomy, g: HeartGeometry) -> np.ndarray:
    """Paint the heart and return its label mask (bool, canvas shape).

    Order: pericardium, epicardial fat, the envelope's wall core, then per
    chamber (atria first, LV last) myocardium and cavity, so the LV wall
    forms the septum. The mask is geometric: the sac cut to
    ``[z_bottom, z_top]``, whatever is painted inside it later.
    """
    f = g.frame
    mask = np.zeros(cv.shape, bool)
    zclip = (g.z_bottom, g.z_top)
    flat = (g.z_bottom - 1e-6, np.inf)  # the diaphragm flattens the inferior wall
    env = g.envelope
    eff = float(an.p['pericardial_effusion_mm'])  # fluid inside the sac
    for ch in [env, *g.chambers]:
        r = ch.radii + ch.wall + g.fat + eff + 1.5
        cv.ellipsoid(ch.centre, r, T.PERICARDIUM, rot=ch.frame(f), zclip=flat)
        cv.ellipsoid(ch.centre, r, 0, rot=ch.frame(f), zclip=zclip, out=mask)
    if eff > 0:
        for ch in [env, *g.chambers]:
            cv.ellipsoid(ch.centre, ch.radii + ch.wall + g.fat + eff, T.WATER, rot=ch.frame(f), zclip=flat)
    for ch in [env, *g.chambers]:
        cv.ellipsoid(ch.centre, ch.radii + ch.wall + g.fat, T.EPICARDIAL_FAT, rot=ch.frame(f), zclip=flat)
    # chambers are pressed together: the envelope's core is heart wall
    # (atrial/ventricular walls, septa), fat remains on the surface and in
    # the grooves that reach it
    cv.ellipsoid(env.centre, env.radii, T.MYOCARDIUM, rot=f, zclip=flat)
    for ch in g.chambers:
        cv.ellipsoid(ch.centre, ch.radii + ch.wall, T.MYOCARDIUM, rot=ch.frame(f), zclip=flat)
        cv.ellipsoid(ch.centre, ch.radii, ch.blood, rot=ch.frame(f), zclip=flat)
    return mask


def paint_calcium(cv: Canvas, an: Anatomy, g: HeartGeometry, rng: np.random.Generator) -> None:
    """Coronary calcium: small bright spots in the AV groove and along the LAD."""
    n = int(an.p['calcium_spots'])
    if n == 0:
        return
    lv = next(c for c in g.chambers if c.name == 'LV')
    rv = next(c for c in g.chambers if c.name == 'RV')
    s = an.p['heart_scale']
    for _ in range(n):
        if rng.uniform() < 0.5:  # AV groove ring around the base
            t = rng.uniform(0, 2 * np.pi)
            off = g.frame @ np.array([-14 * s, 36 * s * np.cos(t), 34 * s * np.sin(t)])
            c = lv.centre + off - g.frame[:, 0] * 10 * s
        else:  # anterior interventricular groove (LAD)
            t = rng.uniform(-0.4, 0.9)
            c = (lv.centre + rv.centre) / 2 + g.frame @ np.array([40 * s * t, 0, 24 * s])
        r = rng.uniform(0.8, 2.5)
        cv.ellipsoid(c, (r * rng.uniform(1, 2.5), r, r), T.CALCIUM, rot=rotation(rng.uniform(0, 180)),
                     where=(T.EPICARDIAL_FAT, T.MYOCARDIUM, T.PERICARDIUM, T.FAT))


def paint_fat_pads(cv: Canvas, an: Anatomy, g: HeartGeometry) -> None:
    """Paracardial fat pads at the two cardiophrenic angles: fat *outside*
    the pericardium (not heart label), larger in fatter patients."""
    k = an.p['fat_mm'] / 45.0
    if k < 0.15:
        return
    a, b, c = (float(v) for v in an.cavity_profile(10.0))
    y = g.sac_min[1] + 0.35 * (g.sac_max[1] - g.sac_min[1])
    for x, side in ((g.sac_max[0], 1.0), (g.sac_min[0], -1.0)):
        r = (12.0 + 28.0 * k, 15.0 + 25.0 * k, 10.0 + 22.0 * k)
        cv.ellipsoid((x + side * 0.3 * r[0], y, 2.0), r, T.FAT, where=(T.LUNG,))


def paint_prepericardial_fat(cv: Canvas, an: Anatomy, g: HeartGeometry) -> None:
    """Prepericardial fat: anterior mediastinal fat *outside* the pericardium.

    A lens of fat in front of the sac, from the anterior chest wall back
    over the heart's anterior surface, thickest over the lower heart (real:
    0 to ~25 mm over the right ventricle, continuous with the cardiophrenic
    fat pads). It only replaces lung, so the sac, chest wall and vessels
    keep their tissue; it is not heart label. Thickness
    ``prepericardial_fat_mm`` (the sac is placed that much further back,
    see :func:`heart_geometry`), half-width ``prepericardial_fat_width`` ×
    the sac's half-width.
    """
    t = float(an.p['prepericardial_fat_mm'])
    if t < 1.0:
        return
    gap = max(float(an.p['heart_gap_mm']), 0.0)
    height = g.z_top - g.z_bottom
    cx = 0.5 * (g.sac_min[0] + g.sac_max[0])
    half_w = 0.5 * (g.sac_max[0] - g.sac_min[0])
    centre = (cx, g.sac_min[1] + 8.0, g.z_bottom + 0.35 * height)
    radii = (an.p['prepericardial_fat_width'] * half_w, t + gap + 12.0, 0.6 * height)
    cv.ellipsoid(centre, radii, T.FAT, where=(T.LUNG,))
