"""load_ct on synthetic DICOM series written with pydicom into tmp_path.

Every loading rule of issue 2 §2 has a test here; real files are in
``test_io_realdata.py``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_heartbox.errors import CTLoadError
from napari_heartbox.grid import Grid
from napari_heartbox.io import load_ct, write_dicom_series
from napari_heartbox.volume import CTVolume


def phantom(
    nz=10, ny=24, nx=32, spacing=(2.5, 0.7, 0.8), origin=(-11.0, -22.0, -300.0)
):
    """Volume whose every voxel value encodes its (z, y, x): orientation errors show."""
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing='ij')
    hu = (-1000 + 97 * z + 3 * y + 2 * x).astype(np.int16)
    return CTVolume.from_array(hu, spacing=spacing, origin_lps=origin)


def assert_same_volume(loaded: CTVolume, ref: CTVolume):
    assert loaded.shape == ref.shape
    np.testing.assert_array_equal(loaded.hu, ref.hu)
    np.testing.assert_allclose(loaded.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(loaded.spacing, ref.spacing, atol=1e-5)


def edit(path, **tags):
    """Rewrite one DICOM file with changed tags (test helper)."""
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path)


# --- sorting and geometry ----------------------------------------------------


def test_shuffled_names_sorted_by_position(tmp_path):
    vol = phantom()
    paths = write_dicom_series(vol, tmp_path, shuffle_names=True, seed=7)
    assert [p.name for p in paths] != sorted(p.name for p in paths)
    loaded = load_ct(tmp_path)
    assert_same_volume(loaded, vol)
    assert loaded.warnings == []
    # source files are listed in z order
    assert [str(p) for p in paths] == list(loaded.info.source_files)


def test_sort_ignores_instance_number(tmp_path):
    vol = phantom(nz=6)
    paths = write_dicom_series(vol, tmp_path)
    for k, p in enumerate(paths):  # InstanceNumber runs opposite to position
        edit(p, InstanceNumber=100 - k)
    assert_same_volume(load_ct(tmp_path), vol)


def test_superior_first_series_is_flipped_so_z0_is_inferior(tmp_path):
    vol = phantom(nz=5)
    a = vol.grid.matrix
    a[2, 0] = -2.5  # slice index runs towards the feet in the written series
    down = CTVolume(vol.hu, Grid(vol.shape, vol.spacing, a))
    write_dicom_series(down, tmp_path)
    loaded = load_ct(tmp_path)
    np.testing.assert_array_equal(loaded.hu, vol.hu[::-1])
    assert loaded.affine[2, 0] == pytest.approx(2.5)
    # same LPS point, same HU
    np.testing.assert_allclose(
        loaded.grid.index_to_lps([0, 3, 4]), down.grid.index_to_lps([4, 3, 4])
    )


def test_spacing_from_positions_not_thickness(tmp_path):
    vol = phantom(nz=6, spacing=(2.0, 0.9, 0.9))
    write_dicom_series(vol, tmp_path, slice_thickness=3.0)
    loaded = load_ct(tmp_path)
    assert loaded.spacing[0] == pytest.approx(2.0)
    assert loaded.info.slice_thickness_mm == pytest.approx(3.0)


def test_flipped_rows_are_reoriented_and_affine_honest(tmp_path):
    vol = phantom(nz=3)
    a = vol.grid.matrix
    a[1, 1] = -0.7  # rows run anterior: IOP column cosine (0, -1, 0)
    flipped = CTVolume(vol.hu, Grid(vol.shape, vol.spacing, a))
    paths = write_dicom_series(flipped, tmp_path)
    iop = [float(v) for v in pydicom.dcmread(paths[0]).ImageOrientationPatient]
    assert iop[4] == pytest.approx(-1.0)
    loaded = load_ct(tmp_path)
    assert loaded.affine[1, 1] == pytest.approx(0.7)  # y runs posterior now
    np.testing.assert_array_equal(loaded.hu, vol.hu[:, ::-1, :])
    # every voxel keeps its patient position
    idx = np.array([[1, 0, 0], [2, 5, 7]])
    src = flipped.grid.lps_to_index(loaded.grid.index_to_lps(idx))
    for (z, y, x), (sz, sy, sx) in zip(idx, np.rint(src).astype(int), strict=True):
        assert loaded.hu[z, y, x] == flipped.hu[sz, sy, sx]


def test_gantry_tilt_loads_with_shear_and_warning(tmp_path):
    vol = phantom(nz=5)
    a = vol.grid.matrix
    a[1, 0] = 0.6  # each slice shifts 0.6 mm posterior: tilt about the x axis
    tilted = CTVolume(vol.hu, Grid(vol.shape, vol.spacing, a))
    write_dicom_series(tilted, tmp_path)
    loaded = load_ct(tmp_path)
    np.testing.assert_array_equal(loaded.hu, vol.hu)
    np.testing.assert_allclose(loaded.affine, a, atol=1e-4)  # shear recorded
    assert loaded.spacing[0] == pytest.approx(2.5)
    assert not loaded.grid.is_axis_aligned
    assert any('gantry tilt' in w for w in loaded.warnings)


def test_oblique_tilted_iop_series(tmp_path):
    """Scanner-style tilt: image plane tilted, table moves along S."""
    t = np.radians(15)
    row = np.array([1.0, 0, 0])
    col = np.array([0, np.cos(t), -np.sin(t)])
    a = np.eye(4)
    a[:3, 0] = [0, 0, 3.0]
    a[:3, 1] = col * 0.7
    a[:3, 2] = row * 0.8
    vol = phantom(nz=4)
    tilted = CTVolume(vol.hu, Grid(vol.shape, (3.0 * np.cos(t), 0.7, 0.8), a))
    write_dicom_series(tilted, tmp_path)
    loaded = load_ct(tmp_path)
    np.testing.assert_allclose(loaded.affine, a, atol=1e-4)
    assert loaded.spacing[0] == pytest.approx(3.0 * np.cos(t), abs=1e-4)
    assert any('15.00 deg' in w for w in loaded.warnings)


# --- HU conversion --------------------------------------------------------------


@pytest.mark.parametrize(
    'kw',
    [
        {'slope': 1.0, 'intercept': -1024.0},
        {'slope': 1.0, 'intercept': 0.0},
        {'slope': 0.5, 'intercept': -1000.0},
        {'unsigned': True, 'intercept': -1024.0},
        {'unsigned': True, 'intercept': -1000.0},
        {'transfer_syntax': 'implicit'},
        {'transfer_syntax': 'implicit', 'unsigned': True},
    ],
    ids=[
        's1-i1024',
        's1-i0',
        's0.5',
        'unsigned',
        'unsigned-i1000',
        'implicit',
        'implicit-unsigned',
    ],
)
def test_hu_from_slope_intercept(tmp_path, kw):
    vol = phantom()
    write_dicom_series(vol, tmp_path, **kw)
    loaded = load_ct(tmp_path)
    assert loaded.hu.dtype == np.int16
    np.testing.assert_array_equal(loaded.hu, vol.hu)


def test_slope_two_rounds_to_nearest(tmp_path):
    vol = phantom()
    write_dicom_series(vol, tmp_path, slope=2.0, intercept=-1024.0)
    loaded = load_ct(tmp_path)
    assert np.abs(loaded.hu.astype(int) - vol.hu).max() <= 1


def _rewrite_pixels(path, stored: np.ndarray, **tags):
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = stored.astype('<u2' if stored.dtype.kind == 'u' else '<i2').tobytes()
    ds.save_as(path)


def test_unsigned_12bit_with_garbage_high_bits_is_masked(tmp_path):
    vol = phantom(nz=3)
    paths = write_dicom_series(vol, tmp_path, unsigned=True)
    for k, p in enumerate(paths):
        stored = (vol.hu[k].astype(np.int32) + 1024).astype(np.uint16)
        _rewrite_pixels(p, stored | np.uint16(0x5000), BitsStored=12, HighBit=11)
    np.testing.assert_array_equal(load_ct(tmp_path).hu, vol.hu)


def test_signed_12bit_is_sign_extended(tmp_path):
    vol = phantom(nz=3)
    paths = write_dicom_series(vol, tmp_path, intercept=0.0)
    for k, p in enumerate(paths):
        # 12-bit two's complement with the upper 4 bits left zero
        stored = (vol.hu[k].astype(np.int32) & 0x0FFF).astype(np.uint16)
        _rewrite_pixels(p, stored, BitsStored=12, HighBit=11)
    assert vol.hu.min() < 0
    np.testing.assert_array_equal(load_ct(tmp_path).hu, vol.hu)


def test_hu_overflow_is_clipped_with_warning(tmp_path):
    vol = phantom(nz=2)
    paths = write_dicom_series(vol, tmp_path, unsigned=True, intercept=-1024.0)
    for p in paths:
        edit(p, RescaleIntercept='32700')  # stored 0..~250 -> HU beyond 32767
    loaded = load_ct(tmp_path)
    assert loaded.hu.max() == 32767
    assert any('clipped' in w for w in loaded.warnings)


# --- several series and exclusions ----------------------------------------------


def test_several_series_takes_largest_and_lists_others(tmp_path):
    big, small = phantom(nz=8), phantom(nz=4, origin=(0, 0, 50))
    write_dicom_series(big, tmp_path / 'a', series_uid='1.2.3.100', seed=1)
    write_dicom_series(
        small,
        tmp_path / 'b',
        series_uid='1.2.3.200',
        seed=2,
        series_description='Small',
    )
    loaded = load_ct(tmp_path)
    assert loaded.series_uid == '1.2.3.100'
    assert loaded.shape[0] == 8
    assert any('1.2.3.200' in w and 'series_uid=' in w for w in loaded.warnings)
    chosen = load_ct(tmp_path, series_uid='1.2.3.200')
    assert_same_volume(chosen, small)
    with pytest.raises(CTLoadError, match='1.2.3.999.*available: .*1.2.3.100'):
        load_ct(tmp_path, series_uid='1.2.3.999')


def _write_sr(path):
    """A non-image DICOM object (Basic Text SR, no pixel data)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.88.11'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'SR'
    ds.SeriesInstanceUID = generate_uid()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_exclusions_are_reported_with_reasons(tmp_path):
    vol = phantom(nz=6)
    write_dicom_series(vol, tmp_path / 'ct', series_uid='1.2.3.1')
    one = phantom(nz=1)
    write_dicom_series(
        one,
        tmp_path / 'scout',
        series_uid='1.2.3.2',
        file_prefix='scout',
        image_type=('ORIGINAL', 'PRIMARY', 'LOCALIZER'),
    )
    write_dicom_series(
        phantom(nz=3),
        tmp_path / 'cor',
        series_uid='1.2.3.3',
        file_prefix='cor',
        image_orientation=(1, 0, 0, 0, 0, -1),
    )
    write_dicom_series(
        one,
        tmp_path / 'sc',
        series_uid='1.2.3.4',
        file_prefix='sc',
        sop_class_uid='1.2.840.10008.5.1.4.1.1.7',
    )
    _write_sr(tmp_path / 'report.dcm')
    loaded = load_ct(tmp_path)
    assert_same_volume(loaded, vol)
    text = '\n'.join(loaded.warnings)
    assert 'localizer/scout' in text and 'scout00001.dcm' in text
    assert 'coronal orientation' in text and 'cor00001.dcm' in text
    assert 'secondary capture' in text and 'sc00001.dcm' in text
    # the SR is excluded for its modality, which is not CT
    assert 'report.dcm' in text


def test_single_non_axial_image_is_refused(tmp_path):
    paths = write_dicom_series(
        phantom(nz=1), tmp_path, image_orientation=(0, 1, 0, 0, 0, -1)
    )
    with pytest.raises(CTLoadError, match=r'00001\.dcm.*sagittal'):
        load_ct(paths[0])


def test_non_ct_modality_is_an_error_naming_file_and_modality(tmp_path):
    write_dicom_series(phantom(nz=3), tmp_path, modality='MR')
    with pytest.raises(CTLoadError, match=r'0000\d\.dcm: modality is MR, not CT'):
        load_ct(tmp_path)


# --- damaged series -----------------------------------------------------------------


def test_gap_is_detected_filled_and_named(tmp_path):
    vol = phantom(nz=10)
    paths = write_dicom_series(vol, tmp_path)
    paths[4].unlink()
    loaded = load_ct(tmp_path)
    assert loaded.shape == vol.shape  # grid kept uniform
    np.testing.assert_allclose(loaded.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(
        np.delete(loaded.hu, 4, axis=0), np.delete(vol.hu, 4, axis=0)
    )
    assert np.array_equal(loaded.hu[4], vol.hu[3]) or np.array_equal(
        loaded.hu[4], vol.hu[5]
    )
    msg = next(w for w in loaded.warnings if 'missing slices' in w)
    assert '00004.dcm, 00006.dcm; 1 slice(s) missing' in msg


def test_duplicate_positions_are_reported(tmp_path):
    vol = phantom(nz=6)
    paths = write_dicom_series(vol, tmp_path)
    shutil.copy(paths[2], tmp_path / 'copy_of_3.dcm')
    edit(tmp_path / 'copy_of_3.dcm', SOPInstanceUID=generate_uid(), InstanceNumber=99)
    loaded = load_ct(tmp_path)
    assert_same_volume(loaded, vol)
    assert any(
        'duplicate slice positions' in w and 'copy_of_3.dcm' in w
        for w in loaded.warnings
    )


def test_non_uniform_spacing_is_reported(tmp_path):
    vol = phantom(nz=8)
    paths = write_dicom_series(vol, tmp_path)
    ipp = [float(v) for v in pydicom.dcmread(paths[5]).ImagePositionPatient]
    ipp[2] += 0.8
    edit(paths[5], ImagePositionPatient=[f'{v:.4f}' for v in ipp])
    loaded = load_ct(tmp_path)
    assert loaded.shape == vol.shape
    assert any('non-uniform slice spacing' in w for w in loaded.warnings)


def test_corrupt_and_foreign_files_are_skipped_with_names(tmp_path):
    vol = phantom(nz=6)
    paths = write_dicom_series(vol, tmp_path)
    (tmp_path / 'notes.txt').write_text('not dicom')
    broken = tmp_path / 'broken.dcm'
    broken.write_bytes(paths[0].read_bytes()[:300])  # header cut mid-way
    truncated = paths[3]
    truncated.write_bytes(truncated.read_bytes()[:-1000])  # pixel data cut
    loaded = load_ct(tmp_path)
    assert loaded.shape == vol.shape
    text = '\n'.join(loaded.warnings)
    assert 'notes.txt' in text
    assert 'broken.dcm' in text
    assert '00004.dcm' in text and 'truncated' in text
    np.testing.assert_array_equal(loaded.hu[:3], vol.hu[:3])


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(CTLoadError, match='empty'):
        load_ct(tmp_path)


def test_folder_without_dicom_names_folder_and_contents(tmp_path):
    (tmp_path / 'a.txt').write_text('x')
    (tmp_path / 'b.png').write_bytes(b'\x89PNG....')
    with pytest.raises(
        CTLoadError, match=r'no readable DICOM images; found 2 non-DICOM file\(s\)'
    ) as e:
        load_ct(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(CTLoadError, match='no such file'):
        load_ct(tmp_path / 'nope')


# --- inputs, metadata, progress, read-only ---------------------------------------------


def test_list_of_files_and_single_file(tmp_path):
    vol = phantom(nz=5)
    paths = write_dicom_series(vol, tmp_path, shuffle_names=True)
    assert_same_volume(load_ct(list(reversed(paths))), vol)
    single = load_ct(paths[2])
    np.testing.assert_array_equal(single.hu[0], vol.hu[2])
    assert single.shape == (1, *vol.shape[1:])
    np.testing.assert_allclose(
        single.grid.index_to_lps([0, 0, 0]), vol.grid.index_to_lps([2, 0, 0])
    )


def test_series_info_is_filled(tmp_path):
    write_dicom_series(
        phantom(nz=3),
        tmp_path,
        series_uid='1.2.3.4',
        study_uid='1.2.3',
        series_description='Thorax',
    )
    info = load_ct(tmp_path).info
    assert info.series_uid == '1.2.3.4'
    assert info.study_uid == '1.2.3'
    assert info.modality == 'CT'
    assert info.manufacturer == 'napari-heartbox synthetic'
    assert info.description == 'Thorax'
    assert info.slice_thickness_mm == pytest.approx(2.5)
    assert info.source_format == 'dicom'
    assert len(info.source_files) == 3


def test_progress_reaches_total(tmp_path):
    write_dicom_series(phantom(nz=7), tmp_path)
    calls = []
    load_ct(tmp_path, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == list(range(1, 15))
    assert (7, 14) in calls  # end of the header pass: done == number of files
    assert calls[-1] == (14, 14)


def test_input_folder_is_not_modified(tmp_path):
    vol = phantom(nz=4)
    write_dicom_series(vol, tmp_path)
    before = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()
    }
    load_ct(tmp_path)
    after = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()
    }
    assert before == after


def test_transposed_in_plane_orientation(tmp_path):
    """Rows running along L and columns along P: the loader transposes."""
    vol = phantom(nz=4, ny=12, nx=20)
    a = np.zeros((4, 4))
    a[:3, 0] = [0, 0, 2.5]  # z -> S
    a[:3, 1] = [0.7, 0, 0]  # row index -> L
    a[:3, 2] = [0, 0.8, 0]  # column index -> P
    a[:, 3] = [5.0, 6.0, 7.0, 1.0]
    odd = CTVolume(vol.hu, Grid(vol.shape, (2.5, 0.7, 0.8), a))
    write_dicom_series(odd, tmp_path)
    loaded = load_ct(tmp_path)
    assert loaded.shape == (4, 20, 12)
    assert loaded.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert loaded.affine[1, 1] == pytest.approx(0.8) and loaded.affine[
        0, 2
    ] == pytest.approx(0.7)
    np.testing.assert_array_equal(loaded.hu, vol.hu.transpose(0, 2, 1))
    idx = np.array([[0, 0, 0], [3, 19, 11], [2, 5, 7]])
    src = np.rint(odd.grid.lps_to_index(loaded.grid.index_to_lps(idx))).astype(int)
    for (z, y, x), (sz, sy, sx) in zip(idx, src, strict=True):
        assert loaded.hu[z, y, x] == odd.hu[sz, sy, sx]


def test_separate_blocks_load_the_largest(tmp_path):
    vol = phantom(nz=30)
    paths = write_dicom_series(vol, tmp_path)
    for p in paths[6:26]:  # blocks of 6 and 4 slices, 20 missing between them
        p.unlink()
    loaded = load_ct(tmp_path)
    np.testing.assert_array_equal(loaded.hu, vol.hu[:6])
    np.testing.assert_allclose(loaded.affine, vol.affine, atol=1e-4)
    msg = next(w for w in loaded.warnings if 'separate blocks' in w)
    assert 'largest block of 6 slices' in msg and '00027.dcm' in msg


def test_dicom_without_preamble_is_read(tmp_path):
    vol = phantom(nz=3)
    paths = write_dicom_series(vol, tmp_path, transfer_syntax='implicit')
    for p in paths:  # strip preamble, DICM and the file meta group: a bare dataset
        raw = p.read_bytes()
        meta_len = int.from_bytes(raw[140:144], 'little')  # (0002,0000) value
        p.write_bytes(raw[132 + 12 + meta_len :])
        assert p.read_bytes()[:2] == b'\x08\x00'
    assert_same_volume(load_ct(tmp_path), vol)
