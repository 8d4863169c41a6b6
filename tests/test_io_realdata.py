"""load_ct on the real files in ../shared/data (skipped when absent).

Expectations come from each folder's SOURCE.md; pixel checks compare with an
independent pydicom decode (``pixel_array * slope + intercept``).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from napari_heartbox.errors import CTLoadError
from napari_heartbox.io import load_ct

pytestmark = pytest.mark.realdata


def pydicom_hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.get('RescaleSlope', 1)) + float(
        ds.get('RescaleIntercept', 0)
    )


def ipp_s(path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


# --- whole series -----------------------------------------------------------------


def test_cptac_99_slices_3mm_in_order(shared_data):
    folder = shared_data / 'ct' / 'cptac-lscc-c3n-00247' / 'dicom'
    vol = load_ct(folder)
    assert vol.shape == (99, 512, 512)
    assert vol.spacing == pytest.approx((3.0, 0.5645, 0.5645), abs=1e-4)
    assert vol.warnings == []
    # SOURCE.md: z = -288 .. +6 mm, unsigned 12 bit + intercept -1024 -> HU -1024..3071
    assert vol.affine[2, 3] == pytest.approx(-288.0)
    assert vol.affine[2, 0] == pytest.approx(3.0)
    assert int(vol.hu.min()) == -1024
    assert int(vol.hu.max()) <= 3071
    # z order follows ImagePositionPatient, not file names (which are shuffled)
    files = vol.info.source_files
    s = [ipp_s(f) for f in files]
    assert s == sorted(s)
    assert [f.split('/')[-1] for f in files] != sorted(f.split('/')[-1] for f in files)
    for k in (0, 40, 98):
        np.testing.assert_array_equal(vol.hu[k], pydicom_hu(files[k]))
    assert vol.info.series_uid.endswith('104083')
    assert vol.info.manufacturer == 'SIEMENS'


@pytest.mark.slow
def test_ricord_jpeg_lossless_248_slices(shared_data):
    folder = shared_data / 'ct' / 'ricord-1a-001012' / 'dicom'
    vol = load_ct(folder)
    assert vol.shape == (248, 512, 512)
    assert vol.spacing == pytest.approx((1.25, 0.703125, 0.703125), abs=1e-5)
    # SOURCE.md: positions -20.5 .. 288.25; names run superior -> inferior
    assert vol.affine[2, 3] == pytest.approx(-20.5)
    assert vol.grid.index_to_lps([247, 0, 0])[2] == pytest.approx(288.25)
    assert vol.info.source_files[0].endswith('1-248.dcm')
    assert int(vol.hu.min()) >= -3024 and int(vol.hu.max()) <= 3071
    for k in (0, 124, 247):
        np.testing.assert_array_equal(vol.hu[k], pydicom_hu(vol.info.source_files[k]))
    assert vol.warnings == []


def test_totalseg_dicom_spacing_from_positions(shared_data):
    folder = shared_data / 'ct' / 'totalseg-example-abdomen' / 'example_ct_dicom'
    vol = load_ct(folder)
    assert vol.shape == (20, 512, 512)
    assert vol.spacing[0] == pytest.approx(2.0)  # 3 mm thick, 2 mm apart
    assert vol.info.slice_thickness_mm == pytest.approx(3.0)
    assert vol.affine[2, 3] == pytest.approx(-804.5)
    assert (int(vol.hu.min()), int(vol.hu.max())) == (-1024, 1839)
    np.testing.assert_array_equal(vol.hu[7], pydicom_hu(vol.info.source_files[7]))


def test_totalseg_nifti_ras_to_lps(shared_data):
    import nibabel as nib

    path = shared_data / 'ct' / 'totalseg-example-abdomen' / 'example_ct.nii.gz'
    vol = load_ct(path)
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    assert sorted(vol.shape) == sorted(data.shape)
    assert vol.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert (int(vol.hu.min()), int(vol.hu.max())) == (-1207, 3382)
    # z index increases towards S, y towards P, x towards L
    assert vol.affine[2, 0] > 0 and vol.affine[1, 1] > 0 and vol.affine[0, 2] > 0
    # the same voxel has the same value and the same place (RAS -> LPS)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ijk = [int(rng.integers(0, n)) for n in data.shape]
        ras = img.affine @ [*ijk, 1]
        lps = np.array([-ras[0], -ras[1], ras[2]])
        zyx = np.rint(vol.grid.lps_to_index(lps)).astype(int)
        assert vol.hu[tuple(zyx)] == data[tuple(ijk)]
        np.testing.assert_allclose(vol.grid.index_to_lps(zyx), lps, atol=1e-4)
    assert vol.info.source_format == 'nifti'


def test_enhanced_multiframe_ct(shared_data):
    path = shared_data / 'dicom-zoo' / 'pydicom' / 'eCT_Supplemental.dcm'
    vol = load_ct(path)
    assert vol.shape == (2, 512, 512)
    assert vol.info.source_format == 'dicom-enhanced'
    # per-frame positions z -159 and -149 (SOURCE.md): inferior first, 10 mm apart
    assert vol.affine[2, 3] == pytest.approx(-159.0)
    assert vol.spacing[0] == pytest.approx(10.0)
    frames = (
        pydicom.dcmread(path).pixel_array.astype(int) - 1024
    )  # slope 1, intercept -1024
    pos = [
        float(f.PlanePositionSequence[0].ImagePositionPatient[2])
        for f in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    ]
    # shared IOP row cosine is (-1, 0, 0): columns are flipped so x runs left
    np.testing.assert_array_equal(vol.hu, frames[np.argsort(pos)][:, :, ::-1])
    assert vol.affine[0, 2] == pytest.approx(0.388672)


# --- WG04: every lossless codec is pixel-identical to the uncompressed file ---------------

WG04_LOSSLESS = [
    (f'wg04/{ct}_{codec}.dcm', f'wg04/{ct}_UNC.dcm')
    for ct in ('CT1', 'CT2')
    for codec in ('J2KR', 'JLSL', 'JPLL', 'RLE')
] + [
    ('fo-dicom/D_CLUNIE_CT1_RLE_FRAGS.dcm', 'wg04/CT1_UNC.dcm'),
    (
        'fo-dicom/GH177_D_CLUNIE_CT1_IVRLE_BigEndian_ELE_undefinded_length.dcm',
        'wg04/CT1_UNC.dcm',
    ),
    ('pydicom/693_J2KR.dcm', 'pydicom/693_UNCR.dcm'),
]


@pytest.mark.parametrize(
    'variant, reference', WG04_LOSSLESS, ids=[v for v, _ in WG04_LOSSLESS]
)
def test_lossless_variant_equals_uncompressed(shared_data, variant, reference):
    zoo = shared_data / 'dicom-zoo'
    a, b = load_ct(zoo / variant), load_ct(zoo / reference)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_allclose(a.affine, b.affine)


@pytest.mark.parametrize(
    'variant, max_diff',
    [('CT1_J2KI', 352), ('CT2_J2KI', 402), ('CT1_JLSN', 4), ('CT2_JLSN', 4)],
)
def test_lossy_variant_close_to_uncompressed(shared_data, variant, max_diff):
    zoo = shared_data / 'dicom-zoo' / 'wg04'
    a = load_ct(zoo / f'{variant}.dcm').hu.astype(int)
    b = load_ct(zoo / f'{variant[:3]}_UNC.dcm').hu.astype(int)
    assert 0 < np.abs(a - b).max() <= max_diff


# --- the zoo table: decode or refuse with a reason, as dicom-zoo/SOURCE.md says ---------

ZOO_LOADS = [
    'wg04/CT1_UNC.dcm',
    'wg04/CT1_J2KR.dcm',
    'wg04/CT1_J2KI.dcm',
    'wg04/CT1_JLSL.dcm',
    'wg04/CT1_JLSN.dcm',
    'wg04/CT1_JPLL.dcm',
    'wg04/CT1_RLE.dcm',
    'wg04/CT2_UNC.dcm',
    'wg04/CT2_J2KR.dcm',
    'wg04/CT2_J2KI.dcm',
    'wg04/CT2_JLSL.dcm',
    'wg04/CT2_JLSN.dcm',
    'wg04/CT2_JPLL.dcm',
    'wg04/CT2_RLE.dcm',
    'pydicom/693_UNCR.dcm',
    'pydicom/693_J2KR.dcm',
    'pydicom/693_J2KI.dcm',
    'pydicom/J2K_pixelrep_mismatch.dcm',
    'pydicom/bad_sequence.dcm',
    'pydicom/explicit_VR-UN.dcm',
    'pydicom/CT_small.dcm',
    'fo-dicom/D_CLUNIE_CT1_RLE_FRAGS.dcm',
    'fo-dicom/GH177_D_CLUNIE_CT1_IVRLE_BigEndian_ELE_undefinded_length.dcm',
    'fo-dicom/GH1308.dcm',
    'fo-dicom/IM-0001-0001-0001.dcm',
    'covid19-ny-sbu/A002304_axial_19010112-135.dcm',
    'lungmask/0.dcm',
    'lungmask/1.dcm',
]

ZOO_REFUSES = {
    'pydicom/image_dfl.dcm': 'modality is OT, not CT',
    'pydicom/JPEG-lossy.dcm': 'modality is NM, not CT',
    'fo-dicom/GH1728.dcm': 'secondary capture',
    'fo-dicom/GH342.dcm': 'localizer/scout',
    'fo-dicom/CT-MONO2-16-ankle.dcm': 'secondary capture',
    'covid19-ny-sbu/A002304_coronal_oblique_19010112-124.dcm': 'coronal orientation',
    'covid19-ny-sbu/A002304_sagittal_oblique_19010112-134.dcm': 'sagittal orientation',
}


def test_zoo_table_is_complete(shared_data):
    on_disk = {
        str(p.relative_to(shared_data / 'dicom-zoo'))
        for p in (shared_data / 'dicom-zoo').rglob('*.dcm')
    }
    covered = set(ZOO_LOADS) | set(ZOO_REFUSES) | {'pydicom/eCT_Supplemental.dcm'}
    assert on_disk == covered


@pytest.mark.parametrize('name', ZOO_LOADS)
def test_zoo_file_decodes_like_pydicom(shared_data, name):
    path = shared_data / 'dicom-zoo' / name
    vol = load_ct(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert vol.shape == (1, int(ds.Rows), int(ds.Columns))
    ref = pydicom_hu(path)
    # the loader turns rows/columns so y runs posterior and x left; undo with the IOP
    iop = [float(v) for v in ds.ImageOrientationPatient]
    if iop[4] < 0:
        ref = ref[::-1]
    if iop[0] < 0:
        ref = ref[:, ::-1]
    np.testing.assert_array_equal(vol.hu[0], np.clip(np.rint(ref), -32768, 32767))
    # the first stored pixel is where ImagePositionPatient says
    ipp = [float(v) for v in ds.ImagePositionPatient]
    y0 = ds.Rows - 1 if iop[4] < 0 else 0
    x0 = ds.Columns - 1 if iop[0] < 0 else 0
    np.testing.assert_allclose(vol.grid.index_to_lps([0, y0, x0]), ipp, atol=1e-3)


def test_zoo_tilted_files_warn(shared_data):
    for name in ('fo-dicom/GH1308.dcm', 'pydicom/J2K_pixelrep_mismatch.dcm'):
        vol = load_ct(shared_data / 'dicom-zoo' / name)
        assert any('gantry tilt' in w for w in vol.warnings), name


def test_zoo_minimal_header_without_modality_warns(shared_data):
    vol = load_ct(shared_data / 'dicom-zoo' / 'lungmask' / '0.dcm')
    assert any('no Modality tag' in w for w in vol.warnings)


def test_zoo_lungmask_pair_stacks_by_position(shared_data):
    # SOURCE.md says both files sit at 0,0,0; their headers say z = 0 and 1 mm
    folder = shared_data / 'dicom-zoo' / 'lungmask'
    vol = load_ct(folder)
    assert vol.shape == (2, 512, 512)
    assert vol.spacing[0] == pytest.approx(1.0)
    s = [ipp_s(f) for f in vol.info.source_files]
    assert s == sorted(s)


@pytest.mark.parametrize('name, reason', sorted(ZOO_REFUSES.items()))
def test_zoo_file_refused_with_reason(shared_data, name, reason):
    path = shared_data / 'dicom-zoo' / name
    with pytest.raises(CTLoadError, match=reason) as e:
        load_ct(path)
    msg = str(e.value)
    assert str(path) in msg and '\n' not in msg


def test_zoo_folder_loads_and_reports_everything_it_left_out(shared_data):
    vol = load_ct(shared_data / 'dicom-zoo')
    text = '\n'.join(vol.warnings)
    for reason in (
        'coronal orientation',
        'sagittal orientation',
        'localizer/scout',
        'secondary capture',
        'modality NM',
        'modality OT',
        'other series',
    ):
        assert reason in text
