"""Landmark levels and the body's z-varying cross-section profile.

All positions are anatomy millimetres (see :mod:`.canvas`): x = patient left,
y = posterior, z = superior, origin at the midline, the body's AP centre and
the inferior wall of the heart (z = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ['Anatomy']


@dataclass
class Anatomy:
    """Derived sizes and levels of one phantom patient.

    Parameters
    ----------
    p : dict
        Sampled parameters (:func:`.params.sample_params`).
    """

    p: dict

    def __post_init__(self):
        p = self.p
        s = p['heart_scale']
        self.W = p['body_half_width_mm']
        self.D = p['body_half_width_mm'] * p['body_depth_ratio']
        self.set_heart_top(95.0 * s)  # provisional; heart.py sets the true top
        self.tendon = None  # set_tendon (after the heart is placed)
        infl = p['lung_inflation']
        self.dome_r = p['dome_above_heart_bottom_mm'] - 25.0 * (infl - 0.5)
        self.dome_l = self.dome_r - 12.0
        self.rib_bottom = self.dome_r - 150.0  # lowest costal margin
        self.body_bottom = self.dome_r - 650.0

    def set_heart_top(self, z_top: float) -> None:
        """Set the heart's top (LA roof, mm above its inferior wall) and the
        levels that hang off it (carina, lung apex, thoracic inlet, neck)."""
        p = self.p
        self.heart_height = float(z_top)
        self.heart_top = float(z_top)
        self.carina = self.heart_top + p['carina_above_heart_top_mm']
        self.apex = self.carina + p['apex_above_carina_mm']  # lung apex
        self.inlet = self.apex - 25.0  # sternal notch / thoracic inlet
        self.neck_top = self.apex + 220.0
        self.sternum_bottom = -5.0 + 0.15 * self.heart_height  # xiphoid

    def set_tendon(self, sac_lo, sac_hi) -> None:
        """Place the diaphragm's central tendon under the heart.

        The heart rests on the diaphragm: below its inferior wall (z = 0) the
        tendon (abdomen, no lung) spans the heart's LR extent and, in AP, from
        the anterior chest wall to the back of the heart; a muscle sheet
        ``diaphragm_gap_mm`` thick separates the heart from the liver below.
        Stored as ``self.tendon`` = (centre L, centre P, half width, half
        depth, top of the abdomen below the sheet), anatomy mm.
        """
        a, b, c = (float(v) for v in self.cavity_profile(0.0))
        x0, x1 = float(sac_lo[0]), float(sac_hi[0])
        y0, y1 = float(c - b), float(sac_hi[1]) - 10.0
        self.tendon = (0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.5 * (x1 - x0), 0.5 * (y1 - y0) + 6.0,
                       -float(self.p['diaphragm_gap_mm']))

    def liver_contact(self, z, inset: float = 0.0):
        """Medial shoulder of the right dome beside the heart at levels ``z``.

        In real CT the liver meets the heart's right-inferior border: on the
        lowest ``liver_contact_mm`` of the heart (above its inferior wall,
        z = 0) there is no lung between them, only the diaphragm and fat. The
        region spans, in LR, from the right dome's centre to the heart's
        centre (the heart, painted later, covers its own part) and, in AP,
        the central tendon's band; its top edge is rounded over 8 mm.

        Returns ``(cx, cy, half_width, half_depth)`` (anatomy mm) per ``z``,
        shrunk by ``inset`` mm (the diaphragm's thickness for the liver);
        zero size above the shoulder or without a tendon.
        """
        z = np.asarray(z, float)
        h = float(self.p['liver_contact_mm']) - inset
        if self.tendon is None or h <= 0:
            return 0.0, 0.0, np.zeros_like(z), np.zeros_like(z)
        tx, ty, _, tb, _ = self.tendon
        x_r = -0.45 * float(self.cavity_profile(0.0)[0])
        k = np.sqrt(np.clip((h - z) / 8.0, 0, 1))
        half = max(0.5 * (tx - x_r) - inset, 0.0)
        return 0.5 * (x_r + tx), ty, half * k, max(tb - inset, 0.0) * k

    # ------------------------------------------------------------ profile
    def body_profile(self, z):
        """Outer body half-width, half-depth and AP centre at levels ``z``."""
        z = np.asarray(z, float)
        W, D = self.W, self.D
        arms_down = self.p['arms'] == 'down'
        shoulder = 1.12 if arms_down else 1.02
        kz = [self.body_bottom, self.dome_r - 250, self.dome_r - 60, self.inlet - 40,
              self.apex + 5, self.apex + 45, self.neck_top]
        ka = [W * 1.02, W * 0.97, W, W * shoulder, W * shoulder * 0.95, 62.0, 58.0]
        kb = [D * 1.02, D * 1.05, D, D * 0.98, D * 0.85, 62.0, 58.0]
        kc = [0.0, 0.0, 0.0, 0.0, 5.0, 18.0, 18.0]
        return np.interp(z, kz, ka), np.interp(z, kz, kb), np.interp(z, kz, kc)

    def cavity_profile(self, z):
        """Inner rib-cage half-width, half-depth and AP centre at ``z``.

        The anterior chest wall is thin (fat, pectoral muscle, sternum); the
        posterior wall holds the paraspinal muscles, so the cavity's back is
        about level with the spinal canal and the vertebral body bulges into
        it. Zero size above the lung apex.
        """
        z = np.asarray(z, float)
        a, b, c = self.body_profile(z)
        fat = self.p['fat_mm']
        mus = self.p['muscle_mm']
        front = c - b + 2.0 + 0.7 * fat + 0.5 * mus + 10.0  # skin, fat, pectoralis, sternum
        back = c + b - 2.0 - 0.5 * fat - 0.3 * mus - 14.0  # lateral to the paraspinal muscles
        ac = np.maximum(a - 2.0 - 0.6 * fat - 0.3 * mus - 12.0, 0)  # fat, muscle, ribs
        bc = np.maximum((back - front) / 2.0, 0)
        cc = (back + front) / 2.0
        # lung apex: the cavity narrows to nothing at the apex
        t = np.clip((self.apex - z) / 60.0, 0, 1)
        taper = np.sqrt(t)
        upper = z > self.apex - 60.0
        ac = np.where(upper, ac * (0.35 + 0.65 * taper), ac) * (z < self.apex)
        bc = np.where(upper, bc * (0.45 + 0.55 * taper), bc) * (z < self.apex)
        return ac, bc, cc

    def spine_y(self, z):
        """AP position of the vertebral body centre at ``z``.

        The vertebral body sits just in front of the cavity's back wall; in the
        neck the spine is nearer the body's centre.
        """
        z = np.asarray(z, float)
        a, b, c = self.body_profile(z)
        fat = self.p['fat_mm']
        back = c + b - 2.0 - 0.5 * fat - 0.3 * self.p['muscle_mm'] - 14.0
        neck = np.clip((z - self.apex) / 40.0, 0, 1)
        return (back - 32.0) * (1 - neck) + (c + 0.15 * b) * neck

    def mediastinum_half_width(self, z):
        """Half-width of the mediastinal band between the lungs at ``z``."""
        z = np.asarray(z, float)
        return np.interp(z, [self.dome_r - 80, 0.0, self.heart_top, self.carina, self.apex - 20, self.apex],
                         [22.0, 18.0, 22.0, 34.0, 26.0, 30.0])
