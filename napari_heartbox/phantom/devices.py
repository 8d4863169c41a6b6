"""Metal: a pacemaker (pectoral generator + leads through the SVC into the RA
and RV) and sternal wires. Returns the metal centres for streak artefacts."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .canvas import Canvas
from .heart import HeartGeometry
from .tissues import T

__all__ = ['paint_devices']


def paint_devices(cv: Canvas, an: Anatomy, g: HeartGeometry, rng: np.random.Generator) -> list:
    """Paint metal; return ``[(x, y, z_lo, z_hi), ...]`` of strong metal parts.

    Coordinates are anatomy mm; used by the acquisition to draw streaks.
    """
    kind = an.p['metal']
    sources = []
    if kind in ('pacemaker', 'both'):
        side = 1 if rng.uniform() < 0.8 else -1
        zc = an.inlet - rng.uniform(20, 45)
        a, b, c = (float(v) for v in an.body_profile(zc))
        gen = np.array([side * 0.5 * a, c - b + 9 + 0.55 * an.p['fat_mm'], zc])
        cv.ellipsoid(gen, (22.0, 4.0, 20.0), T.METAL)
        sources.append((gen[0], gen[1], zc - 20, zc + 20))
        ra = next(ch for ch in g.chambers if ch.name == 'RA')
        rv = next(ch for ch in g.chambers if ch.name == 'RV')
        subcl = np.array([side * 35.0, c - b + 45, an.inlet - 5])
        svc = np.array([ra.centre[0] - 5, ra.centre[1], ra.centre[2] + 45])
        apex = rv.centre + g.frame[:, 0] * rv.radii[0] * 0.7
        for end in (ra.centre + g.frame[:, 2] * ra.radii[2] * 0.5, apex):
            cv.tube([gen, subcl, svc, ra.centre, end], 1.1, T.METAL)
    if kind in ('sternal_wires', 'both'):
        top, bot = an.inlet - 20, an.sternum_bottom + 10
        for zw in np.linspace(bot, top, int(rng.integers(4, 8))):
            a, b, c = (float(v) for v in an.cavity_profile(zw))
            y = c - b - 9.0
            t = np.linspace(0, 2 * np.pi, 13)
            for dz in (-1.0, 0.0, 1.0):  # twisted double wire, ~3 mm tall
                loop = np.stack([17 * np.cos(t), y + 10 * np.sin(t), np.full_like(t, zw + dz)], 1)
                cv.tube(loop, 0.9, T.METAL)
            sources.append((0.0, y, zw - 2, zw + 2))
    return sources
