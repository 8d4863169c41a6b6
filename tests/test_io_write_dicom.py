"""The synthetic DICOM writer produces valid CT series that pydicom reads back."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from napari_heartbox.grid import Grid
from napari_heartbox.io import write_dicom_series
from napari_heartbox.volume import CTVolume


def _volume(shape=(4, 24, 32), seed=0):
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1024, 3000, shape).astype(np.int16)
    return CTVolume.from_array(hu, spacing=(2.5, 0.7, 0.8), origin_lps=(-10, -20, -300))


@pytest.mark.parametrize(
    'kw',
    [
        {},
        {'transfer_syntax': 'implicit'},
        {'unsigned': True},
        {'slope': 0.5, 'intercept': -1000.0},
        {'intercept': 0.0},
    ],
    ids=['explicit', 'implicit', 'unsigned', 'slope-half', 'intercept-0'],
)
def test_round_trip_through_pydicom(tmp_path, kw):
    vol = _volume()
    paths = write_dicom_series(vol, tmp_path, **kw)
    assert len(paths) == vol.shape[0]
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(hu, vol.hu[k])
        ipp = [float(v) for v in ds.ImagePositionPatient]
        np.testing.assert_allclose(ipp, vol.grid.index_to_lps([k, 0, 0]), atol=1e-4)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.7, 0.8])
        assert ds.PixelRepresentation == (0 if kw.get('unsigned') else 1)
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert str(ds.PatientName) == 'Synthetic^Phantom'
        assert ds.Manufacturer == 'napari-heartbox synthetic'
    expected_ts = (
        '1.2.840.10008.1.2'
        if kw.get('transfer_syntax') == 'implicit'
        else '1.2.840.10008.1.2.1'
    )
    assert ds.file_meta.TransferSyntaxUID == expected_ts


def test_shuffled_names_are_not_in_slice_order(tmp_path):
    vol = _volume(shape=(12, 8, 8))
    paths = write_dicom_series(vol, tmp_path, shuffle_names=True, seed=3)
    names = [p.name for p in paths]
    assert sorted(names) != names
    assert len(set(names)) == 12
    uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths}
    assert len(uids) == 12


def test_sheared_affine_writes_a_tilted_series(tmp_path):
    # slice step has a y component: gantry tilt of atan(0.5/2) about the x axis
    a = np.array([[0, 0, 0.8, 0], [0.5, 0.7, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1.0]])
    vol = CTVolume(np.zeros((3, 8, 8), np.int16), Grid((3, 8, 8), (2.0, 0.7, 0.8), a))
    paths = write_dicom_series(vol, tmp_path)
    ds = pydicom.dcmread(paths[2], stop_before_pixels=True)
    assert float(ds.GantryDetectorTilt) == pytest.approx(
        np.degrees(np.arctan(0.25)), abs=1e-3
    )
    assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx([0, 1.0, 4.0])


def test_values_that_do_not_fit_are_refused(tmp_path):
    vol = CTVolume.from_array(np.full((1, 4, 4), -2000, np.int16))
    with pytest.raises(ValueError, match='do not fit uint16'):
        write_dicom_series(vol, tmp_path, unsigned=True)
