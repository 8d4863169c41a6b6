"""NIfTI reading: RAS on disk becomes the LPS (z, y, x) convention."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_heartbox.errors import CTLoadError
from napari_heartbox.grid import Grid
from napari_heartbox.io import load_ct
from napari_heartbox.volume import CTVolume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse


def phantom(nz=6, ny=10, nx=12):
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing='ij')
    return (-1000 + 97 * z + 5 * y + 2 * x).astype(np.int16)


def save_as_nifti(vol: CTVolume, path, axes=(2, 1, 0), dtype=None):
    """Write ``vol`` with its array axes permuted (default (x, y, z) on disk)."""
    data = np.transpose(vol.hu, axes)
    q = np.zeros((4, 4))  # disk index -> (z, y, x) index
    for disk_axis, vol_axis in enumerate(axes):
        q[vol_axis, disk_axis] = 1.0
    q[3, 3] = 1.0
    ras = RAS_TO_LPS @ vol.grid.matrix @ q
    img = nib.Nifti1Image(data.astype(dtype or data.dtype), ras)
    nib.save(img, str(path))
    return ras


@pytest.mark.parametrize('suffix', ['.nii', '.nii.gz'])
@pytest.mark.parametrize(
    'axes', [(2, 1, 0), (0, 1, 2), (1, 2, 0)], ids=['xyz', 'zyx', 'yxz']
)
def test_round_trip_keeps_voxels_and_lps_geometry(tmp_path, suffix, axes):
    vol = CTVolume.from_array(
        phantom(), spacing=(3.0, 0.8, 0.7), origin_lps=(-40.0, -60.0, -200.0)
    )
    path = tmp_path / f'ct{suffix}'
    save_as_nifti(vol, path, axes)
    loaded = load_ct(path)
    np.testing.assert_array_equal(loaded.hu, vol.hu)
    np.testing.assert_allclose(loaded.affine, vol.affine, atol=1e-5)
    assert loaded.spacing == pytest.approx(vol.spacing)
    assert loaded.info.source_format == 'nifti'


def test_ras_canonical_file_is_converted_to_lps(tmp_path):
    """A plain RAS+ file: i -> Right, j -> Anterior, k -> Superior."""
    data = phantom().transpose(2, 1, 0)  # (i, j, k)
    ras = np.diag([0.7, 0.8, 3.0, 1.0])
    ras[:3, 3] = [10.0, 20.0, -100.0]
    path = tmp_path / 'ras.nii.gz'
    nib.save(nib.Nifti1Image(data, ras), str(path))
    vol = load_ct(path)
    # x runs left = -i, y runs posterior = -j: both flipped; z = k
    assert vol.affine[0, 2] == pytest.approx(0.7)
    assert vol.affine[1, 1] == pytest.approx(0.8)
    assert vol.affine[2, 0] == pytest.approx(3.0)
    # voxel (i, j, k) = (0, 0, 0) sits at RAS (10, 20, -100) = LPS (-10, -20, -100)
    ni, nj, _ = data.shape
    zyx = (0, nj - 1, ni - 1)
    np.testing.assert_allclose(vol.grid.index_to_lps(zyx), [-10.0, -20.0, -100.0])
    assert vol.hu[zyx] == data[0, 0, 0]


def test_float_nifti_is_rounded_to_int16(tmp_path):
    vol = CTVolume.from_array(phantom(), spacing=(2.0, 1.0, 1.0))
    path = tmp_path / 'f.nii'
    save_as_nifti(vol, path, dtype=np.float32)
    np.testing.assert_array_equal(load_ct(path).hu, vol.hu)


def test_sheared_grid_round_trip(tmp_path):
    a = np.array(
        [[0, 0, 0.7, 5.0], [0.4, 0.8, 0, 6.0], [2.0, 0, 0, 7.0], [0, 0, 0, 1.0]]
    )
    vol = CTVolume(phantom(), Grid((6, 10, 12), (2.0, 0.8, 0.7), a))
    path = tmp_path / 'sheared.nii.gz'
    save_as_nifti(vol, path)
    loaded = load_ct(path)
    np.testing.assert_allclose(loaded.affine, a, atol=1e-5)
    assert loaded.spacing[0] == pytest.approx(2.0)


def test_4d_nifti_is_refused(tmp_path):
    path = tmp_path / 'four.nii'
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.int16), np.eye(4)), str(path))
    with pytest.raises(CTLoadError, match=r'four\.nii: NIfTI has 4 dimensions'):
        load_ct(path)


def test_corrupt_nifti_is_refused(tmp_path):
    path = tmp_path / 'junk.nii.gz'
    path.write_bytes(b'not a nifti at all')
    with pytest.raises(CTLoadError, match=r'junk\.nii\.gz: cannot read'):
        load_ct(path)


def test_folder_with_one_nifti_loads_it(tmp_path):
    vol = CTVolume.from_array(phantom(), spacing=(2.0, 1.0, 1.0))
    save_as_nifti(vol, tmp_path / 'only.nii.gz')
    np.testing.assert_array_equal(load_ct(tmp_path).hu, vol.hu)
    save_as_nifti(vol, tmp_path / 'second.nii')
    with pytest.raises(CTLoadError, match='holds 2 NIfTI files'):
        load_ct(tmp_path)
