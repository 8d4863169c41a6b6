"""The synthetic DICOM writer produces valid CT series that pydicom reads back."""

from __future__ import annotations

import sys

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
    assert all(len(u) <= 64 for u in uids)
    # deterministic: the same seed gives the same UIDs, another seed others
    again = write_dicom_series(vol, tmp_path / 'again', shuffle_names=True, seed=3)
    assert {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in again} == uids
    other = write_dicom_series(vol, tmp_path / 'other', shuffle_names=True, seed=4)
    assert not uids & {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in other}


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


# --- lossless compressed transfer syntaxes -------------------------------------------------

# syntax -> (TransferSyntaxUID, module the encoder needs or None)
_COMPRESSED = {
    'rle': ('1.2.840.10008.1.2.5', None),
    'jpeg-ls': ('1.2.840.10008.1.2.4.80', 'jpeg_ls'),  # pyjpegls
    'j2k': ('1.2.840.10008.1.2.4.90', 'openjpeg'),  # pylibjpeg-openjpeg
    'jpeg-lossless': ('1.2.840.10008.1.2.4.70', 'imagecodecs'),
    'htj2k': ('1.2.840.10008.1.2.4.201', 'imagecodecs'),
}

# writer options and the HU range they can hold
_VARIANTS = {
    # int16 stored = HU + 1024: padding below -1024 and metal above 3000
    'signed': ({}, (-2048, 12000)),
    # uint16 stored = HU + 1024 (the scanner clips at -1024)
    'unsigned': ({'unsigned': True, 'intercept': -1024.0}, (-1024, 12000)),
    # stored = 2 * (HU + 1000)
    'slope-half': ({'slope': 0.5, 'intercept': -1000.0}, (-2048, 12000)),
    # stored = HU: the whole int16 bit pattern, -32768 and 32767 included
    'full-range': ({'intercept': 0.0}, (-32768, 32767)),
}


def _ct_like(lo: int, hi: int, shape=(4, 64, 80), seed=1) -> CTVolume:
    """Air, a noisy soft-tissue body, bone, metal and out-of-FOV padding in ``lo..hi``."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    _, y, x = np.ogrid[:nz, :ny, :nx]
    hu = rng.normal(-1000, 20, shape)
    body = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 < 1
    hu = np.where(body, rng.normal(40, 60, shape), hu)
    hu[:, 20:26, 30:40] = rng.normal(1200, 300, (nz, 6, 10))  # bone
    hu[:, 30:33, 50:53] = hi  # metal
    hu[:, 33, 50:60] = rng.integers(3001, hi + 1, (nz, 10))
    hu[:, :3, :] = lo  # padding value outside the field of view
    hu[:, 3, :] = rng.integers(lo, -1024, (nz, nx), endpoint=True)
    hu = np.clip(np.rint(hu), lo, hi).astype(np.int16)
    return CTVolume.from_array(
        hu, spacing=(1.25, 0.6, 0.7), origin_lps=(-24, -19, -310)
    )


def _encapsulated_fragments(path) -> list[bytes]:
    """The fragments of the file's encapsulated PixelData, checking its layout byte for byte."""
    raw = path.read_bytes()
    start = raw.rindex(b'\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff')
    pos = start + 12
    assert (
        raw[pos : pos + 8] == b'\xfe\xff\x00\xe0\x00\x00\x00\x00'
    )  # empty offset table
    pos += 8
    fragments = []
    while raw[pos : pos + 4] == b'\xfe\xff\x00\xe0':
        (n,) = np.frombuffer(raw, '<u4', 1, pos + 4)
        assert n % 2 == 0
        fragments.append(raw[pos + 8 : pos + 8 + int(n)])
        pos += 8 + int(n)
    assert (
        raw[pos:] == b'\xfe\xff\xdd\xe0\x00\x00\x00\x00'
    )  # sequence delimiter, end of file
    return fragments


@pytest.mark.parametrize('variant', list(_VARIANTS))
@pytest.mark.parametrize('syntax', list(_COMPRESSED))
def test_compressed_series_round_trip(tmp_path, syntax, variant):
    ts_uid, module = _COMPRESSED[syntax]
    if module is not None:
        mod = pytest.importorskip(
            module, reason=f'{module} (encoder for {syntax!r}) not installed'
        )
        if syntax == 'htj2k' and not hasattr(mod, 'htj2k_encode'):
            pytest.skip('imagecodecs without htj2k_encode (added in 2026.1.1)')
    from napari_heartbox.io import load_ct

    kw, (lo, hi) = _VARIANTS[variant]
    vol = _ct_like(lo, hi)
    assert vol.hu.min() == lo and vol.hu.max() == hi
    ref_paths = write_dicom_series(vol, tmp_path / 'ref', **kw)
    paths = write_dicom_series(vol, tmp_path / syntax, transfer_syntax=syntax, **kw)
    assert [p.name for p in paths] == [p.name for p in ref_paths]

    for p, rp in zip(paths, ref_paths, strict=True):
        ds, ref = pydicom.dcmread(p), pydicom.dcmread(rp)
        assert ds.file_meta.TransferSyntaxUID == ts_uid
        assert ds.LossyImageCompression == '00'
        assert len(_encapsulated_fragments(p)) == 1
        # (a) the decoded stored values are the uncompressed writer's, dtype included
        expected = ref.pixel_array
        got = ds.pixel_array
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        # the header is the same apart from the transfer syntax and the compression flag
        # (UIDs included: they are derived from the seed and the series)
        for elem in ref:
            if elem.keyword != 'PixelData':
                assert ds[elem.tag].value == elem.value, elem.keyword
        assert set(ds.keys()) - set(ref.keys()) == {
            pydicom.tag.Tag('LossyImageCompression')
        }
    # HU = stored * slope + intercept is the written volume
    hu0 = got * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu0, vol.hu[-1])

    # (b) the project's loader reads the same volume on the same grid
    loaded, ref_loaded = load_ct(tmp_path / syntax), load_ct(tmp_path / 'ref')
    assert loaded.hu.dtype == ref_loaded.hu.dtype == np.int16
    np.testing.assert_array_equal(loaded.hu, ref_loaded.hu)
    np.testing.assert_array_equal(loaded.hu, vol.hu)
    assert loaded.spacing == ref_loaded.spacing
    np.testing.assert_array_equal(loaded.affine, ref_loaded.affine)
    np.testing.assert_allclose(loaded.affine, vol.affine, atol=1e-5)
    assert loaded.warnings == ref_loaded.warnings


def test_odd_length_codestream_is_padded_to_an_even_fragment(tmp_path):
    from pydicom.pixels.encoders import JPEG2000LosslessEncoder

    # JPEG 2000 codestreams of these 32 x 32 slices have odd and even lengths
    parities = set()
    for v in range(6):
        hu = np.full((1, 32, 32), v * 37 - 1024, np.int16)
        hu[0, 5, 5] = v - 1024
        (p,) = write_dicom_series(
            CTVolume.from_array(hu), tmp_path / str(v), transfer_syntax='j2k'
        )
        stored = (hu[0].astype(np.int32) + 1024).astype(np.int16)
        codestream = JPEG2000LosslessEncoder.encode(
            stored,
            rows=32,
            columns=32,
            samples_per_pixel=1,
            bits_allocated=16,
            bits_stored=16,
            pixel_representation=1,
            photometric_interpretation='MONOCHROME2',
            number_of_frames=1,
        )
        parities.add(len(codestream) % 2)
        (fragment,) = _encapsulated_fragments(p)
        assert fragment == codestream + b'\0' * (len(codestream) % 2)
        np.testing.assert_array_equal(pydicom.dcmread(p).pixel_array, stored)
    assert parities == {0, 1}


def test_j2k_refuses_images_below_32_pixels_in_one_line(tmp_path):
    with pytest.raises(
        ValueError, match=r"^transfer_syntax 'j2k' needs .* got 31 x 64$"
    ):
        write_dicom_series(
            CTVolume.from_array(np.zeros((1, 31, 64), np.int16)),
            tmp_path,
            transfer_syntax='j2k',
        )


@pytest.mark.parametrize('syntax', ['jpeg-lossless', 'htj2k'])
def test_missing_encoder_is_a_one_line_error(tmp_path, monkeypatch, syntax):
    monkeypatch.setitem(sys.modules, 'imagecodecs', None)  # `import imagecodecs` fails
    with pytest.raises(
        ImportError,
        match=f"^transfer_syntax '{syntax}' needs imagecodecs: pip install imagecodecs$",
    ):
        write_dicom_series(_volume(), tmp_path / 'out', transfer_syntax=syntax)
    assert not list((tmp_path / 'out').glob('*.dcm'))


def test_unknown_transfer_syntax_is_refused(tmp_path):
    with pytest.raises(
        ValueError, match="transfer_syntax must be one of 'explicit', 'implicit', 'rle'"
    ):
        write_dicom_series(_volume(), tmp_path, transfer_syntax='jpeg-lossy')
