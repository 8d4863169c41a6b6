"""`make_phantom` / `sample_chest_ct`: randomised thorax CT phantoms with an
exact heart label.

Pipeline: sample parameters (:mod:`.params`) → place the anatomy
(:mod:`.anatomy`, :mod:`.heart`) → lay out the slices (:mod:`.acquisition`) →
paint tissue labels (body, lungs, abdomen, airways, vessels, heart, bones,
devices, table) → image formation (HU, texture, noise, artefacts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..grid import Grid
from ..sector import Sector
from ..volume import CTVolume, SeriesInfo
from .abdomen import paint_abdomen
from .acquisition import compose_hu, layout, outside_fov_circle
from .anatomy import Anatomy
from .body import paint_arms, paint_body, paint_breasts, paint_table
from .bones import paint_bones
from .canvas import Canvas
from .devices import paint_devices
from .heart import (
    heart_geometry,
    paint_calcium,
    paint_fat_pads,
    paint_heart,
    paint_prepericardial_fat,
)
from .params import PhantomRanges, sample_params
from .thorax import paint_airways, paint_lung_disease, paint_lungs
from .vessels import paint_outflow, paint_vessels

__all__ = ['PhantomCase', 'make_phantom', 'sample_chest_ct']


@dataclass
class PhantomCase:
    """One synthetic CT with its exact heart label.

    Attributes
    ----------
    volume : CTVolume
        int16 HU ``(Z, Y, X)``, z index 0 = most inferior slice, LPS affine;
        ``info.source_format == 'synthetic'`` and a deterministic
        ``info.series_uid``.
    heart_mask : numpy.ndarray
        bool ``(Z, Y, X)``: pericardial-sac contents (chambers, myocardium,
        epicardial fat, pericardial fluid) between the lowest ventricular
        myocardium and the roof of the atria / LA appendage (the
        reference-box definition); nothing outside the reconstruction circle.
    heart_box : Sector
        Half-open box of the mask's extent; ``found=False`` when the mask is
        empty (heart outside the slices).
    params : dict
        Every randomised parameter used (JSON-serialisable).
    labels : numpy.ndarray
        uint8 tissue labels ``(Z, Y, X)`` (see :class:`.tissues.T`), for
        tests and HU statistics.
    """

    volume: CTVolume
    heart_mask: np.ndarray
    heart_box: Sector
    params: dict
    labels: np.ndarray | None = None


def _series_uid(params: dict) -> str:
    """Deterministic DICOM UID (``2.25.<int>``) from the parameters."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return '2.25.' + str(int(h[:30], 16))


def _mask_box(mask: np.ndarray, grid: Grid, uid: str) -> Sector:
    if not mask.any():
        return Sector.not_found(grid, confidence=1.0, series_uid=uid)
    rng = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        rng.append((int(idx[0]), int(idx[-1]) + 1))
    return Sector(grid, *rng, found=True, confidence=1.0, series_uid=uid)


def make_phantom(seed: int, *, ranges: PhantomRanges | None = None, keep_labels: bool = True,
                 **overrides) -> PhantomCase:
    """Generate one randomised chest CT phantom with its heart label.

    Parameters
    ----------
    seed : int
        Random seed; the same seed and overrides always give the same case.
    ranges : PhantomRanges, optional
        The randomisation ranges (default :class:`PhantomRanges()`).
    keep_labels : bool
        Keep the tissue-label volume on the result (``PhantomCase.labels``).
    **overrides
        Pin any parameter of :func:`.params.sample_params`, e.g.
        ``matrix=(256, 256)``, ``n_slices=100``, ``slice_spacing_mm=2.5``,
        ``coverage='chest' | 'neck' | 'abdomen' | 'heart_cut_top' |
        'heart_cut_bottom'``, ``contrast=False``, ``fov_mm=360``,
        ``noise_sd=10``, ``position='HFP'``.

    Returns
    -------
    PhantomCase
    """
    p = sample_params(seed, ranges, **overrides)
    unknown = sorted(set(overrides) - set(p))
    if unknown:
        raise ValueError(f'unknown phantom parameter(s): {", ".join(unknown)}')
    rng = np.random.default_rng(p['texture_seed'])
    an = Anatomy(p)
    g = heart_geometry(an)
    an.set_heart_top(g.z_top)
    an.set_tendon(g.sac_min, g.sac_max)
    lay = layout(p, an, g)
    cv = Canvas(lay.pz, lay.py, lay.px)
    paint_body(cv, an)
    paint_breasts(cv, an)
    paint_arms(cv, an)
    paint_lungs(cv, an)
    paint_lung_disease(cv, an, rng, prone=p['position'] in ('HFP', 'FFP'))
    paint_abdomen(cv, an, rng)
    paint_airways(cv, an)
    paint_vessels(cv, an, g, rng)
    mask = paint_heart(cv, an, g)
    paint_calcium(cv, an, g, rng)
    paint_fat_pads(cv, an, g)
    paint_prepericardial_fat(cv, an, g)
    paint_outflow(cv, an, g)
    paint_bones(cv, an, rng)
    metal = paint_devices(cv, an, g, rng)
    paint_table(cv, an, prone=p['position'] in ('HFP', 'FFP'))
    out = outside_fov_circle(p, lay)
    if out is not None:  # nothing is imaged outside the reconstruction circle
        for j in np.flatnonzero(out.any(axis=1)):
            cv.label[:, j, out[j]] = 0
            mask[:, j, out[j]] = False
    hu = compose_hu(cv.label, p, lay, an, g, metal, rng)
    uid = _series_uid(p)
    grid = Grid(hu.shape, lay.spacing, lay.affine)
    info = SeriesInfo(
        series_uid=uid,
        modality='CT',
        manufacturer='napari-heartbox phantom',
        slice_thickness_mm=float(lay.spacing[0]),
        description=f'synthetic chest CT phantom seed {seed} ({p["coverage"]}, {p["position"]})',
        source_format='synthetic',
    )
    vol = CTVolume(hu, grid, info)
    box = _mask_box(mask, grid, uid)
    return PhantomCase(vol, mask, box, p, cv.label if keep_labels else None)


def sample_chest_ct(seed: int = 0) -> PhantomCase:
    """The deterministic demo / napari sample volume.

    512 × 512 in-plane (380 mm FOV), contrast-enhanced (venous phase),
    head-first supine, smooth kernel, 2.5 mm slices from 11 cm below the
    heart to 15 cm above it (138 slices for seed 0): the heart fully in view.

    Parameters
    ----------
    seed : int
        Patient details (0 is the sample shown in napari and by ``demo``).
    """
    return make_phantom(
        seed,
        matrix=(512, 512),
        fov_mm=380.0,
        fov_centre_offset_mm=(0.0, 10.0),
        slice_spacing_mm=2.5,
        coverage='chest',
        coverage_margin_mm=(110.0, 150.0),
        n_slices=None,
        position='HFS',
        contrast=True,
        contrast_phase='venous',
        kernel='smooth',
        noise_sd=14.0,
        metal='none',
        streaks=False,
        motion=False,
        cardiomegaly=False,
        heart_scale=1.05,
        body_half_width_mm=165.0,
        body_depth_ratio=0.7,
        fat_mm=14.0,
        arms='up',
        pleural_effusion_mm=0.0,
        pericardial_effusion_mm=0.0,
        lung_opacities=0,
        slice_overlap=0.0,
        fov_circle=True,
        table=True,
    )
