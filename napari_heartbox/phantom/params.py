"""Every randomised parameter of the phantom, its range, and the one sampler.

:class:`PhantomRanges` is the single place where the domain randomisation is
defined (documented in ``models/PHANTOM.md``). A range is either
``(low, high)`` (uniform), or a :class:`Choice` of values with weights.
:func:`sample_params` draws one case from a seed; keyword overrides pin any
parameter (and the parameters derived from it are drawn consistently).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ['Choice', 'PhantomRanges', 'sample_params']


@dataclass(frozen=True)
class Choice:
    """A discrete distribution: ``values`` drawn with relative ``weights``."""

    values: tuple
    weights: tuple | None = None

    def draw(self, rng: np.random.Generator):
        w = None
        if self.weights is not None:
            w = np.asarray(self.weights, float)
            w = w / w.sum()
        v = self.values[int(rng.choice(len(self.values), p=w))]
        return list(v) if isinstance(v, tuple) else v


def _c(*values, w=None) -> Choice:
    return Choice(tuple(values), None if w is None else tuple(w))


@dataclass(frozen=True)
class PhantomRanges:
    """Ranges of every randomised phantom parameter (units in the names).

    Uniform ranges are ``(low, high)`` tuples; discrete ones are
    :class:`Choice`. Anatomy lengths are for an adult and are in mm.
    """

    # --- acquisition -------------------------------------------------------
    matrix: Choice = _c(
        (512, 512), (768, 768), (1024, 1024), (512, 640), (640, 512),
        w=(0.82, 0.06, 0.04, 0.04, 0.04),
    )
    fov_mm: tuple = (250.0, 500.0)
    fov_centre_jitter_mm: tuple = (-25.0, 25.0)
    slice_spacing_mm: Choice = _c(
        0.5, 0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
        w=(0.04, 0.08, 0.14, 0.14, 0.08, 0.14, 0.1, 0.14, 0.06, 0.08),
    )
    max_slices: int = 320
    coverage_fraction: tuple = (0.08, 0.92)  # where in the heart a cut falls
    coverage_margin_below_mm: tuple = (5.0, 120.0)
    coverage_margin_above_mm: tuple = (5.0, 140.0)
    coverage: Choice = _c(
        'chest', 'heart_cut_top', 'heart_cut_bottom', 'neck', 'abdomen',
        w=(0.55, 0.1, 0.1, 0.1, 0.15),
    )
    position: Choice = _c('HFS', 'FFS', 'HFP', 'FFP', w=(0.72, 0.1, 0.1, 0.08))
    kernel: Choice = _c('smooth', 'sharp', w=(0.6, 0.4))
    noise_sd_smooth: tuple = (4.0, 28.0)
    noise_sd_sharp: tuple = (30.0, 110.0)
    streaks_probability: float = 0.4
    streak_hu: tuple = (20.0, 160.0)
    metal: Choice = _c('none', 'pacemaker', 'sternal_wires', 'both', w=(0.74, 0.1, 0.11, 0.05))
    slice_overlap_probability: float = 0.5
    slice_overlap: tuple = (0.05, 0.22)  # weight of each neighbour slice (thickness > spacing)
    motion_probability: float = 0.3
    motion_px: tuple = (0.5, 2.5)
    table_probability: float = 0.9
    table_gap_mm: tuple = (0.0, 15.0)
    mattress_mm: tuple = (0.0, 35.0)
    patient_origin_lps_mm: tuple = ((-30.0, 30.0), (-260.0, 40.0), (-900.0, 200.0))
    # --- body --------------------------------------------------------------
    female_probability: float = 0.5
    body_half_width_mm: tuple = (125.0, 185.0)
    body_depth_ratio: tuple = (0.6, 0.82)  # half depth / half width
    fat_mm: tuple = (4.0, 45.0)
    muscle_mm: tuple = (6.0, 22.0)
    arms: Choice = _c('up', 'down', w=(0.65, 0.35))
    breast_size: tuple = (0.15, 1.0)
    # --- lungs -------------------------------------------------------------
    lung_inflation: tuple = (0.0, 1.0)  # 0 = expiration (dense, high domes)
    lung_texture: tuple = (0.3, 1.0)
    effusion_probability: float = 0.15
    effusion_mm: tuple = (8.0, 50.0)
    opacity_probability: float = 0.3
    opacities: tuple = (1, 10)  # lung opacity patches (pneumonia, GGO)
    hu_opacity: tuple = (-650.0, 45.0)  # ground glass … consolidation / tumour mass
    fov_circle_probability: float = 0.7  # air outside the reconstruction circle
    # --- heart -------------------------------------------------------------
    heart_scale: tuple = (0.95, 1.2)
    cardiomegaly_probability: float = 0.12
    cardiomegaly_scale: tuple = (1.15, 1.4)
    heart_yaw_deg: tuple = (40.0, 65.0)  # long axis from anterior towards left
    heart_tilt_deg: tuple = (12.0, 38.0)  # long axis below the axial plane
    heart_roll_deg: tuple = (-20.0, 20.0)
    heart_x_mm: tuple = (12.0, 45.0)  # heart (sac) centre left of the midline
    heart_gap_mm: tuple = (-6.0, 6.0)  # sac front behind the anterior chest wall
    epicardial_fat_mm: tuple = (1.0, 6.0)
    # inferior wall cut flat by the diaphragm (real: a broad, flat diaphragmatic
    # surface, so the heart's lowest slices are already wide)
    heart_flatten_mm: tuple = (6.0, 22.0)
    pericardial_effusion_probability: float = 0.06
    pericardial_effusion_mm: tuple = (3.0, 15.0)
    calcium_probability: float = 0.35
    calcium_spots: tuple = (1, 14)
    # --- levels above the heart (mm) ---------------------------------------
    carina_above_heart_top_mm: tuple = (10.0, 40.0)
    apex_above_carina_mm: tuple = (65.0, 100.0)
    dome_above_heart_bottom_mm: tuple = (0.0, 35.0)
    # the heart rests on the diaphragm's central tendon: a muscle sheet this
    # thick between the inferior heart wall and the liver / abdominal fat
    diaphragm_gap_mm: tuple = (1.0, 6.0)
    # share of the sub-cardiac tendon region filled by the liver's left lobe
    # (the rest: fat / stomach), as a fraction of the heart's LR extent
    liver_under_heart: tuple = (0.55, 1.0)
    # the liver (right dome's medial shoulder) touches the heart's right-inferior
    # border up to this height above the heart's inferior wall (Anatomy.liver_contact)
    liver_contact_mm: tuple = (0.0, 25.0)
    # superior mediastinum: the fat around the great vessels (half-width
    # scale of the fat band) and the ascending aorta / pulmonary trunk moved
    # towards the sternum (real great vessels form a compact mass right
    # behind the sternum)
    mediastinal_fat_scale: tuple = (0.3, 1.0)
    aorta_anterior_mm: tuple = (0.0, 30.0)
    # fat plane between the ascending aorta, pulmonary trunk and SVC, which
    # touch each other above the heart (vessels.paint_vessels)
    vessel_gap_mm: tuple = (0.5, 4.0)
    # dependent atelectasis / consolidation (round 5): a soft-tissue band along
    # the dependent lung surface (posterior when supine), thickest in the
    # paravertebral gutters beside the spine, from the lung bases up to
    # ``dependent_height_mm`` above the right dome (real: common in inpatient
    # and COVID-19 CT; next to the spine it joins the descending aorta and the
    # oesophagus into one soft-tissue mass behind the heart)
    dependent_probability: float = 0.5
    dependent_mm: tuple = (4.0, 35.0)
    dependent_height_mm: tuple = (30.0, 170.0)
    hu_dependent: tuple = (-250.0, 60.0)
    # prepericardial fat (round 6): anterior mediastinal fat *outside* the
    # pericardium, between the sac and the anterior chest wall (real: 0 to
    # ~25 mm, thickest over the right ventricle and at the cardiophrenic
    # angles; the sac is pushed back by it). Not heart label.
    prepericardial_fat_mm: tuple = (0.0, 25.0)
    prepericardial_fat_width: tuple = (0.35, 0.7)  # half-width / sac half-width
    # --- contrast and Hounsfield units --------------------------------------
    contrast_probability: float = 0.5  # round 5: was 0.6 (non-contrast CT is the harder domain)
    contrast_phase: Choice = _c('venous', 'arterial', 'pulmonary', w=(0.5, 0.35, 0.15))
    hu_blood_plain: tuple = (28.0, 52.0)
    hu_blood_venous: tuple = (110.0, 260.0)
    hu_blood_arterial: tuple = (200.0, 450.0)
    venous_right_ratio: tuple = (0.9, 1.05)  # right-heart / left-heart blood, venous phase
    venous_vein_ratio: tuple = (0.8, 1.0)  # SVC/IVC / left-heart blood, venous phase
    arterial_right_mix: tuple = (0.35, 0.85)  # right blood = plain + mix * (left - plain)
    arterial_svc_ratio: tuple = (0.6, 2.5)  # dense contrast inflow in the SVC
    pulmonary_left_mix: tuple = (0.35, 0.75)  # left blood = plain + mix * (right - plain)
    pulmonary_vein_ratio: tuple = (0.8, 2.0)
    hu_myocardium_plain: tuple = (36.0, 52.0)
    myocardium_enhancement: tuple = (0.15, 0.35)  # fraction of the left blood enhancement
    hu_fat: tuple = (-115.0, -80.0)
    hu_muscle: tuple = (38.0, 60.0)
    hu_lung_inspiration: tuple = (-930.0, -820.0)
    hu_lung_expiration: tuple = (-820.0, -680.0)
    hu_skin: tuple = (-10.0, 40.0)
    hu_liver_plain: tuple = (50.0, 68.0)
    # portal-venous phase: the liver can reach the HU of myocardium and blood
    # (real CPTAC venous phase: liver ≈ heart), so HU alone never separates them
    liver_gain_venous: tuple = (0.5, 1.4)  # × 0.6 × (vein − plain) blood enhancement
    liver_gain_other: tuple = (0.1, 0.4)
    spleen_below_liver: tuple = (5.0, 15.0)
    hu_kidney_plain: tuple = (28.0, 40.0)
    kidney_enhancement: tuple = (80.0, 160.0)
    hu_stomach: tuple = (-20.0, 40.0)
    hu_bowel: tuple = (-40.0, 60.0)
    hu_gland: tuple = (-40.0, 40.0)
    hu_thyroid_plain: tuple = (70.0, 120.0)
    thyroid_enhancement: tuple = (20.0, 80.0)
    hu_cartilage: tuple = (60.0, 180.0)
    hu_cortex: tuple = (550.0, 1150.0)
    hu_marrow: tuple = (140.0, 320.0)
    hu_calcium: tuple = (250.0, 1000.0)
    hu_table: tuple = (-250.0, 250.0)

    def with_overrides(self, **kw) -> PhantomRanges:
        """Copy with some ranges replaced."""
        return dataclasses.replace(self, **kw)


def _u(rng, r):
    return float(rng.uniform(r[0], r[1]))


def _lerp(r, t: float) -> float:
    """``r[0] + t * (r[1] - r[0])`` for a uniform draw ``t`` in [0, 1)."""
    return float(r[0] + t * (r[1] - r[0]))


@dataclass
class _Sampler:
    rng: np.random.Generator
    ranges: PhantomRanges
    overrides: dict
    out: dict = field(default_factory=dict)

    def get(self, name, draw):
        """Use the override for ``name`` if given, else ``draw()``.

        The random draw is always made so that pinning one parameter does not
        change the others drawn for the same seed.
        """
        v = draw()
        if name in self.overrides:
            v = self.overrides[name]
            if isinstance(v, tuple):
                v = list(v)
        if isinstance(v, np.generic):
            v = v.item()
        self.out[name] = v
        return v

    def u(self, name, rng_range=None):
        r = getattr(self.ranges, name) if rng_range is None else rng_range
        return self.get(name, lambda: _u(self.rng, r))

    def c(self, name):
        return self.get(name, lambda: getattr(self.ranges, name).draw(self.rng))

    def p(self, name, prob):
        return self.get(name, lambda: bool(self.rng.uniform() < prob))


def sample_params(seed: int, ranges: PhantomRanges | None = None, **overrides) -> dict:
    """Draw every phantom parameter for ``seed`` (JSON-serialisable dict).

    Parameters
    ----------
    seed : int
        Random seed; the same seed and overrides give the same dict.
    ranges : PhantomRanges, optional
        The distribution (default: :class:`PhantomRanges()`).
    **overrides
        Pin any parameter by name (e.g. ``matrix=(256, 256)``,
        ``coverage='abdomen'``, ``contrast=False``, ``n_slices=120``).
    """
    R = ranges or PhantomRanges()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4E4254]))
    s = _Sampler(rng, R, dict(overrides))
    s.out['seed'] = int(seed)
    # acquisition
    s.c('matrix')
    s.u('fov_mm')
    s.get('fov_centre_offset_mm', lambda: [_u(rng, R.fov_centre_jitter_mm) for _ in range(2)])
    s.c('slice_spacing_mm')
    s.get('max_slices', lambda: R.max_slices)
    s.c('coverage')
    s.u('coverage_fraction')
    s.get('coverage_margin_mm', lambda: [_u(rng, R.coverage_margin_below_mm), _u(rng, R.coverage_margin_above_mm)])
    s.get('n_slices', lambda: None)
    s.c('position')
    kernel = s.c('kernel')
    sd_s, sd_h = _u(rng, R.noise_sd_smooth), _u(rng, R.noise_sd_sharp)
    s.get('noise_sd', lambda: sd_s if kernel == 'smooth' else sd_h)
    s.p('streaks', R.streaks_probability)
    s.u('streak_hu')
    s.c('metal')
    ov = _u(rng, R.slice_overlap) if rng.uniform() < R.slice_overlap_probability else 0.0
    s.get('slice_overlap', lambda: ov)
    s.p('motion', R.motion_probability)
    s.u('motion_px')
    s.p('table', R.table_probability)
    s.u('table_gap_mm')
    s.u('mattress_mm')
    s.get('patient_origin_lps_mm', lambda: [_u(rng, r) for r in R.patient_origin_lps_mm])
    # body
    female = s.p('female', R.female_probability)
    s.u('body_half_width_mm')
    s.u('body_depth_ratio')
    s.u('fat_mm')
    s.u('muscle_mm')
    s.c('arms')
    bs = _u(rng, R.breast_size)
    s.get('breast_size', lambda: bs if female else 0.0)
    # lungs
    infl = s.u('lung_inflation')
    s.u('lung_texture')
    eff = _u(rng, R.effusion_mm) if rng.uniform() < R.effusion_probability else 0.0
    s.get('pleural_effusion_mm', lambda: eff)
    n_op = int(rng.integers(R.opacities[0], R.opacities[1] + 1)) if rng.uniform() < R.opacity_probability else 0
    s.get('lung_opacities', lambda: n_op)
    s.u('hu_opacity')
    s.p('fov_circle', R.fov_circle_probability)
    # heart
    cardio = s.p('cardiomegaly', R.cardiomegaly_probability)
    hs, cs = _u(rng, R.heart_scale), _u(rng, R.cardiomegaly_scale)
    s.get('heart_scale', lambda: cs if cardio else hs)
    for name in ('heart_yaw_deg', 'heart_tilt_deg', 'heart_roll_deg', 'heart_x_mm', 'heart_gap_mm',
                 'epicardial_fat_mm', 'heart_flatten_mm'):
        s.u(name)
    pe = _u(rng, R.pericardial_effusion_mm) if rng.uniform() < R.pericardial_effusion_probability else 0.0
    s.get('pericardial_effusion_mm', lambda: pe)
    has_ca = rng.uniform() < R.calcium_probability
    n_ca = int(rng.integers(R.calcium_spots[0], R.calcium_spots[1] + 1))
    s.get('calcium_spots', lambda: n_ca if has_ca else 0)
    for name in ('carina_above_heart_top_mm', 'apex_above_carina_mm', 'dome_above_heart_bottom_mm'):
        s.u(name)
    s.get('chamber_jitter', lambda: [float(v) for v in rng.uniform(-1, 1, 12)])
    s.get('texture_seed', lambda: int(rng.integers(0, 2**31 - 1)))
    # contrast and HU
    contrast = s.p('contrast', R.contrast_probability)
    phase = s.c('contrast_phase')
    if not contrast:
        s.out['contrast_phase'] = 'none'
        phase = 'none'
    plain = _u(rng, R.hu_blood_plain)
    u1, u2, u3 = rng.uniform(size=3)
    if phase == 'none':
        left = right = vein = plain
    elif phase == 'venous':  # portal-venous / delayed: everything moderately bright
        left = _lerp(R.hu_blood_venous, u1)
        right = left * _lerp(R.venous_right_ratio, u2)
        vein = left * _lerp(R.venous_vein_ratio, u3)
    elif phase == 'arterial':  # systemic arterial: left heart and aorta brightest
        left = _lerp(R.hu_blood_arterial, u1)
        right = plain + (left - plain) * _lerp(R.arterial_right_mix, u2)
        vein = left * _lerp(R.arterial_svc_ratio, u3)  # dense inflow in the SVC
    else:  # pulmonary arterial phase: right heart brightest
        right = _lerp(R.hu_blood_arterial, u1)
        left = plain + (right - plain) * _lerp(R.pulmonary_left_mix, u2)
        vein = right * _lerp(R.pulmonary_vein_ratio, u3)
    s.get('hu_blood_left', lambda: left)
    s.get('hu_blood_right', lambda: right)
    s.get('hu_blood_vein', lambda: vein)
    enh = 0.0 if phase == 'none' else _u(rng, R.myocardium_enhancement)
    myo = _u(rng, R.hu_myocardium_plain) + enh * (left - plain)
    s.get('hu_myocardium', lambda: myo)
    s.u('hu_fat')
    s.u('hu_muscle')
    s.u('hu_skin')
    lung = _u(rng, R.hu_lung_inspiration) * infl + _u(rng, R.hu_lung_expiration) * (1 - infl)
    s.get('hu_lung', lambda: lung)
    liver = _u(rng, R.hu_liver_plain)
    venous_gain = 0.0 if phase == 'none' else _u(rng, R.liver_gain_venous if phase == 'venous' else R.liver_gain_other)
    s.get('hu_liver', lambda: liver + venous_gain * (vein - plain) * 0.6)
    s.get('hu_spleen', lambda: liver - _u(rng, R.spleen_below_liver) + venous_gain * (vein - plain) * 0.6)
    s.get('hu_kidney', lambda: _u(rng, R.hu_kidney_plain) + (0 if phase == 'none' else _u(rng, R.kidney_enhancement)))
    s.u('hu_stomach')
    s.u('hu_bowel')
    s.u('hu_gland')
    s.get('hu_thyroid', lambda: _u(rng, R.hu_thyroid_plain) + (0.0 if phase == 'none' else _u(rng, R.thyroid_enhancement)))
    s.u('hu_cortex')
    s.u('hu_marrow')
    s.u('hu_cartilage')
    s.u('hu_calcium')
    s.u('hu_table')
    # round 3 (drawn last so the earlier draws of a seed are unchanged)
    s.u('diaphragm_gap_mm')
    s.u('liver_under_heart')
    s.u('mediastinal_fat_scale')
    s.u('aorta_anterior_mm')
    s.u('vessel_gap_mm')
    s.u('liver_contact_mm')
    dep = _u(rng, R.dependent_mm) if rng.uniform() < R.dependent_probability else 0.0
    s.get('dependent_mm', lambda: dep)
    s.u('dependent_height_mm')
    s.get('hu_dependent', lambda: _u(rng, R.hu_dependent) + (0.0 if phase == 'none' else _u(rng, (10.0, 50.0))))
    # round 6
    s.u('prepericardial_fat_mm')
    s.u('prepericardial_fat_width')
    return s.out
