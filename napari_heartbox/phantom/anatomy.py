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
        self.D = p['body_half_depth_mm']
        self.set_heart_top(95.0 * s)  # provisional; heart.py sets the true top
        infl = p['lung_inflation']
        self.dome_r = p['dome_above_heart_bottom_mm'] - 25.0 * (infl - 0.5)
        self.dome_l = self.dome_r - 12.0
        self.sternum_bottom = -5.0 + 0.15 * self.heart_height
        self.rib_bottom = self.dome_r - 150.0  # lowest costal margin
        self.body_bottom = self.dome_r - 650.0
        self.wall = p['fat_mm'] + p['muscle_mm'] + 2.0  # skin + fat + muscle

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

        Zero width above the lung apex. The cavity sits anterior to the spine.
        """
        z = np.asarray(z, float)
        a, b, c = self.body_profile(z)
        wall = self.wall + 12.0  # + ribs and intercostal muscle
        ac = np.maximum(a - wall, 0)
        # posterior: spine and paraspinal muscles take ~55 mm behind the cavity
        bc = np.maximum(b - wall * 0.5 - 28.0, 0)
        cc = c - 18.0
        # lung apex: the cavity shrinks to nothing above the apex
        t = np.clip((self.apex - z) / 45.0, 0, 1)
        taper = np.sqrt(t)
        ac = np.where(z > self.inlet - 40, np.minimum(ac, (self.W - self.wall - 12) * (0.55 + 0.45 * taper)) * taper, ac)
        bc = bc * np.where(z > self.inlet - 40, 0.6 + 0.4 * taper, 1.0) * np.where(z > self.apex, 0, 1)
        return ac, bc, cc

    def spine_y(self, z):
        """AP position of the vertebral body centre at ``z``."""
        a, b, c = self.body_profile(z)
        return c + b - self.wall - 62.0 + 10.0 * (np.asarray(z) > self.apex + 10)

    def mediastinum_half_width(self, z):
        """Half-width of the mediastinum (between the lungs) at ``z``."""
        z = np.asarray(z, float)
        return np.interp(z, [self.heart_top, self.carina, self.apex - 20, self.apex + 20],
                         [24.0, 30.0, 22.0, 40.0])
