"""Tissue labels of the phantom and how their Hounsfield units are chosen.

One label per tissue class; the label volume is painted by the anatomy
modules and turned into HU by a lookup table sampled per case
(:func:`tissue_hu`). Labels are small ints so the volume is uint8.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ['T', 'tissue_hu']


class T(IntEnum):
    """Tissue labels (0 = air outside the body)."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    LUNG = 4
    AIRWAY = 5
    BLOOD_LEFT = 6  # LV, LA, aorta (arterial side)
    BLOOD_RIGHT = 7  # RV, RA, pulmonary arteries (venous side)
    BLOOD_VEIN = 8  # SVC / IVC / large systemic veins
    MYOCARDIUM = 9
    EPICARDIAL_FAT = 10
    PERICARDIUM = 11
    CALCIUM = 12
    BONE_CORTEX = 13
    BONE_MARROW = 14
    CARTILAGE = 15
    DISC = 16
    CSF = 17
    LIVER = 18
    SPLEEN = 19
    STOMACH_FLUID = 20
    GAS = 21
    KIDNEY = 22
    BOWEL = 23
    GLAND = 24  # breast glandular tissue, thyroid-like soft tissue
    ESOPHAGUS = 25
    METAL = 26
    TABLE = 27
    MATTRESS = 28
    PULM_VESSEL = 29  # intrapulmonary vessels (follow the blood pool)
    WATER = 30  # pleural / pericardial effusion, bladder
    OPACITY = 31  # lung disease: ground glass / consolidation
    THYROID = 32
    DEPENDENT = 33  # dependent atelectasis / consolidation along the posterior lung


N_TISSUES = max(T) + 1


def tissue_hu(p: dict) -> np.ndarray:
    """Lookup table label → mean HU (float32) for one case's parameters.

    Parameters
    ----------
    p : dict
        The sampled parameters (see :mod:`napari_heartbox.phantom.params`);
        uses the ``hu_*`` entries and ``contrast``.
    """
    lut = np.zeros(N_TISSUES, np.float32)
    lut[T.AIR] = -1000
    lut[T.SKIN] = p['hu_skin']
    lut[T.FAT] = p['hu_fat']
    lut[T.MUSCLE] = p['hu_muscle']
    lut[T.LUNG] = p['hu_lung']
    lut[T.AIRWAY] = -990
    lut[T.BLOOD_LEFT] = p['hu_blood_left']
    lut[T.BLOOD_RIGHT] = p['hu_blood_right']
    lut[T.BLOOD_VEIN] = p['hu_blood_vein']
    lut[T.MYOCARDIUM] = p['hu_myocardium']
    lut[T.EPICARDIAL_FAT] = p['hu_fat'] + 10
    lut[T.PERICARDIUM] = p['hu_muscle'] - 10
    lut[T.CALCIUM] = p['hu_calcium']
    lut[T.BONE_CORTEX] = p['hu_cortex']
    lut[T.BONE_MARROW] = p['hu_marrow']
    lut[T.CARTILAGE] = p['hu_cartilage']
    lut[T.DISC] = 85
    lut[T.CSF] = 12
    lut[T.LIVER] = p['hu_liver']
    lut[T.SPLEEN] = p['hu_spleen']
    lut[T.STOMACH_FLUID] = p['hu_stomach']
    lut[T.GAS] = -980
    lut[T.KIDNEY] = p['hu_kidney']
    lut[T.BOWEL] = p['hu_bowel']
    lut[T.GLAND] = p['hu_gland']
    lut[T.ESOPHAGUS] = p['hu_muscle'] - 5
    lut[T.METAL] = 3071
    lut[T.TABLE] = p['hu_table']
    lut[T.MATTRESS] = -900
    lut[T.PULM_VESSEL] = (p['hu_blood_right'] + p['hu_blood_left']) / 2
    lut[T.WATER] = 8
    lut[T.OPACITY] = p['hu_opacity']
    lut[T.THYROID] = p['hu_thyroid']
    lut[T.DEPENDENT] = p['hu_dependent']
    return lut
