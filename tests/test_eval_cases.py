"""The extra real evaluation cases (models.eval_cases) and our hand boxes of them."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from models import eval_cases as ec
from napari_heartbox.sector import Sector


def _write_nrrd(path, arr_zyx, spacing_zyx, origin_lps, encoding='gzip'):
    z, y, x = arr_zyx.shape
    head = (
        'NRRD0004\n# test\ntype: short\ndimension: 3\nspace: left-posterior-superior\n'
        f'sizes: {x} {y} {z}\n'
        f'space directions: ({spacing_zyx[2]},0,0) (0,{spacing_zyx[1]},0) (0,0,{spacing_zyx[0]})\n'
        'kinds: domain domain domain\nendian: little\n'
        f'encoding: {encoding}\nspace origin: ({origin_lps[0]},{origin_lps[1]},{origin_lps[2]})\n\n'
    )
    body = arr_zyx.astype('<i2').tobytes()  # x fastest: NRRD's first axis
    path.write_bytes(head.encode() + (gzip.compress(body) if encoding == 'gzip' else body))


@pytest.mark.parametrize('encoding', ['gzip', 'raw'])
def test_an_nrrd_file_becomes_a_nifti_that_load_ct_reads_in_place(tmp_path, encoding):
    from napari_heartbox.io import load_ct

    rng = np.random.default_rng(1)
    arr = rng.integers(-1024, 1500, size=(5, 7, 9)).astype(np.int16)
    src = tmp_path / 'a.nrrd'
    _write_nrrd(src, arr, (5.0, 0.6, 0.7), (-170.5, -324.5, -360.0), encoding)
    dst = tmp_path / 'a.nii.gz'
    ec.nrrd_to_nifti(src, dst)
    vol = load_ct(dst)
    assert vol.shape == (5, 7, 9)
    np.testing.assert_allclose(vol.grid.spacing, (5.0, 0.6, 0.7), atol=1e-5)
    # every voxel at its NRRD patient position (LPS = origin + index * spacing)
    for z, y, x in [(0, 0, 0), (4, 6, 8), (2, 3, 1)]:
        np.testing.assert_allclose(vol.grid.index_to_lps((z, y, x)),
                                   (-170.5 + 0.7 * x, -324.5 + 0.6 * y, -360.0 + 5.0 * z), atol=1e-4)
        assert vol.hu[z, y, x] == arr[z, y, x]


def test_an_nrrd_file_in_another_space_is_refused_in_one_line(tmp_path):
    src = tmp_path / 'b.nrrd'
    _write_nrrd(src, np.zeros((2, 2, 2), np.int16), (1, 1, 1), (0, 0, 0))
    src.write_bytes(src.read_bytes().replace(b'left-posterior-superior', b'right-anterior-superior'))
    with pytest.raises(RuntimeError, match='b.nrrd: NRRD space'):
        ec.nrrd_to_nifti(src, tmp_path / 'b.nii.gz')


def test_only_the_ct_files_of_a_folder_member_are_unpacked():
    case = next(c for c in ec.CASES if c.is_folder)
    assert ec._wanted(case, case.member + '1-001.dcm')
    assert not ec._wanted(case, case.member + 'sub/1-001.dcm')  # nothing from below the folder
    assert not ec._wanted(case, case.member + '.hidden')
    assert not ec._wanted(case, 'other/' + '1-001.dcm')


def test_every_registered_case_has_a_hand_box_in_the_convention_format():
    for case in ec.CASES:
        box = ec.reference_box(case.id)
        assert box is not None, case.id
        lo, hi = (np.array(box['patient_mm_lps'][k]) for k in ('min', 'max'))
        size = hi - lo
        # a heart: 80-170 mm on each axis
        assert np.all(size > 60) and np.all(size < 180), (case.id, size)
        assert set(box['uncertainty_mm']) == {'x_min', 'x_max', 'y_min', 'y_max', 'z_min', 'z_max'}
        assert 'model' in box['labeller'] and box['notes']


def test_each_hand_box_is_its_voxel_box_on_the_fetched_ct():
    """The LPS box of each hand box is exactly its inclusive voxel box on the grid load_ct gives."""
    from napari_heartbox.io import load_ct

    cases = [c for c in ec.CASES if (ec.cache_root() / c.id / '.complete').is_file()]
    if not cases:
        pytest.skip(f'no evaluation case fetched into {ec.cache_root()} (python -m models.eval_cases)')
    for case in cases:
        box = ec.reference_box(case.id)
        vol = load_ct(ec.case_path(case))
        assert list(vol.shape) == box['shape']
        vi = box['voxel_inclusive']
        lo, hi = Sector.from_inclusive(vol.grid, vi['z'], vi['y'], vi['x']).patient_mm()
        np.testing.assert_allclose(lo, box['patient_mm_lps']['min'], atol=0.05)
        np.testing.assert_allclose(hi, box['patient_mm_lps']['max'], atol=0.05)
        if box.get('SeriesInstanceUID'):
            assert box['SeriesInstanceUID'] == vol.info.series_uid


def test_a_distribution_with_another_hash_is_refused(tmp_path):
    case = ec.CASES[1]
    dist = tmp_path / '_dist'
    dist.mkdir()
    (dist / case.filename).write_bytes(b'not the wheel')
    with pytest.raises(RuntimeError, match='is not the registered'):
        ec.fetch(case, tmp_path, log=lambda *_: None)
    assert not (tmp_path / case.id).exists()
    json.dumps(case.__dict__)  # the registry is plain data
