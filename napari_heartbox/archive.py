"""Every CT series under a folder tree: what ``napari-heartbox batch`` runs on.

Pure Python (no Qt, no napari, no Dask): discovery is split into a cheap file
listing (:func:`list_files`), a header pass over chunks of files that can run
anywhere (:func:`scan_chunk`, one Dask task per chunk in :mod:`.batch`) and a
grouping step (:func:`group_series`) that needs every chunk's answer.

Rules
-----
* Every regular, non-hidden file under the root is looked at (recursively).
* Each ``.nii`` / ``.nii.gz`` file is one series.
* DICOM images are grouped by SeriesInstanceUID **across folders**: a series
  split over two folders is one series. A folder whose files repeat another
  folder's files of the same series (same names and sizes: a study exported
  twice) is *skipped* as a duplicate of the first folder, in path order.
* Images that cannot be part of an axial CT volume (scouts/localizers,
  non-CT modalities, reformats, secondary captures, non-image objects) are
  left out with the loader's reason (:func:`.io.dicom_select.exclusion_reason`);
  a series with no usable image is *skipped*, with that reason. Files that are
  not DICOM, or cannot be parsed, are reported per folder.

Paths in everything returned are POSIX paths relative to the root, so a
results table names no absolute path of the machine that made it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import HeartboxError
from .io.dicom_headers import discover_files, scan_headers
from .io.dicom_select import exclusion_reason
from .io.nifti import is_nifti

__all__ = [
    'FileInfo',
    'SeriesJob',
    'Skipped',
    'chunked',
    'discover_series',
    'group_series',
    'list_files',
    'scan_chunk',
]

#: files per header-pass task: large enough that task overhead (~1 ms) is small
#: next to the header reads (~0.1-0.5 ms per file), small enough to spread a
#: 100-study archive over every worker
CHUNK_FILES = 512

NO_UID = '(no SeriesInstanceUID)'


@dataclass(frozen=True)
class FileInfo:
    """What the header pass learned about one file.

    Attributes
    ----------
    path : str
        POSIX path relative to the root.
    size : int
        Bytes.
    kind : str
        ``'nifti'``, ``'dicom'``, ``'not dicom'`` or ``'unreadable'``.
    images : tuple of (series_uid, reason, count)
        DICOM images by series: ``reason`` is None for an image that can be
        part of an axial CT volume, else why not. A multi-frame file has one
        entry per (series, reason) with its frame count.
    detail : str or None
        Why the file is unreadable.
    """

    path: str
    size: int
    kind: str
    images: tuple[tuple[str, str | None, int], ...] = ()
    detail: str | None = None


@dataclass(frozen=True)
class SeriesJob:
    """One CT series to box: one task of the batch.

    Attributes
    ----------
    case : str
        Unique, file-system-safe name: the output files are
        ``cases/<case>.json`` and ``thumbs/<case>.png``.
    series_uid : str or None
        SeriesInstanceUID (None for NIfTI and for DICOM without the tag).
    source : str
        The folder (or NIfTI file) holding every file of the series, relative
        to the root: what the napari worklist opens (with ``series_uid``).
    files : tuple of str
        The series' files, relative to the root, sorted.
    kind : str
        ``'dicom'`` or ``'nifti'``.
    key : str
        Resume key: SHA-256 of the series UID and the sorted (path, size)
        list. A re-run skips a series whose key has a finished record; any
        added, removed or resized file makes a new key, so the series runs again.
    """

    case: str
    series_uid: str | None
    source: str
    files: tuple[str, ...]
    kind: str
    key: str


@dataclass(frozen=True)
class Skipped:
    """Something under the root that is not a CT series to box, and why."""

    path: str
    series_uid: str | None
    reason: str
    n_files: int


def list_files(root) -> list[str]:
    """Regular, non-hidden files under ``root`` (recursive), relative POSIX paths, sorted.

    Raises
    ------
    HeartboxError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise HeartboxError(f'{root}: not a folder (give the root of a study tree)')
    return [p.relative_to(root).as_posix() for p in discover_files(root)]


def chunked(items: list, size: int = CHUNK_FILES) -> list[list]:
    """``items`` in consecutive chunks of at most ``size`` (listing order kept, so a
    folder's files mostly share a chunk)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def scan_chunk(root, rel_paths) -> list[FileInfo]:
    """Header pass over some files of the tree (runs on a worker; reads no pixels).

    Never raises for a bad file: it becomes ``kind='unreadable'`` or ``'not dicom'``.
    """
    root = Path(root)
    out: list[FileInfo] = []
    for rel in rel_paths:
        p = root / rel
        try:
            size = p.stat().st_size
        except OSError as e:
            out.append(FileInfo(rel, 0, 'unreadable', detail=e.strerror or str(e)))
            continue
        if is_nifti(p):
            out.append(FileInfo(rel, size, 'nifti'))
            continue
        res = scan_headers([p])
        if res.not_dicom:
            out.append(FileInfo(rel, size, 'not dicom'))
        elif res.unreadable:
            out.append(FileInfo(rel, size, 'unreadable', detail=res.unreadable[0][1]))
        else:
            counts = Counter((h.series_uid or NO_UID, exclusion_reason(h)) for h in res.slices)
            images = tuple((uid, reason, n) for (uid, reason), n in sorted(counts.items(), key=str))
            out.append(FileInfo(rel, size, 'dicom', images))
    return out


def _safe(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('._') or 'series'


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _key(uid: str | None, infos: list[FileInfo]) -> str:
    h = hashlib.sha256((uid or '').encode())
    for f in sorted(infos, key=lambda i: i.path):
        h.update(f'\0{f.path}\0{f.size}'.encode())
    return h.hexdigest()


def _common_folder(paths: list[str]) -> str:
    parents = [str(PurePosixPath(p).parent) for p in paths]
    common = os.path.commonpath(parents) if parents else '.'
    return PurePosixPath(common).as_posix() if common else '.'


def _drop_copies(files: list[FileInfo]) -> tuple[list[FileInfo], list[tuple[str, str, int]]]:
    """Files of one series without the folders that copy an earlier folder's files:
    ``(kept, [(copy folder, first folder, n files)])``."""
    by_folder: dict[str, list[FileInfo]] = defaultdict(list)
    for f in files:
        by_folder[str(PurePosixPath(f.path).parent)].append(f)
    if len(by_folder) == 1:
        return files, []
    first_of: dict[frozenset, str] = {}
    kept: list[FileInfo] = []
    copies = []
    for folder in sorted(by_folder):
        sig = frozenset((PurePosixPath(f.path).name, f.size) for f in by_folder[folder])
        if sig in first_of:
            copies.append((folder, first_of[sig], len(by_folder[folder])))
        else:
            first_of[sig] = folder
            kept.extend(by_folder[folder])
    return kept, copies


def group_series(root, infos: list[FileInfo]) -> tuple[list[SeriesJob], list[Skipped]]:
    """Turn the header pass's answers into series jobs and skipped entries.

    Parameters
    ----------
    root : str or Path
        The tree's root (its name names a series lying directly in it).
    infos : list of FileInfo
        Every file's :func:`scan_chunk` answer.

    Returns
    -------
    jobs : list of SeriesJob
        Sorted by ``case``.
    skipped : list of Skipped
        Series without a usable image, and per folder the files that are not
        DICOM or are unreadable.
    """
    root_name = _safe(Path(root).resolve().name)
    jobs: list[tuple[str, str | None, str, list[FileInfo], str]] = []
    skipped: list[Skipped] = []
    usable: dict[str, list[FileInfo]] = defaultdict(list)
    excluded: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    other: dict[tuple[str, str], list[FileInfo]] = defaultdict(list)
    for info in infos:
        if info.kind == 'nifti':
            jobs.append((info.path, None, info.path, [info], 'nifti'))
        elif info.kind == 'dicom':
            for uid, reason, _n in info.images:
                if reason is None:
                    if not usable[uid] or usable[uid][-1] is not info:
                        usable[uid].append(info)
                else:
                    excluded[uid][reason].add(info.path)
        else:
            reason = info.kind if info.kind == 'not dicom' else f'unreadable ({info.detail})'
            other[(str(PurePosixPath(info.path).parent), reason)].append(info)
    for uid, files in usable.items():
        files, copies = _drop_copies(files)
        skipped.extend(Skipped(folder, None if uid == NO_UID else uid, f'duplicate of {first} '
                               '(the same files of the same series)', k) for folder, first, k in copies)
        jobs.append((_common_folder([f.path for f in files]), None if uid == NO_UID else uid,
                     None, files, 'dicom'))
    for uid, reasons in excluded.items():
        if uid in usable:
            continue  # the loader leaves these images out of the series and warns
        files = sorted(set().union(*reasons.values()))
        why = '; '.join(f'{len(p)} file(s): {r}' for r, p in sorted(reasons.items()))
        skipped.append(Skipped(_common_folder(files), None if uid == NO_UID else uid,
                               f'no usable axial CT image ({why})', len(files)))
    for (folder, reason), files in sorted(other.items()):
        skipped.append(Skipped(folder, None, reason, len(files)))

    # case names: the source folder (or NIfTI name), plus a short UID hash where
    # several series share a folder; unique after making them file-system safe
    per_source = Counter(src for src, *_ in jobs)
    out: list[SeriesJob] = []
    seen: set[str] = set()
    for src, uid, nifti_path, files, kind in sorted(jobs, key=lambda j: (j[0], j[1] or '')):
        if kind == 'nifti':
            stem = re.sub(r'\.nii(\.gz)?$', '', nifti_path, flags=re.IGNORECASE)
            base = _safe(stem.replace('/', '__'))
        else:
            base = root_name if src == '.' else _safe(src.replace('/', '__'))
            if per_source[src] > 1:
                base = f'{base}-{_short(uid or NO_UID)}'
        case = base
        while case.lower() in seen:  # case-insensitive file systems too
            case = f'{base}-{_short(case)}'
        seen.add(case.lower())
        paths = tuple(sorted(f.path for f in files))
        out.append(SeriesJob(case, uid, src, paths, kind, _key(uid, files)))
    out.sort(key=lambda j: j.case)
    return out, skipped


def discover_series(root) -> tuple[list[SeriesJob], list[Skipped]]:
    """Every CT series under ``root`` (see the module docstring), found in this process.

    :func:`napari_heartbox.batch.run` does the same with the header pass spread
    over its Dask workers (:func:`list_files`, :func:`chunked`, then one
    :func:`scan_chunk` task per chunk, then :func:`group_series`).

    Returns
    -------
    jobs, skipped
        As :func:`group_series`.
    """
    infos = [i for c in chunked(list_files(root)) for i in scan_chunk(root, c)]
    return group_series(root, infos)
