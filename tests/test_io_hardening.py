"""Regression tests for the loader classes of issue 18 (found by tests/fuzz_inputs.py)."""

from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
from test_io_load_synthetic import edit  # rewrite one DICOM file with changed tags

from napari_heartbox.errors import CTLoadError
from napari_heartbox.io import load_ct, open_ct, write_dicom_series
from napari_heartbox.volume import CTVolume

# the mutations are invalid on purpose: pydicom says so when they are written
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _series(tmp_path, nz=10):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, (nz, 32, 32)).astype(np.int16)
    vol = CTVolume.from_array(hu, spacing=(2.5, 0.7, 0.7))
    paths = write_dicom_series(vol, tmp_path / 'series')
    by_z = sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    return tmp_path / 'series', by_z, vol


def test_a_huge_number_of_frames_is_refused_at_once(tmp_path):
    folder, files, _ = _series(tmp_path, nz=1)
    edit(files[0], NumberOfFrames=2147483647)
    t = time.perf_counter()
    with pytest.raises(CTLoadError) as e:
        load_ct(folder)
    assert time.perf_counter() - t < 10  # no loop over two billion claimed frames
    assert 'NumberOfFrames 2147483647' in str(e.value) and '\n' not in str(e.value)


@pytest.mark.parametrize('tags', [{'RescaleSlope': 'NaN'}, {'RescaleIntercept': '-1e30'},
                                  {'ImagePositionPatient': ['NaN', '0', '0']},
                                  {'PixelSpacing': ['0', '0.7']}])
def test_one_bad_slice_is_skipped_with_a_warning_not_the_series(tmp_path, tags):
    folder, files, vol = _series(tmp_path)
    edit(files[4], **tags)
    got = load_ct(folder)
    assert got.shape[1:] == vol.shape[1:]
    assert any(files[4].name in w for w in got.warnings), got.warnings
    # the lazy path gives the same answer for the slices it reads
    series = open_ct(folder)
    np.testing.assert_array_equal(series.read_slices([0, got.shape[0] - 1]), got.hu[[0, -1]])


def test_nan_rescale_in_every_slice_is_refused_not_read_as_zeros(tmp_path):
    folder, files, _ = _series(tmp_path, nz=4)
    for f in files:
        edit(f, RescaleSlope='NaN')
    with pytest.raises(CTLoadError, match='rescale'):
        load_ct(folder)


def test_a_native_decoder_panic_becomes_a_one_line_error(tmp_path, monkeypatch):
    """A BaseException from a native decoder (pyo3's PanicException is one) is not
    missed by ``except Exception``: it becomes the one-line CTLoadError."""
    from napari_heartbox.io import dicom_pixels

    class PanicException(BaseException):
        pass

    def panic(*a, **k):
        raise PanicException('called `Result::unwrap()` on an `Err` value\nbacktrace...')

    folder, _files, _ = _series(tmp_path, nz=3)
    monkeypatch.setattr(dicom_pixels, 'fill_volume', panic)
    monkeypatch.setattr('napari_heartbox.io.load.fill_volume', panic)
    with pytest.raises(CTLoadError) as e:
        load_ct(folder)
    msg = str(e.value)
    assert 'PanicException' in msg and str(folder) in msg and '\n' not in msg


@pytest.mark.parametrize('dim', [0, 1, 2])
def test_nifti_with_an_empty_axis_is_refused_in_one_line(tmp_path, dim):
    nib = pytest.importorskip('nibabel')
    shape = [4, 5, 6]
    shape[dim] = 0
    path = tmp_path / 'empty.nii'
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(path))
    with pytest.raises(CTLoadError) as e:
        load_ct(path)
    assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_error_messages_are_one_line_whatever_they_were_built_from():
    e = CTLoadError('ct.nii: cannot read NIfTI voxel data: Expected 9 bytes\n - could the file be damaged?')
    assert str(e) == 'ct.nii: cannot read NIfTI voxel data: Expected 9 bytes - could the file be damaged?'
    assert str(CTLoadError('')) == 'CTLoadError (no details given)'
    assert len(str(CTLoadError('x' * 5000))) <= 400


def test_a_small_nifti_declaring_a_huge_volume_is_refused_before_reading(tmp_path):
    """Issue 18: a 2 MB .nii.gz declaring 1024³ int16 used to be decompressed into GBs."""
    nib = pytest.importorskip('nibabel')
    import gzip

    img = nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    hdr = img.header.copy()
    raw = bytearray(nib.Nifti1Image(img.get_fdata().astype(np.int16), np.eye(4), hdr).to_bytes())
    path = tmp_path / 'big.nii.gz'
    hb = bytearray(raw[:352])
    dims = np.frombuffer(bytes(hb[40:56]), '<i2').copy()
    dims[1:4] = 1024
    hb[40:56] = dims.astype('<i2').tobytes()
    path.write_bytes(gzip.compress(bytes(hb) + bytes(raw[352:])))
    t = time.perf_counter()
    with pytest.raises(CTLoadError, match='holds'):
        load_ct(path)
    assert time.perf_counter() - t < 5


def test_a_label_map_is_refused_as_ct_and_a_ct_is_not(tmp_path):
    nib = pytest.importorskip('nibabel')
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[5:15, 10:20, 10:20] = 51  # TotalSegmentator's heart label
    labels[2:4, 2:5, 2:5] = 117
    path = tmp_path / 'seg.nii.gz'
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(path))
    with pytest.raises(CTLoadError, match='label map'):
        load_ct(path)
    ct = np.full((20, 30, 30), -1000, np.int16)
    ct[5:15, 10:20, 10:20] = 40
    nib.save(nib.Nifti1Image(ct, np.eye(4)), str(tmp_path / 'ct.nii.gz'))
    assert sorted(load_ct(tmp_path / 'ct.nii.gz').shape) == [20, 30, 30]
    from napari_heartbox.io.nifti import load_nifti

    assert load_nifti(path, labels=True).hu.max() == 117  # read on purpose: allowed
