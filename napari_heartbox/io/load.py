"""``load_ct``: the one entry point for reading a CT volume.

Accepts a DICOM folder (searched recursively), a list of DICOM files, a
single DICOM file (including enhanced multi-frame CT) and NIfTI
(``.nii``/``.nii.gz``). Nothing is ever written next to the input.

DICOM loading is two passes (see :mod:`.dicom_headers` and
:mod:`.dicom_pixels`): one header-only parse per file, then one raw read (or
decode) of the chosen slices straight into a preallocated int16 volume.
"""

from __future__ import annotations

import os
import warnings as _pywarnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CTLoadError, HeartboxError
from ..grid import Grid
from ..volume import CTVolume, SeriesInfo
from .dicom_geometry import StackPlan, plan_stack
from .dicom_headers import discover_files, is_regular_file, scan_headers
from .dicom_pixels import fill_volume
from .dicom_select import name_list, select_series
from .nifti import is_nifti, load_nifti

__all__ = ['LoadResult', 'load_ct', 'load_ct_with_series']

Progress = Callable[[int, int], None]


@dataclass
class LoadResult:
    """A loaded volume plus every usable series found next to it.

    ``series`` lists dicts (``series_uid``, ``n_slices``, ``description``,
    ``series_number``, ``rows``, ``cols``, ``loaded``); the loaded series is
    first. Empty for NIfTI.
    """

    volume: CTVolume
    series: list[dict] = field(default_factory=list)


def load_ct(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    series_uid: str | None = None,
    progress: Progress | None = None,
    labels: bool = False,
) -> CTVolume:
    """Load a CT volume in Hounsfield units on its LPS grid.

    Parameters
    ----------
    path : path-like or sequence of path-like
        A DICOM folder (recursive), one DICOM file (single- or multi-frame),
        a list of DICOM files, or a ``.nii``/``.nii.gz`` file.
    series_uid : str, optional
        SeriesInstanceUID to load when the input holds several series
        (default: the axial CT series with the most slices).
    progress : callable, optional
        ``progress(done, total)`` called as files are scanned and read:
        ``done`` runs 1..N over the header pass (N = number of files, with
        ``total = 2N``), then continues N+1..N+M over the M images read into
        the volume (``total = N + M``). ``done == N`` therefore marks the end
        of the header pass (the benchmarks rely on it).
    labels : bool
        Read a NIfTI label map (segmentation) on purpose, on the same grid
        conventions; by default one is refused as "not a CT".

    Returns
    -------
    CTVolume
        int16 HU ``(Z, Y, X)``, z index 0 = most inferior slice; the affine
        maps voxel centres to DICOM LPS mm. Problems noticed while loading
        are in ``.warnings``.

    Raises
    ------
    CTLoadError
        With a one-line message naming the file or folder and the problem.
    """
    return load_ct_with_series(path, series_uid=series_uid, progress=progress, labels=labels).volume


def load_ct_with_series(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    series_uid: str | None = None,
    progress: Progress | None = None,
    labels: bool = False,
) -> LoadResult:
    """Like :func:`load_ct`, also returning the list of series found.

    Used by ``napari-heartbox info`` to list the series that were not loaded.
    """
    with as_ct_load_error(path):
        kind, arg, source = _resolve(path)
        if kind == 'nifti':
            return LoadResult(load_nifti(arg, progress=progress, labels=labels))
        return _load_dicom(arg, source=source, series_uid=series_uid, progress=progress)


def _name(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        return str(path)
    files = [Path(f) for f in path]
    return f'{len(files)} files in {files[0].parent}' if files else 'an empty list of files'


@contextmanager
def as_ct_load_error(path):
    """Turn whatever a reader or decoder raises into a one-line :class:`CTLoadError`.

    The loaders raise their own one-line errors for every problem they know;
    this is the net under them: a ``ValueError`` from a geometry check, an
    ``OverflowError``, ``MemoryError``, or a ``BaseException`` from a native
    decoder (e.g. the Rust RLE decoder's ``PanicException``) becomes
    ``"<path>: cannot be read as a CT (<type>: <first line>)"``. Only
    ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` pass.
    """
    try:
        yield
    except (HeartboxError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except MemoryError:
        raise CTLoadError(f'{_name(path)}: too large to load into memory') from None
    except BaseException as e:  # noqa: BLE001 - the point: nothing else escapes
        raise CTLoadError(f'{_name(path)}: cannot be read as a CT ({type(e).__name__}: {e})') from None


def _resolve(path) -> tuple[str, object, str | None]:
    """What ``path`` names: ``('nifti', file, None)`` or ``('dicom', files, source)``."""
    if isinstance(path, (str, os.PathLike)):
        p = Path(path).expanduser()
        if not p.exists():
            raise CTLoadError(f'{p}: no such file or folder')
        if p.is_dir():
            files = discover_files(p)
            if not files:
                raise CTLoadError(
                    f'{p}: folder is empty (no files found, searched recursively)'
                )
            niftis = [f for f in files if is_nifti(f)]
            if niftis and len(niftis) == len(files):
                # a folder holding only NIfTI: fine when there is exactly one
                if len(niftis) > 1:
                    raise CTLoadError(
                        f'{p}: holds {len(niftis)} NIfTI files '
                        f'({name_list(niftis, 3)}); give the path of one of them'
                    )
                return 'nifti', niftis[0], None
            return 'dicom', files, str(p)
        if not is_regular_file(p):
            raise CTLoadError(f'{p}: not a regular file (a FIFO, socket or device); give a CT file or folder')
        if is_nifti(p):
            return 'nifti', p, None
        return 'dicom', [p], str(p)
    files = [Path(f).expanduser() for f in path]
    if not files:
        raise CTLoadError('load_ct: empty list of files')
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise CTLoadError(f'{missing[0]}: no such file')
    if len(files) == 1 and is_nifti(files[0]):
        return 'nifti', files[0], None
    return 'dicom', files, f'{len(files)} files in {files[0].parent}'


@dataclass
class _Scanned:
    """The header pass of a DICOM input: everything but the pixels."""

    plan: StackPlan
    grid: Grid
    info: SeriesInfo
    warnings: list[str]  # the pixel pass may add more
    series: list[dict]
    n_files: int


def _scan_dicom(files, *, source, series_uid, progress) -> _Scanned:
    with _pywarnings.catch_warnings():
        # pydicom warns about every small standard violation; the loader
        # reports what matters in CTVolume.warnings instead
        _pywarnings.simplefilter('ignore')
        scan = scan_headers(files, progress=progress, progress_total=2 * len(files))
        if not scan.slices:
            _raise_nothing(files, scan, source)
        sel = select_series(scan.slices, series_uid=series_uid, source=source)
        plan = plan_stack(sel.slices)
    warnings: list[str] = []
    if len(scan.not_dicom) and len(files) > 1:
        warnings.append(
            f'skipped {len(scan.not_dicom)} non-DICOM file(s): {name_list(scan.not_dicom)}'
        )
    if scan.unreadable:
        warnings.append(
            f'skipped {len(scan.unreadable)} unreadable DICOM file(s): '
            f'{name_list([p for p, _ in scan.unreadable])} ({scan.unreadable[0][1]})'
        )
    if any(h.modality is None for h in plan.slices):
        warnings.append('no Modality tag: assumed CT from the SOP class')
    warnings += sel.warnings + plan.warnings

    h0 = plan.slices[0]
    is_enhanced = h0.frame is not None
    info = SeriesInfo(
        series_uid=h0.series_uid,
        modality=h0.modality or 'CT',
        manufacturer=h0.manufacturer,
        slice_thickness_mm=h0.thickness,
        description=h0.description,
        study_uid=h0.study_uid,
        source_format='dicom-enhanced' if is_enhanced else 'dicom',
        # z order; a multi-frame file appears once
        source_files=tuple(dict.fromkeys(str(h.path) for h in plan.slices)),
    )
    loaded = {
        'series_uid': h0.series_uid,
        'n_slices': len(plan.slices),
        'description': h0.description,
        'series_number': h0.series_number,
        'rows': h0.rows,
        'cols': h0.cols,
        'loaded': True,
    }
    others = [{**d, 'loaded': False} for d in sel.other_series]
    return _Scanned(
        plan,
        Grid(plan.shape, plan.spacing, plan.affine),
        info,
        warnings,
        [loaded, *others],
        len(files),
    )


def _fill(sc: _Scanned, progress) -> CTVolume:
    """The pixel pass: the whole volume."""
    with _pywarnings.catch_warnings():
        _pywarnings.simplefilter('ignore')
        hu, pixel_warnings = fill_volume(
            sc.plan,
            progress=progress,
            done0=sc.n_files,
            total=sc.n_files + len(sc.plan.slices),
        )
    return CTVolume(hu, sc.grid, sc.info, sc.warnings + pixel_warnings)


def _load_dicom(files, *, source, series_uid, progress) -> LoadResult:
    sc = _scan_dicom(files, source=source, series_uid=series_uid, progress=progress)
    return LoadResult(_fill(sc, progress), sc.series)


def _raise_nothing(files, scan, source):
    parts = []
    if scan.not_dicom:
        parts.append(
            f'{len(scan.not_dicom)} non-DICOM file(s) ({name_list(scan.not_dicom, 3)})'
        )
    if scan.unreadable:
        p, why = scan.unreadable[0]
        parts.append(
            f'{len(scan.unreadable)} unreadable DICOM file(s) ({p.name}: {why})'
        )
    if len(files) == 1:
        if scan.not_dicom:
            raise CTLoadError(f'{files[0]}: not a DICOM or NIfTI file')
        raise CTLoadError(f'{files[0]}: unreadable DICOM file: {scan.unreadable[0][1]}')
    raise CTLoadError(f'{source}: no readable DICOM images; found ' + ', '.join(parts))
