"""Reader, writer and sample-data contributions (layer data; no GL needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox._napari.layers import (
    CT_CONTRAST_LIMITS,
    layer_data_from_volume,
    volume_from_layer,
    world_matrix,
)
from napari_heartbox._reader import get_reader
from napari_heartbox._writer import write_nifti, write_sector
from napari_heartbox.sector import Sector
from napari_heartbox.sector_file import read_sector_file, write_sector_file
from napari_heartbox.volume import CTVolume


@pytest.fixture
def volume():
    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 1000, size=(7, 24, 20)).astype(np.int16)
    return CTVolume.from_array(
        hu, spacing=(2.5, 0.8, 0.7), origin_lps=(-30.0, -60.0, -200.0)
    )


@pytest.fixture
def dicom_folder(volume, tmp_path):
    from napari_heartbox.io import write_dicom_series

    folder = tmp_path / 'study' / 'dicom'
    write_dicom_series(volume, folder, shuffle_names=True)
    return folder


def test_reader_declines_what_it_cannot_read(tmp_path):
    (tmp_path / 'notes.txt').write_text('hello')
    (tmp_path / 'other.json').write_text('{"a": 1}')
    (tmp_path / 'empty').mkdir()
    assert get_reader(str(tmp_path / 'notes.txt')) is None
    assert get_reader(str(tmp_path / 'other.json')) is None
    assert get_reader(str(tmp_path / 'empty')) is None
    assert get_reader(str(tmp_path / 'missing.nii.gz')) is None
    assert get_reader([str(tmp_path / 'notes.txt'), str(tmp_path / 'x.txt')]) is None


def test_reader_dicom_folder_geometry(dicom_folder, volume):
    reader = get_reader(str(dicom_folder))
    assert callable(reader)
    [(data, meta, kind)] = reader(str(dicom_folder))
    assert kind == 'image'
    np.testing.assert_array_equal(data, volume.hu)
    assert meta['name'] == 'study'  # ".../study/dicom" is named after the study
    np.testing.assert_allclose(meta['scale'], (2.5, 0.8, 0.7))
    # world = (S, P, L) mm of voxel (0, 0, 0)'s centre
    np.testing.assert_allclose(meta['translate'], (-200.0, -60.0, -30.0), atol=1e-4)
    assert meta['axis_labels'] == ('z', 'y', 'x') and meta['units'] == ('mm',) * 3
    assert meta['contrast_limits'] == CT_CONTRAST_LIMITS
    stored = meta['metadata']['heartbox']
    assert stored['volume'].hu is data and stored['grid']['shape'] == [7, 24, 20]


def test_reader_bad_dicom_gives_no_layer_not_a_traceback(tmp_path):
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'x.dcm').write_bytes(b'\0' * 128 + b'DICM' + b'garbage' * 10)
    reader = get_reader(str(bad))
    assert callable(reader)
    assert reader(str(bad)) == [(None,)]  # npe2's "nothing to show" sentinel


def test_flipped_grid_uses_an_affine(volume):
    from napari_heartbox.grid import Grid

    a = volume.grid.matrix
    a[:3, 2] *= -1  # x index runs towards patient right
    flipped = CTVolume(volume.hu, Grid(volume.shape, volume.spacing, a))
    _, meta, _ = layer_data_from_volume(flipped)
    assert 'scale' not in meta
    np.testing.assert_allclose(meta['affine'], world_matrix(flipped.grid))


def test_nifti_writer_round_trip(volume, tmp_path):
    from napari_heartbox.io import load_ct

    sector = Sector(volume.grid, (1, 5), (3, 20), (2, 11))
    crop = volume.crop(sector)
    data, meta, _ = layer_data_from_volume(crop, name='crop')
    [path] = write_nifti(str(tmp_path / 'crop.nii.gz'), data, meta)
    back = load_ct(path)
    np.testing.assert_array_equal(back.hu, crop.hu)
    np.testing.assert_allclose(back.grid.matrix, crop.grid.matrix, atol=1e-4)
    # without our metadata the writer uses the layer transform (scale/translate)
    meta2 = {k: v for k, v in meta.items() if k != 'metadata'}
    [path2] = write_nifti(str(tmp_path / 'plain'), data, meta2)
    assert path2.endswith('.nii.gz')
    np.testing.assert_allclose(load_ct(path2).grid.matrix, crop.grid.matrix, atol=1e-4)


def test_sector_writer_and_reader(volume, tmp_path):
    prop = Sector(
        volume.grid, (1, 5), (3, 20), (2, 11), confidence=0.7, series_uid='9.8'
    )
    corr = prop.with_ranges(z=(2, 5))
    meta = {
        'name': 'ct heart sector',
        'metadata': {
            'heartbox_sector_file': {
                'corrected': corr.to_dict(),
                'proposal': prop.to_dict(),
            }
        },
    }
    [path] = write_sector(str(tmp_path / 'box'), None, meta)
    assert path.endswith('box.json')
    sf = read_sector_file(path)
    assert sf.corrected.ranges == corr.ranges and sf.proposal.ranges == prop.ranges
    assert (
        sf.status == 'corrected'
        and json.loads(Path(path).read_text())['series_uid'] == '9.8'
    )

    reader = get_reader(path)
    [(pts, pmeta, kind)] = reader(path)
    assert kind == 'points' and pts.shape == (6, 3)
    # the handles sit on the corrected box's boundary voxels, in the grid's world
    assert pts[:, 0].min() == 2 and pts[:, 0].max() == 4
    np.testing.assert_allclose(pmeta['affine'], world_matrix(volume.grid))


def test_sector_writer_refuses_other_points_layers(tmp_path):
    from napari_heartbox.errors import HeartboxError

    with pytest.raises(HeartboxError, match='not a heart-sector layer'):
        write_sector(
            str(tmp_path / 'x.json'), np.zeros((2, 3)), {'name': 'pts', 'metadata': {}}
        )


def test_not_found_sector_file_gives_no_layer(volume, tmp_path):
    p = write_sector_file(tmp_path / 'nf.json', Sector.not_found(volume.grid))
    assert get_reader(str(p))(str(p)) == [(None,)]


def test_volume_from_plain_layer_data(volume):
    # a layer made without our metadata (e.g. another plugin) is rebuilt
    class FakeAffine:
        affine_matrix = np.eye(4)

    class Layer:
        data = volume.hu.astype(np.float32)
        metadata = {}
        scale = (2.5, 0.8, 0.7)
        translate = (-200.0, -60.0, -30.0)
        affine = FakeAffine()

    vol = volume_from_layer(Layer())
    np.testing.assert_array_equal(vol.hu, volume.hu)
    np.testing.assert_allclose(vol.grid.matrix, volume.grid.matrix)


def test_sample_data_is_a_ct_layer():
    from napari_heartbox._sample_data import synthetic_chest_ct

    [(data, meta, kind)] = synthetic_chest_ct()
    assert kind == 'image' and data.ndim == 3 and data.dtype == np.int16
    assert data.shape[1:] == (512, 512)
    assert meta['name'] == 'Synthetic chest CT' and len(meta['scale']) == 3


@pytest.mark.realdata
def test_reader_on_real_cptac(shared_data):
    folder = shared_data / 'ct' / 'cptac-lscc-c3n-00247' / 'dicom'
    [(data, meta, kind)] = get_reader(str(folder))(str(folder))
    assert kind == 'image' and data.shape == (99, 512, 512)
    np.testing.assert_allclose(meta['scale'], (3.0, 0.564453125, 0.564453125))
    # world (S, P, L) of the first voxel centre = the lowest slice's IPP (z, y, x)
    np.testing.assert_allclose(
        meta['translate'], (-288.0, -287.2178, -143.2178), atol=1e-3
    )
    assert meta['name'] == 'cptac-lscc-c3n-00247'
