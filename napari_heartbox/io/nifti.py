"""Read a NIfTI CT (``.nii``, ``.nii.gz``) into the LPS ``(z, y, x)`` convention.

NIfTI stores an affine to **RAS** mm for voxel indices ``(i, j, k)``. We
convert it to **LPS** (negate the first two world rows), then permute and
flip the array axes so that, as closely as the orientation allows, array
axis 0 (z) runs towards Superior, axis 1 (y) towards Posterior and axis 2
(x) towards Left — the same convention as DICOM volumes (z index 0 is the
most inferior slice). The affine keeps mapping voxel centres exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CTLoadError
from ..grid import Grid
from ..volume import CTVolume, SeriesInfo, strided_sample
from .plausible import check_spacing

__all__ = ['load_nifti', 'is_nifti', 'RAS_TO_LPS']

#: multiply a RAS-world affine from the left to get an LPS-world affine
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti(path: Path) -> bool:
    """True for ``*.nii`` and ``*.nii.gz`` names."""
    name = path.name.lower()
    return name.endswith(('.nii', '.nii.gz'))


def _axis_plan(a_lps: np.ndarray):
    """Permutation and flips that bring array axes to (S, P, L) order."""
    cols = a_lps[:3, :3]
    # output axis 0 <- the array axis closest to S (world 2), 1 <- P, 2 <- L
    remaining = [0, 1, 2]
    perm = [None, None, None]
    for out_axis, world in ((0, 2), (1, 1), (2, 0)):
        best = max(remaining, key=lambda i: abs(cols[world, i]))
        perm[out_axis] = best
        remaining.remove(best)
    flips = [bool(cols[world, perm[o]] < 0) for o, world in ((0, 2), (1, 1), (2, 0))]
    return perm, flips


#: most voxels a NIfTI CT may declare (a 2,000 × 768 × 768 volume: 2.4 GB as int16)
MAX_VOXELS = 1_200_000_000


def _check_payload(path: Path, img, shape) -> None:
    """Refuse, before reading any voxel, a header whose voxel count is empty, absurd,
    or larger than what the file holds (a 2 MB ``.nii.gz`` declaring 1024³ voxels
    would otherwise be decompressed into gigabytes).

    For ``.nii.gz`` the size check uses the gzip trailer (ISIZE: the uncompressed
    size modulo 2³²), so it applies to payloads under 4 GiB; ``.nii`` uses the file
    size.
    """
    n = int(np.prod([int(d) for d in shape], dtype=np.int64))
    if min(int(d) for d in shape) < 1:
        raise CTLoadError(f'{path}: NIfTI declares an empty volume {tuple(int(d) for d in shape)}')
    if n > MAX_VOXELS:
        raise CTLoadError(f'{path}: NIfTI declares {n:,} voxels, more than the {MAX_VOXELS:,} a CT may have')
    hdr = img.header
    need = int(hdr.get_data_offset()) + n * int(np.dtype(hdr.get_data_dtype()).itemsize)
    try:
        if str(path).lower().endswith('.gz'):
            if need >= 2**32:
                return
            with open(path, 'rb') as f:
                f.seek(-4, 2)
                have = int.from_bytes(f.read(4), 'little')
        else:
            have = Path(path).stat().st_size
    except OSError:
        return  # the reader says what is wrong
    if have < need:
        raise CTLoadError(
            f'{path}: NIfTI declares {tuple(int(d) for d in shape)} voxels ({need:,} bytes with its '
            f'header) but holds {have:,} bytes: truncated or a damaged header'
        )


#: a CT holds air (about -1000 HU) outside the body and in the lungs; a volume whose
#: values are all small non-negative integers is a label map (a segmentation)
LABEL_MAP_MAX_VALUE = 1000
LABEL_MAP_MAX_LABELS = 256


def _refuse_label_map(path: Path, hu: np.ndarray) -> None:
    """``CTLoadError`` for a segmentation saved as NIfTI (e.g. TotalSegmentator's 0–117 labels).

    A CT has values below 0 (air, lung, fat); a label map has none, and few
    distinct values. Checked on a strided sample of about a million voxels.
    """
    sample = strided_sample(hu)
    lo, hi = int(sample.min()), int(sample.max())
    if lo < 0 or hi > LABEL_MAP_MAX_VALUE:
        return
    labels = np.unique(sample).size
    # (a constant volume is no label map either, but says nothing: let it load)
    if 2 <= labels <= LABEL_MAP_MAX_LABELS and int(hu.min()) >= 0:
        raise CTLoadError(
            f'{path}: values {lo}..{hi} in {labels} distinct integers and nothing below 0 HU: '
            'a label map (segmentation), not a CT'
        )


def load_nifti(path: Path, progress=None, *, labels: bool = False) -> CTVolume:
    """Load a 3-D NIfTI CT as a :class:`CTVolume` in the LPS convention.

    Parameters
    ----------
    path : Path
        ``.nii`` or ``.nii.gz`` file (values taken as HU after the header's
        scl_slope/scl_inter).
    progress : callable, optional
        ``progress(done, total)``; called once at the end.
    labels : bool
        The file is a label map on purpose (a segmentation read on the same
        LPS grid, e.g. for training targets): skip the label-map refusal.

    Raises
    ------
    CTLoadError
        Unreadable file, or not a 3-D volume.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:  # noqa: BLE001 - any nibabel failure is a bad file
        raise CTLoadError(f'{path}: cannot read as NIfTI: {e}') from None
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise CTLoadError(
            f'{path}: NIfTI has {len(img.shape)} dimensions {img.shape}, expected a 3-D CT volume'
        )
    _check_payload(path, img, shape)
    warnings: list[str] = []
    try:
        data = np.asanyarray(img.dataobj).reshape(shape)
    except Exception as e:  # noqa: BLE001 - truncated/corrupt payload
        raise CTLoadError(f'{path}: cannot read NIfTI voxel data: {e}') from None
    a_lps = RAS_TO_LPS @ img.affine
    perm, flips = _axis_plan(a_lps)
    data = np.transpose(data, perm)
    data = data[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    # affine of the output index: column o = old column perm[o], sign-flipped
    a = np.eye(4)
    a[:3, 3] = a_lps[:3, 3]
    for o in range(3):
        col = a_lps[:3, perm[o]]
        if flips[o]:
            a[:3, 3] += col * (data.shape[o] - 1)
            col = -col
        a[:3, o] = col
    if data.dtype != np.int16:
        if data.dtype.kind == 'f':
            data = np.rint(data)
        lo, hi = data.min(), data.max()
        if lo < -32768 or hi > 32767:
            warnings.append(f'values {lo:g}..{hi:g} outside int16 were clipped')
            data = np.clip(data, -32768, 32767)
        data = data.astype(np.int16)
    hu = np.ascontiguousarray(data)
    if not labels:
        _refuse_label_map(path, hu)
    ny_col, nx_col = a[:3, 1], a[:3, 2]
    n = np.cross(nx_col, ny_col)
    n /= np.linalg.norm(n)
    dz = abs(float(a[:3, 0] @ n))
    spacing = (dz, float(np.linalg.norm(ny_col)), float(np.linalg.norm(nx_col)))
    warnings.extend(check_spacing(spacing, path))
    descrip = img.header.get('descrip')
    desc = (
        bytes(descrip).split(b'\x00')[0].decode('latin-1').strip()
        if descrip is not None
        else ''
    )
    info = SeriesInfo(
        series_uid=None,
        modality='CT',
        description=desc or None,
        slice_thickness_mm=None,  # NIfTI does not record it
        source_format='nifti',
        source_files=(str(path),),
    )
    if progress is not None:
        progress(1, 1)
    return CTVolume(hu, Grid(hu.shape, spacing, a), info, warnings)
