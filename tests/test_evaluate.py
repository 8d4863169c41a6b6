"""``napari_heartbox.evaluate`` and ``napari-heartbox evaluate``.

The metric tests compare against numbers worked out by hand in the test (box
arithmetic), not against the module's own helpers. Phantom tests write a
synthetic CT (DICOM) and its heart mask (NIfTI) into ``tmp_path``; the tests
that need the trained model use the bundled one (committed with the package).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox._box_overlay import PROPOSED_RGB, REFERENCE_RGB, render_box_views
from napari_heartbox._png import encode_png, read_png, write_png
from napari_heartbox.cli import main
from napari_heartbox.errors import HeartboxError
from napari_heartbox.evaluate import (
    FACES,
    box_metrics,
    evaluate_manifest,
    evaluate_volume,
    face_errors_mm,
    format_table,
    load_manifest,
    mask_box_mm,
    mask_coverage,
)
from napari_heartbox.grid import Grid
from napari_heartbox.sector import Sector
from napari_heartbox.volume import CTVolume

# reference box and a proposal, LPS (x, y, z) mm at voxel edges
REF = ([0.0, 0.0, 0.0], [100.0, 80.0, 60.0])
PROP = ([-2.0, 3.0, 0.0], [101.0, 80.0, 55.0])
# by hand: intersection 100 × 77 × 55, volumes 100·80·60 and 103·77·55
HAND_IOU = (100 * 77 * 55) / (100 * 80 * 60 + 103 * 77 * 55 - 100 * 77 * 55)
HAND_FACES = {  # + = proposed face outside the reference box
    'right': 2.0,  # x min: proposal at -2, reference at 0 → 2 mm outside
    'left': 1.0,  # x max: 101 vs 100
    'anterior': -3.0,  # y min: 3 vs 0 → cuts 3 mm in
    'posterior': 0.0,
    'inferior': 0.0,
    'superior': -5.0,  # z max: 55 vs 60
}


# ------------------------------------------------------------ pure metrics
def test_face_errors_are_named_signed_and_exact():
    assert face_errors_mm(*REF, *PROP) == HAND_FACES
    assert list(FACES) == [
        'right',
        'left',
        'anterior',
        'posterior',
        'inferior',
        'superior',
    ]


def test_box_metrics_iou_and_tolerance_by_hand():
    unc = {
        'x_min_patient_right': 1.0,
        'x_max': 1.0,
        'y_min': 0.5,
        'y_max': 1.0,
        'z_min': 1.0,
        'z_max': 0.0,
    }
    m = box_metrics(REF, PROP, uncertainty_mm=unc, tolerance_mm=4.0)
    assert m['iou'] == pytest.approx(HAND_IOU, abs=1e-12)
    assert m['mean_abs_face_error_mm'] == pytest.approx((2 + 1 + 3 + 0 + 0 + 5) / 6)
    assert m['max_abs_face_error_mm'] == 5.0
    # superior: |−5| > 0 + 4 → outside; every other face within uncertainty + 4
    assert m['face_within_tolerance'] == {f: f != 'superior' for f in FACES}
    assert m['all_faces_within_tolerance'] is False
    assert box_metrics(REF, REF)['iou'] == 1.0


def test_mask_box_and_coverage_by_hand():
    # grid: spacing (dz, dy, dx) = (2, 1, 0.5); voxel (0,0,0) centre at LPS (10, 20, 30)
    grid = Grid.axis_aligned(
        (8, 10, 12), (2.0, 1.0, 0.5), origin_lps=(10.0, 20.0, 30.0)
    )
    mask = np.zeros(grid.shape, np.uint8)
    mask[3:6, 4:7, 7:10] = 1  # 27 voxels: z 3..5, y 4..6, x 7..9 (inclusive)
    lo, hi = mask_box_mm(mask, grid)
    # x edges: 10 + (7 - 0.5)·0.5 and 10 + (9 + 0.5)·0.5; y: 20 + 3.5, 20 + 6.5; z: 30 + 2.5·2, 30 + 5.5·2
    np.testing.assert_allclose(lo, [13.25, 23.5, 35.0])
    np.testing.assert_allclose(hi, [14.75, 26.5, 41.0])
    assert mask_coverage(mask, grid, (lo, hi)) == 1.0
    # a box whose superior face sits between slice 4 and 5 (z edge 30 + 4.5·2 = 39): 2 of 3 slices
    assert mask_coverage(mask, grid, (lo, [hi[0], hi[1], 39.0])) == pytest.approx(
        18 / 27
    )
    assert mask_coverage(mask, grid, None) == 0.0
    assert mask_box_mm(np.zeros(grid.shape), grid) is None
    assert mask_coverage(np.zeros(grid.shape), grid, (lo, hi)) is None


def test_evaluate_volume_with_a_given_sector():
    vol = CTVolume.from_array(np.zeros((20, 30, 40), np.int16), spacing=(2.0, 1.0, 1.0))
    mask = np.zeros(vol.shape, bool)
    mask[5:15, 10:20, 10:30] = True
    exact = Sector(vol.grid, (5, 15), (10, 20), (10, 30))
    r = evaluate_volume(vol, proposed=exact, heart_mask=mask)
    assert r['iou'] == 1.0 and r['coverage'] == 1.0 and r['found_correct'] is True
    assert all(v == 0.0 for v in r['face_error_mm'].values())
    # one slice short at the top: superior face 2 mm inside, 1 of 10 slices uncovered
    short = Sector(vol.grid, (5, 14), (10, 20), (10, 30))
    r = evaluate_volume(vol, proposed=short, heart_mask=mask)
    assert r['face_error_mm']['superior'] == -2.0
    assert r['coverage'] == pytest.approx(0.9)
    assert r['iou'] == pytest.approx(0.9)
    # nothing proposed on a heart case: IoU 0, coverage 0, wrong
    r = evaluate_volume(vol, proposed=Sector.not_found(vol.grid), heart_mask=mask)
    assert (r['iou'], r['coverage'], r['found_correct']) == (0.0, 0.0, False)
    # heart-free volume, nothing proposed: right
    r = evaluate_volume(vol, proposed=Sector.not_found(vol.grid), heart=False)
    assert r['found_correct'] is True and r['iou'] is None


# ------------------------------------------------------ manifest + predictions
def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding='utf-8')
    return path


@pytest.fixture
def boxes_only(tmp_path):
    """A manifest of reference boxes and a second 'annotator' file (no CT needed)."""
    manifest = _write(
        tmp_path / 'manifest.json',
        {
            'schema': 'heartbox.manifest/1',
            'tolerance_mm': 4.0,
            'cases': [
                {
                    'id': 'a',
                    'path': 'a_ct',
                    'box_mm': {'min': REF[0], 'max': REF[1]},
                    'uncertainty_mm': {
                        'right': 1,
                        'left': 1,
                        'anterior': 0.5,
                        'posterior': 1,
                        'inferior': 1,
                        'superior': 0,
                    },
                },
                {'id': 'b', 'box_mm': {'min': [10, 10, 10], 'max': [20, 20, 20]}},
                {'id': 'abdomen', 'heart': False},
                {'id': 'legs', 'heart': False},
            ],
        },
    )
    preds = _write(
        tmp_path / 'annotator2.json',
        {
            'schema': 'heartbox.predictions/1',
            'predictions': {
                'a': {'found': True, 'box_mm': {'min': PROP[0], 'max': PROP[1]}},
                'b': {'found': False},
                'abdomen': {'found': False},
                'legs': {'found': True, 'box_mm': {'min': [0, 0, 0], 'max': [1, 1, 1]}},
            },
        },
    )
    return manifest, preds


def test_predictions_mode_gives_hand_computed_metrics(boxes_only):
    manifest, preds = boxes_only
    report = evaluate_manifest(manifest, predictions=preds)
    cases = {c['id']: c for c in report['cases']}
    a = cases['a']
    assert a['iou'] == pytest.approx(HAND_IOU, abs=1e-6)
    assert a['face_error_mm'] == HAND_FACES
    assert a['all_faces_within_tolerance'] is False  # superior −5 > 0 + 4
    assert a['found_correct'] is True
    assert (cases['b']['iou'], cases['b']['found_correct']) == (
        0.0,
        False,
    )  # missed heart
    assert cases['abdomen']['found_correct'] is True
    assert cases['legs']['found_correct'] is False  # false box on a heart-free case
    s = report['summary']
    assert (s['n_cases'], s['n_heart'], s['n_no_heart'], s['n_errors']) == (4, 2, 2, 0)
    assert (s['n_missed_heart'], s['n_false_box'], s['found_accuracy']) == (1, 1, 0.5)
    assert s['iou']['median'] == pytest.approx(
        HAND_IOU / 2, abs=1e-4
    )  # median of {HAND_IOU, 0}
    assert s['faces']['anterior']['mean_signed'] == -3.0
    assert s['mean_abs_face_error_mm']['mean'] == pytest.approx(11 / 6, abs=1e-4)
    assert (s['n_all_faces_within_tolerance'], s['n_with_uncertainty']) == (0, 1)
    assert report['settings']['source'] == 'predictions'
    table = format_table(report)
    assert 'false boxes 1' in table and 'missed hearts 1' in table


def test_cli_predictions_report_roundtrip(boxes_only, tmp_path, capsys):
    manifest, preds = boxes_only
    out = tmp_path / 'out' / 'report.json'
    assert (
        main(
            ['evaluate', str(manifest), '--predictions', str(preds), '--out', str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert 'IoU median' in printed and f'{HAND_IOU:6.3f}' in printed
    report = json.loads(out.read_text())
    assert report['schema'] == 'heartbox.evaluation/1'
    # a report can be fed back as predictions: same boxes → same metrics
    again = evaluate_manifest(manifest, predictions=out)
    assert [c.get('iou') for c in again['cases']] == [
        c.get('iou') for c in report['cases']
    ]


def test_reference_file_keys_are_read(tmp_path):
    ref = _write(
        tmp_path / 'reference_box.json',
        {
            'SeriesInstanceUID': '1.2.3',
            'patient_mm_lps': {'min': REF[0], 'max': REF[1]},
            'uncertainty_mm': {
                'z_min_inferior': 3.0,
                'x_max_patient_left': 3.5,
                'y_min': 2.5,
            },
        },
    )
    manifest = _write(
        tmp_path / 'm.json',
        {'cases': [{'id': 'r', 'path': 'ct', 'reference': ref.name}]},
    )
    (spec,), _ = load_manifest(manifest)
    assert spec.series_uid == '1.2.3'
    assert spec.uncertainty_mm == {'inferior': 3.0, 'left': 3.5, 'anterior': 2.5}
    np.testing.assert_array_equal(spec.box_mm[1], REF[1])
    assert spec.path == tmp_path / 'ct'


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        ('{not json', 'not valid JSON'),
        ('{"cases": [{"id": "x", "path": "ct"}]}', 'needs a reference'),
        (
            '{"cases": [{"id": "x", "heart": false}, {"id": "x", "heart": false}]}',
            'duplicate case id',
        ),
        (
            '{"cases": [{"id": "x", "box_mm": {"min": [0,0,0], "max": [0,1,1]}}]}',
            'bad "box_mm"',
        ),
        ('{"schema": "other/9", "cases": []}', 'unsupported manifest schema'),
    ],
)
def test_bad_manifest_is_one_line_error(tmp_path, content, message, capsys):
    m = tmp_path / 'bad.json'
    m.write_text(content)
    with pytest.raises(HeartboxError, match=message):
        load_manifest(m)
    assert main(['evaluate', str(m)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(m) in err and 'Traceback' not in err


def test_missing_manifest_cli_subprocess(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'napari_heartbox',
            'evaluate',
            str(tmp_path / 'nope.json'),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert 'Traceback' not in r.stderr and 'nope.json: manifest not found' in r.stderr


# ---------------------------------------------------------------- PNG overlay
def test_png_roundtrip_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (3, 9), dtype=np.uint8)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / 'c.png', rgb)), rgb)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / 'g.png', grey)), grey)
    assert encode_png(grey)[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(ValueError):
        encode_png(grey.astype(np.float32))


def test_overlay_draws_boxes_where_they_are():
    # 40 slices of 64×64, 1 mm voxels; boxes in LPS (x, y, z)
    vol = CTVolume.from_array(
        np.full((40, 64, 64), 40, np.int16), spacing=(1.0, 1.0, 1.0)
    )
    ref = ([9.5, 19.5, 9.5], [29.5, 39.5, 29.5])  # voxels x 10..29, y 20..39, z 10..29
    img = render_box_views(
        vol,
        [(*ref, REFERENCE_RGB), ([40.5, 4.5, 0.5], [50.5, 14.5, 5.5], PROPOSED_RGB)],
        size_px=64,
    )
    assert img.dtype == np.uint8 and img.ndim == 3
    axial = img[:, :64]
    green = np.all(axial == REFERENCE_RGB, axis=2)
    rows, cols = np.nonzero(green)
    # 1 mm voxels at 1 mm display pixels: the outline spans rows 20..39, columns 10..29
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 39, 10, 29)
    magenta = np.all(axial == PROPOSED_RGB, axis=2)
    rows, cols = np.nonzero(magenta)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 14, 41, 50)
    # coronal panel (after a 4-px gap): superior at the top, z 10..29 → rows 40-1-29 .. 40-1-10
    coronal = img[:, 68 : 68 + 64]
    rows, cols = np.nonzero(np.all(coronal == REFERENCE_RGB, axis=2))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 29, 10, 29)


# ---------------------------------------------------------- phantom manifests
def _write_nifti_mask(mask: np.ndarray, grid: Grid, path: Path) -> Path:
    """Write a (z, y, x) mask on an LPS grid as NIfTI (RAS, (i, j, k) = (x, y, z))."""
    nib = pytest.importorskip('nibabel')
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    zyx_to_xyz = np.zeros((4, 4))
    zyx_to_xyz[0, 2] = zyx_to_xyz[1, 1] = zyx_to_xyz[2, 0] = zyx_to_xyz[3, 3] = 1.0
    affine = lps_to_ras @ grid.matrix @ zyx_to_xyz  # (i=x, j=y, k=z) → RAS
    img = nib.Nifti1Image(
        np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)), affine
    )
    nib.save(img, str(path))
    return path


SMALL = {'matrix': (160, 160), 'slice_spacing_mm': 5.0}  # fast phantoms (~0.3 s each)
REALISTIC = {
    'matrix': (512, 512),
    'slice_spacing_mm': 3.0,
}  # what the model is trained for


def _phantom_cases(tmp_path, **phantom_kw):
    """Two chest phantoms (DICOM + NIfTI heart mask) and a heart-free abdomen phantom."""
    import napari_heartbox.io as io
    from napari_heartbox.phantom import make_phantom

    cases, truth = [], {}
    for seed in (1, 2):
        case = make_phantom(seed, coverage='chest', **phantom_kw)
        vol, mask = case.volume, np.asarray(case.heart_mask)
        assert mask.any()
        folder = tmp_path / f'phantom{seed}'
        io.write_dicom_series(vol, folder, seed=seed)
        _write_nifti_mask(mask, vol.grid, tmp_path / f'phantom{seed}_heart.nii.gz')
        cases.append(
            {
                'id': f'phantom{seed}',
                'path': folder.name,
                'mask': f'phantom{seed}_heart.nii.gz',
            }
        )
        truth[f'phantom{seed}'] = (vol, mask)
    abdomen = make_phantom(3, coverage='abdomen', **phantom_kw)
    assert not np.asarray(abdomen.heart_mask).any()
    io.write_dicom_series(abdomen.volume, tmp_path / 'abdomen', seed=3)
    cases.append({'id': 'abdomen', 'path': 'abdomen', 'heart': False})
    manifest = _write(tmp_path / 'manifest.json', {'cases': cases})
    return manifest, truth


@pytest.fixture
def phantom_manifest(tmp_path):
    """Small phantoms: checks the metric plumbing (DICOM + NIfTI masks), not the model."""
    return _phantom_cases(tmp_path, **SMALL)


def test_phantom_manifest_with_exact_predictions(phantom_manifest, tmp_path):
    """Mask-derived boxes given as predictions: IoU 1, zero face error, full coverage, PNGs."""
    manifest, truth = phantom_manifest
    preds = {}
    for cid, (vol, mask) in truth.items():
        lo, hi = mask_box_mm(mask, vol.grid)
        preds[cid] = {'found': True, 'box_mm': {'min': lo.tolist(), 'max': hi.tolist()}}
    preds['abdomen'] = {'found': False}
    png_dir = tmp_path / 'png'
    report = evaluate_manifest(manifest, predictions=preds, png_dir=png_dir)
    written = {c['id']: c['path'] for c in json.loads(Path(manifest).read_text())['cases']}
    for c in report['cases']:
        assert 'error' not in c, c.get('error')
        assert c['path'] == written[c['id']]  # as the manifest wrote it: no absolute path (issue 18)
        assert c['found_correct'] is True
        if c['heart_expected']:
            assert c['iou'] == pytest.approx(1.0, abs=1e-5)  # NIfTI stores the affine as float32
            assert max(abs(v) for v in c['face_error_mm'].values()) < 1e-3
            assert c['coverage'] == 1.0
        img = read_png(c['png'])
        assert img.ndim == 3
        assert np.all(img == REFERENCE_RGB, axis=2).any() == c['heart_expected']
        assert np.all(img == PROPOSED_RGB, axis=2).any() == c['found']
    assert sorted(p.name for p in png_dir.iterdir()) == sorted(
        f'{c["id"]}.png' for c in report['cases']
    )


@pytest.mark.slow
def test_phantom_manifest_with_the_model(tmp_path):
    """The real pipeline (load_ct + propose) on 512² phantoms with the bundled model."""
    manifest, truth = _phantom_cases(tmp_path, **REALISTIC)
    out = tmp_path / 'report.json'
    # the tight box (margin 0): the default safety margin would lower every IoU
    report = evaluate_manifest(manifest, png_dir=tmp_path / 'png', margin_mm=0.0)
    out.write_text(json.dumps(report))
    s = report['summary']
    assert s['n_errors'] == 0
    for c in report['cases']:
        assert c['runtime_s']['propose'] > 0 and c['runtime_s']['load'] > 0
        assert c['found_correct'], c  # the abdomen phantom must give found = false
        if c['heart_expected']:
            assert c['found'] and c['iou'] > 0.5, c
            assert 0.0 <= c['coverage'] <= 1.0
    # the model card's default margin is there to contain the heart
    from napari_heartbox import propose

    for vol, mask in truth.values():
        sector = propose(vol)
        assert mask[sector.slices].sum() >= 0.99 * mask.sum()


@pytest.mark.realdata
def test_real_reference_files_parse(shared_data, tmp_path):
    cases = []
    for name in ('cptac-lscc-c3n-00247', 'ricord-1a-001012'):
        cases.append(
            {
                'id': name,
                'path': str(shared_data / 'ct' / name / 'dicom'),
                'reference': str(shared_data / 'ct' / name / 'reference_box.json'),
            }
        )
    manifest = _write(tmp_path / 'real.json', {'cases': cases})
    specs, _ = load_manifest(manifest)
    for spec in specs:
        ref = json.loads((spec.path.parent / 'reference_box.json').read_text())
        np.testing.assert_allclose(spec.box_mm[0], ref['patient_mm_lps']['min'])
        assert set(spec.uncertainty_mm) == set(FACES)
    # scoring a reference against itself: perfect, independent of the CT
    preds = {
        s.id: {
            'found': True,
            'box_mm': {'min': s.box_mm[0].tolist(), 'max': s.box_mm[1].tolist()},
        }
        for s in specs
    }
    report = evaluate_manifest(manifest, predictions=preds)
    assert [c['iou'] for c in report['cases']] == [1.0, 1.0]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cases_with_the_model(shared_data, tmp_path):
    """Real chest CTs are found near their reference box, and the default
    margin's box contains it; the heart-free abdomen is not found. (The
    issue's IoU ≥ 0.85 target is the strict xfail in test_model_propose.)"""
    ct = shared_data / 'ct'
    cases = [
        {
            'id': n,
            'path': str(ct / n / 'dicom'),
            'reference': str(ct / n / 'reference_box.json'),
        }
        for n in ('cptac-lscc-c3n-00247', 'ricord-1a-001012')
    ]
    cases.append(
        {
            'id': 'abdomen',
            'path': str(ct / 'totalseg-example-abdomen' / 'example_ct_sm.nii.gz'),
            'heart': False,
        }
    )
    manifest = _write(tmp_path / 'real.json', {'cases': cases})
    tight = evaluate_manifest(manifest, margin_mm=0.0)
    default = evaluate_manifest(manifest)  # the model card's margin
    print(format_table(tight))
    for report in (tight, default):
        assert all('error' not in c for c in report['cases']), report['cases']
        by_id = {c['id']: c for c in report['cases']}
        assert by_id['abdomen']['found'] is False
    for n in ('cptac-lscc-c3n-00247', 'ricord-1a-001012'):
        t = {c['id']: c for c in tight['cases']}[n]
        d = {c['id']: c for c in default['cases']}[n]
        # margin 0: the card reports IoU 0.65 / 0.77; 0.5 guards against a regression
        assert t['found'] and t['iou'] >= 0.5, t
        # the default margin is there to contain the heart: every face at or outside the reference's
        assert d['found'] and min(d['face_error_mm'].values()) >= 0.0, d


def test_cli_options_reach_the_report(phantom_manifest, tmp_path, capsys):
    """``evaluate --out --png-dir --margin-mm --tolerance-mm [--quiet]`` with the bundled model."""
    manifest, truth = phantom_manifest
    out, png = tmp_path / 'r' / 'report.json', tmp_path / 'png'
    args = ['evaluate', str(manifest), '--out', str(out), '--png-dir', str(png)]
    assert main([*args, '--margin-mm', '0', '--tolerance-mm', '7']) == 0
    cap = capsys.readouterr()
    tight = json.loads(out.read_text())
    assert tight['settings'] == {**tight['settings'], 'margin_mm': 0.0, 'tolerance_mm': 7.0}
    assert sorted(p.name for p in png.iterdir()) == sorted(f'{c}.png' for c in (*truth, 'abdomen'))
    assert f'report written to {out}' in cap.out
    assert [ln.split(':')[0].strip() for ln in cap.err.splitlines()] == [*truth, 'abdomen']  # per case
    assert main([*args, '--margin-mm', '10', '--quiet']) == 0
    cap = capsys.readouterr()
    assert cap.err == ''
    wide = json.loads(out.read_text())
    assert wide['settings']['margin_mm'] == 10.0 and wide['settings']['tolerance_mm'] == 5.0
    assert sum(c['found'] for c in tight['cases']) == len(truth)  # both chest phantoms
    for t, w in zip(tight['cases'], wide['cases'], strict=True):
        if t['found'] and w['found']:  # 10 mm more on every face (up to voxel rounding)
            assert all(w['face_error_mm'][f] > t['face_error_mm'][f] + 5 for f in t['face_error_mm'])
    assert main([*args[:2], '--out', str(tmp_path)]) == 2
    assert '--out must be a file path' in capsys.readouterr().err
