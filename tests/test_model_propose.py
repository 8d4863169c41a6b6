"""``napari_heartbox.propose`` with the bundled model on phantoms and real scans."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_heartbox as nh
from napari_heartbox.model import HeartModel
from napari_heartbox.sector import box_iou_mm

# Seeds far from the training (0..), calibration (100000..) and test (200000..) ranges.
HELD_OUT = 900_001


@pytest.fixture(scope='module')
def chest_phantom():
    from napari_heartbox.phantom import make_phantom

    return make_phantom(HELD_OUT, coverage='chest', matrix=(512, 512), fov_mm=380.0)


def test_propose_fits_the_phantom_heart_box(chest_phantom):
    calls = []
    s = nh.propose(chest_phantom.volume, margin_mm=0.0, progress=lambda d, t: calls.append((d, t)))
    assert s.found
    assert s.grid == chest_phantom.volume.grid
    assert s.iou(chest_phantom.heart_box) >= 0.75
    assert s.model_sha256 == HeartModel.default().sha256
    z = chest_phantom.volume.shape[0]
    assert calls and calls[-1] == (z, z) and all(0 < d <= t == z for d, t in calls)


def test_margin_grows_the_box(chest_phantom):
    s0 = nh.propose(chest_phantom.volume, margin_mm=0.0)
    s8 = nh.propose(chest_phantom.volume, margin_mm=8.0)
    assert all(a8 <= a0 and b8 >= b0 for (a0, b0), (a8, b8) in zip(s0.ranges, s8.ranges, strict=True))
    assert s8.volume_ml > s0.volume_ml


def test_heart_free_phantom_gives_not_found():
    from napari_heartbox.phantom import make_phantom

    case = make_phantom(HELD_OUT + 1, coverage='abdomen', matrix=(512, 512))
    assert not case.heart_box.found
    s = nh.propose(case.volume)
    assert not s.found
    assert s.confidence < 0.5


# ------------------------------------------------------------------ real scans
def _ref_box(case_dir):
    ref = json.loads((case_dir / 'reference_box.json').read_text())
    b = ref['patient_mm_lps']
    return np.array(b['min']), np.array(b['max'])


@pytest.mark.realdata
@pytest.mark.parametrize('case', ['cptac-lscc-c3n-00247', 'ricord-1a-001012'])
def test_real_chest_ct_box_is_found_around_the_heart(shared_data, case):
    d = shared_data / 'ct' / case
    vol = nh.load_ct(d / 'dicom')
    s = nh.propose(vol, margin_mm=0.0)
    assert s.found
    lo, hi = s.patient_mm()
    rlo, rhi = _ref_box(d)
    centre = (rlo + rhi) / 2
    assert np.all(lo < centre) and np.all(centre < hi)
    assert box_iou_mm(lo, hi, rlo, rhi) >= 0.5  # the card: 0.65 / 0.77; a regression guard, not the target


@pytest.mark.realdata
@pytest.mark.xfail(
    strict=True,
    reason='the phantom-trained model does not yet reach the issue target on real CT '
    '(CPTAC IoU ~0.65, RICORD ~0.77: boxes too large anteriorly and at the top on the contrast scan, '
    'posteriorly on the non-contrast one, where the fat behind the sternum, the vessels above the left '
    'atrium and the oesophagus / descending aorta are partly taken for heart; '
    'see models/MODEL_CARD.md)',
)
@pytest.mark.parametrize('case', ['cptac-lscc-c3n-00247', 'ricord-1a-001012'])
def test_real_chest_ct_meets_the_issue_target(shared_data, case):
    from napari_heartbox.evaluate import box_metrics

    d = shared_data / 'ct' / case
    ref = json.loads((d / 'reference_box.json').read_text())
    s = nh.propose(nh.load_ct(d / 'dicom'), margin_mm=0.0)
    assert s.found
    m = box_metrics(_ref_box(d), s.patient_mm(), uncertainty_mm=ref['uncertainty_mm'])
    assert m['iou'] >= 0.85 and m['all_faces_within_tolerance']


@pytest.mark.realdata
@pytest.mark.parametrize(
    'name',
    [
        'example_ct.nii.gz',
        'example_ct_sm.nii.gz',
        'example_ct_dicom',
    ],
)
def test_real_heart_free_scans_give_not_found(shared_data, name):
    vol = nh.load_ct(shared_data / 'ct' / 'totalseg-example-abdomen' / name)
    s = nh.propose(vol)
    assert not s.found
