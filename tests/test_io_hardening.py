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


@pytest.mark.parametrize('tag', ['Rows', 'Columns'])
def test_pixel_data_longer_than_the_header_says_is_not_read_sheared(tmp_path, tag):
    folder, files, _ = _series(tmp_path, nz=4)
    for f in files:  # 32 x 32 pixels stored, a smaller matrix declared
        edit(f, **{tag: 30})
    with pytest.raises(CTLoadError) as e:
        load_ct(folder)
    msg = str(e.value)
    assert 'does not describe this image' in msg and '\n' not in msg
    with pytest.raises(CTLoadError, match='does not describe this image'):
        open_ct(folder).read_slices([0])


def _restack(files, step_mm):
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        edit(f, ImagePositionPatient=[x, y, i * step_mm])


@pytest.mark.parametrize('change, words', [
    ({'PixelSpacing': ['1000', '1000']}, 'pixel spacing (rows) 1000 mm is not plausible'),
    ({'PixelSpacing': ['0.7', '0.001']}, 'pixel spacing (columns) 0.001 mm is not plausible'),
    ('step 1000', 'slice step (from the slice positions) 1000 mm is not plausible'),
])
def test_implausible_spacing_is_refused_in_one_line(tmp_path, change, words):
    folder, files, _ = _series(tmp_path, nz=4)
    if change == 'step 1000':
        _restack(files, 1000.0)
    else:
        for f in files:
            edit(f, **change)
    with pytest.raises(CTLoadError) as e:
        load_ct(folder)
    assert words in str(e.value) and '\n' not in str(e.value)


def test_thick_slices_load_with_a_warning(tmp_path):
    folder, files, _ = _series(tmp_path, nz=4)
    _restack(files, 12.0)
    vol = load_ct(folder)
    assert vol.spacing[0] == pytest.approx(12.0)
    assert any('12 mm apart' in w and 'coarse' in w for w in vol.warnings), vol.warnings


def test_implausible_nifti_spacing_is_refused(tmp_path):
    import nibabel as nib

    path = tmp_path / 'big.nii.gz'
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.diag([1000.0, 1000.0, 2.5, 1.0])),
             str(path))
    with pytest.raises(CTLoadError, match='not plausible') as e:
        load_ct(path)
    assert str(path) in str(e.value)


def test_pixel_spacing_that_differs_within_a_series_is_not_stacked(tmp_path):
    folder, files, vol = _series(tmp_path)
    for f in files[-3:]:  # the top three slices claim another pixel size
        edit(f, PixelSpacing=['0.9', '0.9'])
    got = load_ct(folder)
    assert got.shape == (7, 32, 32) and got.spacing[1:] == pytest.approx((0.7, 0.7))
    (w,) = [w for w in got.warnings if 'pixel spacings' in w]
    assert 'kept the 7 images of 32x32 at 0.7 x 0.7 mm and skipped 3' in w
    np.testing.assert_array_equal(got.hu, vol.hu[:7])


def test_a_scan_too_short_for_a_heart_gets_no_box_and_says_why(tmp_path, capsys):
    import json

    import napari_heartbox as nh
    from napari_heartbox.cli import main
    from napari_heartbox.phantom import make_phantom

    case = make_phantom(5, coverage='chest', matrix=(256, 256), fov_mm=380.0, keep_labels=False)
    (z0, z1), _, _ = case.heart_box.ranges
    zc = (z0 + z1) // 2
    one = CTVolume.from_array(case.volume.hu[zc : zc + 1], spacing=case.volume.spacing)
    assert nh.propose(case.volume, margin_mm=0).found  # the heart is there in the full scan
    s = nh.propose(one)
    assert not s.found and s.confidence == 0.0
    dz = one.spacing[0]
    assert s.note == f'the scan covers only {dz:.4g} mm along z (1 slice); a heart box needs at least 20 mm'
    folder = tmp_path / 'one-slice'
    write_dicom_series(one, folder)
    assert main(['propose', str(folder), '--json']) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc['found'] is False and 'a heart box needs at least 20 mm' in doc['note']
    assert main(['propose', str(folder)]) == 0
    assert 'no heart found (confidence 0.00): the scan covers only' in capsys.readouterr().out


def test_no_series_description_or_study_uid_in_outputs_unless_asked(tmp_path, capsys):
    from napari_heartbox.cli import main

    rng = np.random.default_rng(1)
    folder = tmp_path / 'study'
    for k, nz in enumerate((8, 5)):
        hu = rng.integers(-1000, 400, (nz, 32, 32)).astype(np.int16)
        write_dicom_series(CTVolume.from_array(hu, spacing=(2.5, 0.7, 0.7)), folder, seed=k,
                           file_prefix=f's{k}_', series_description=f'Doe^John thorax {k}',
                           study_uid='1.2.826.0.1.3680043.8.498.999')
    secrets = ('Doe^John', '1.2.826.0.1.3680043.8.498.999')
    for argv in (['propose', str(folder), '--json'], ['propose', str(folder)],
                 ['info', str(folder)], ['info', str(folder), '--json']):
        assert main(argv) == 0
        out = capsys.readouterr()
        assert not any(s in out.out + out.err for s in secrets), (argv, out)
    assert main(['info', str(folder)]) == 0
    assert 'series number' in capsys.readouterr().out  # the other series, named without free text
    assert main(['info', str(folder), '--include-ids']) == 0
    text = capsys.readouterr().out
    assert all(s in text for s in secrets)
