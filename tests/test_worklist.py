"""Correction worklist and sector files (pure: no Qt, no napari)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox.errors import HeartboxError
from napari_heartbox.grid import Grid
from napari_heartbox.sector import Sector, sector_schema
from napari_heartbox.sector_file import (
    FILE_SCHEMA_ID,
    SectorFile,
    read_sector_file,
    sector_file_schema,
    write_sector_file,
)
from napari_heartbox.worklist import Worklist, agreement_row, discover_cases


def _write_nifti(path, shape=(6, 8, 10)):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(shape[::-1], np.int16), np.eye(4)), str(path))


def _fake_dicom(path):
    # discovery only looks for the DICM preamble marker, not pixel data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'\0' * 128 + b'DICM' + b'\0' * 16)


@pytest.fixture
def studies(tmp_path):
    root = tmp_path / 'studies'
    root.mkdir()
    _write_nifti(root / 'b_case.nii.gz')
    _write_nifti(root / 'c_case.nii')
    _fake_dicom(root / 'a_case' / 'series' / 'IM0001')
    (root / 'empty_dir').mkdir()
    (root / 'notes.txt').write_text('not a study')
    (root / '.hidden.nii').write_text('')
    return root


@pytest.fixture
def grid():
    return Grid.axis_aligned((6, 8, 10), (3.0, 0.5, 0.5))


def test_discover_cases(studies):
    cases = discover_cases(studies)
    assert [c.id for c in cases] == ['a_case', 'b_case', 'c_case']
    assert cases[0].path == studies / 'a_case'
    assert cases[1].source == 'b_case.nii.gz'


def test_discover_loose_dicom_is_one_case(tmp_path):
    _fake_dicom(tmp_path / 'series' / '1.dcm')
    _fake_dicom(tmp_path / 'series' / '2.dcm')
    assert [c.id for c in discover_cases(tmp_path / 'series')] == ['series']


def test_empty_and_missing_folders(tmp_path):
    assert discover_cases(tmp_path) == []
    with pytest.raises(HeartboxError, match='not a folder of studies'):
        discover_cases(tmp_path / 'nope')


def test_output_inside_input_is_refused(studies):
    with pytest.raises(HeartboxError, match='must not be the input folder'):
        Worklist(studies, studies / 'corrections')
    with pytest.raises(HeartboxError, match='must not be the input folder'):
        Worklist(studies, studies)


def test_record_status_index_and_resume(studies, tmp_path, grid):
    out = tmp_path / 'corrections'
    wl = Worklist(studies, out)
    assert [wl.status(c.id) for c in wl.cases] == ['not opened'] * 3
    prop = Sector(grid, (1, 5), (2, 6), (2, 8), confidence=0.8, series_uid='1.2')
    wl.record('a_case', prop, prop)
    assert wl.status('a_case') == 'proposed'
    edited = prop.with_ranges(z=(1, 4))
    wl.record('b_case', edited, prop)
    assert wl.status('b_case') == 'corrected'
    wl.record('c_case', prop, prop, status='accepted')
    assert wl.next_index(0, unfinished=True) == 1
    assert wl.next_index(1, unfinished=True) is None

    # nothing is written into the input folder
    assert not list(studies.rglob('*.json'))
    index = json.loads((out / 'index.json').read_text())
    assert index['schema'] == 'heartbox.corrections/1'
    assert [r['status'] for r in index['cases']] == [
        'proposed',
        'corrected',
        'accepted',
    ]
    with open(out / 'index.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert rows[1]['case'] == 'b_case' and rows[1]['file'] == 'cases/b_case.json'
    assert float(rows[1]['iou']) == pytest.approx(3 / 4)

    # the index names the studies folder relative to itself, not as an absolute path
    index = json.loads((out / 'index.json').read_text())
    assert not Path(index['input']).is_absolute()
    assert (out / index['input']).resolve() == studies.resolve()
    # a new session on the same folders resumes the statuses
    wl2 = Worklist(studies, out)
    assert wl2.status('b_case') == 'corrected'
    assert wl2.record_of('b_case').corrected.z == (1, 4)
    assert wl2.record_of('b_case').proposal.z == (1, 5)


def test_agreement_numbers_and_plot(studies, tmp_path, grid):
    wl = Worklist(studies, tmp_path / 'out')
    prop = Sector(grid, (1, 5), (2, 6), (2, 8))
    wl.record('a_case', prop, prop, status='accepted')  # reviewed, unchanged
    # corrected: superior face down one slice (3 mm), left face +2 px (1 mm)
    wl.record('b_case', prop.with_ranges(z=(1, 4), x=(2, 10)), prop)
    # merely proposed (opened, not reviewed): not agreement, no IoU in the table
    wl.record('c_case', prop, prop)
    assert wl.status('c_case') == 'proposed'
    assert [r['iou'] is None for r in wl.rows()] == [False, False, True]
    rows, summary = wl.agreement()
    assert [r['case'] for r in rows] == ['a_case', 'b_case']
    assert rows[0]['iou'] == 1.0
    inter, a, b = 3 * 4 * 6, 4 * 4 * 6, 3 * 4 * 8
    assert rows[1]['iou'] == pytest.approx(inter / (a + b - inter))
    # positive = the proposal's face lies outside the corrected box
    assert rows[1]['superior_mm'] == pytest.approx(3.0)
    assert rows[1]['left_mm'] == pytest.approx(-1.0)
    assert rows[1]['inferior_mm'] == pytest.approx(0.0)
    assert rows[1]['max_abs_face_mm'] == pytest.approx(3.0)
    assert summary['n_cases'] == 2
    assert summary['mean_iou'] == pytest.approx((1 + rows[1]['iou']) / 2)
    assert summary['mean_abs_superior_mm'] == pytest.approx(1.5)
    paths = wl.write_agreement()
    assert paths['png'].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    text = paths['csv'].read_text()
    assert 'ALL (mean)' in text and 'b_case' in text


def test_agreement_no_heart_found(grid):
    a = Sector(grid, (1, 5), (2, 6), (2, 8))
    row = agreement_row('c', SectorFile(corrected=a, proposal=Sector.not_found(grid)))
    assert row['iou'] == 0.0 and math.isnan(row['superior_mm'])
    nf = Sector.not_found(grid)
    assert agreement_row('c', SectorFile(corrected=nf, proposal=nf))['iou'] == 1.0


def sector_file_validator():
    """A JSON Schema validator of ``heartbox.sector-file/1`` (with the sector schema it refers to)."""
    jsonschema = pytest.importorskip('jsonschema')
    from referencing import Registry, Resource

    registry = Registry().with_resource(
        'heartbox.sector/1', Resource.from_contents(sector_schema())
    )
    return jsonschema.Draft202012Validator(sector_file_schema(), registry=registry)


def test_sector_file_round_trip_and_schema(tmp_path, grid):
    jsonschema = pytest.importorskip('jsonschema')

    prop = Sector(
        grid,
        (1, 5),
        (2, 6),
        (2, 8),
        confidence=0.9,
        series_uid='1.2.3',
        model_sha256='a' * 64,
    )
    corr = prop.with_ranges(y=(3, 7))
    p = write_sector_file(tmp_path / 'deep' / 's.json', corr, prop)
    d = json.loads(p.read_text())
    assert d['schema'] == FILE_SCHEMA_ID and d['status'] == 'corrected'
    assert d['series_uid'] == '1.2.3' and d['model_sha256'] == 'a' * 64
    validator = sector_file_validator()
    validator.validate(d)
    bad = dict(d, corrected={'schema': 'heartbox.sector/1'})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)
    sf = read_sector_file(p)
    assert sf.corrected.ranges == corr.ranges and sf.proposal.ranges == prop.ranges
    # a bare heartbox.sector/1 object is read as the corrected box
    (tmp_path / 'bare.json').write_text(corr.to_json())
    assert read_sector_file(tmp_path / 'bare.json').corrected.y == (3, 7)


def test_sector_file_errors_are_one_line(tmp_path, grid):
    (tmp_path / 'x.json').write_text('{not json')
    with pytest.raises(HeartboxError, match='x.json: cannot read') as e:
        read_sector_file(tmp_path / 'x.json')
    assert '\n' not in str(e.value)
    (tmp_path / 'y.json').write_text('{"schema": "other"}')
    with pytest.raises(HeartboxError, match='y.json: not a usable sector file'):
        read_sector_file(tmp_path / 'y.json')
    s = Sector(grid, (1, 5), (2, 6), (2, 8))
    write_sector_file(tmp_path / 'z.json', s)
    other = Grid.axis_aligned((9, 9, 9), (1, 1, 1))
    with pytest.raises(HeartboxError, match='does not match'):
        read_sector_file(tmp_path / 'z.json', grid=other)
