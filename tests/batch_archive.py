"""A synthetic study tree for the batch tests and benchmark (``make_archive``).

About 30 series of small phantom CTs (128², 5 mm slices), laid out the ways
real exports are: nested patient/study/series folders, one series split
across two folders, two series in one folder, an exact duplicate of a series
in another folder, NIfTI files, a heart-free (abdomen) series, a scout, an MR
series, a text file, a DICOM file cut off after its preamble and a series with one
corrupt slice. Deterministic: the same call gives the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from napari_heartbox.io import write_dicom_series
from napari_heartbox.io.write_dicom import _uid

#: series with a heart box to find, besides the special ones below
N_PLAIN = 20


def _phantom(seed: int, coverage: str = 'chest', n_slices: int | None = None):
    from napari_heartbox.phantom import make_phantom

    kw = {'n_slices': n_slices} if n_slices else {}
    return make_phantom(seed, coverage=coverage, matrix=(128, 128), slice_spacing_mm=5.0,
                        fov_mm=380.0, keep_labels=False, **kw).volume


def _write(volume, folder: Path, seed: int, **kw) -> list[Path]:
    return write_dicom_series(volume, folder, seed=seed, **kw)


def _save_nifti(volume, path: Path) -> None:
    import nibabel as nib

    from napari_heartbox._writer import nifti_affine

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.ascontiguousarray(volume.hu.transpose(2, 1, 0))  # NIfTI is (x, y, z)
    nib.save(nib.Nifti1Image(data, nifti_affine(volume.grid.matrix)), str(path))


def make_archive(root, n_plain: int = N_PLAIN) -> dict:
    """Write the tree under ``root``; returns what a correct discovery must find.

    Returns
    -------
    dict
        ``n_series`` (series to box), ``split`` (source of the split series),
        ``duplicate`` (its source), ``heart_free`` (source), ``corrupt`` (source
        of the series with one corrupt slice), ``skipped_reasons`` (substrings
        that the skipped list must contain).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for i in range(n_plain):  # site/patient/study/series nesting of varying depth
        depth = ('site_a', f'patient_{i:02d}', 'study_1', 'CT_chest') if i % 2 else \
            ('site_b', f'P{i:02d}')
        _write(_phantom(100 + i), root.joinpath(*depth), seed=100 + i,
               shuffle_names=bool(i % 3 == 0))
        n += 1
    # one series split across two folders (same SeriesInstanceUID)
    vol = _phantom(200)
    uid = _uid(200, 'split-series')
    files = _write(vol, root / 'split' / 'tmp', seed=200, series_uid=uid)
    for k, f in enumerate(sorted(files)):
        dest = root / 'split' / ('disc1' if k < len(files) // 2 else 'disc2')
        dest.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), dest / f.name)
    (root / 'split' / 'tmp').rmdir()
    n += 1
    # two series in one folder (different UIDs, file-name prefixes)
    _write(_phantom(210), root / 'two_series', seed=210, file_prefix='a_')
    _write(_phantom(211, n_slices=30), root / 'two_series', seed=211, file_prefix='b_')
    n += 2
    # an exact duplicate of one series in another folder: one series
    shutil.copytree(root / 'site_b' / 'P00', root / 'zz_copies' / 'P00_again')
    # NIfTI files
    _save_nifti(_phantom(220), root / 'nifti' / 'case_220.nii.gz')
    _save_nifti(_phantom(221), root / 'nifti' / 'case_221.nii')
    n += 2
    # a heart-free series
    _write(_phantom(230, coverage='abdomen'), root / 'abdomen_only', seed=230)
    n += 1
    # a series with one corrupt slice (truncated pixel data): boxed, with a warning
    files = sorted(_write(_phantom(240), root / 'corrupt_slice', seed=240))
    data = files[len(files) // 2].read_bytes()
    files[len(files) // 2].write_bytes(data[: len(data) // 2])
    n += 1
    # not series to box: a scout, an MR series, junk
    _write(_phantom(250, n_slices=1), root / 'scout', seed=250,
           image_type=('ORIGINAL', 'PRIMARY', 'LOCALIZER'))
    _write(_phantom(251, n_slices=4), root / 'mr', seed=251, modality='MR')
    (root / 'notes').mkdir()
    (root / 'notes' / 'README.txt').write_text('not a CT\n')
    (root / 'notes' / 'broken.dcm').write_bytes(b'\0' * 128 + b'DICM' + np.arange(50, dtype=np.uint8).tobytes())
    return {
        'n_series': n,
        'split': 'split',
        'duplicate': 'zz_copies/P00_again',  # skipped: a copy of site_b/P00
        'heart_free': 'abdomen_only',
        'corrupt': 'corrupt_slice',
        'skipped_reasons': ('localizer', 'modality MR', 'not dicom', 'no pixel data', 'duplicate of'),
    }
