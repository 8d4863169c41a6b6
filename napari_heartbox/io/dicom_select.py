"""Decide which images of a DICOM scan form the CT series to load.

Rules (see ``docs/loading.md``):

* an image is *excluded, with a reason*, when it is not CT (Modality), has no
  pixel data (non-image objects: SR, RT structures, DICOMDIR...), is a
  Secondary Capture, a localizer/scout, has no position/orientation, is a
  colour image, or is not axial (coronal / sagittal reformats);
* the remaining images are grouped by SeriesInstanceUID (and, inside a
  series, by matrix size and orientation);
* the group with the most slices is chosen unless ``series_uid=`` names
  another; the others are listed in a warning.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import CTLoadError
from .dicom_headers import SliceHeader

#: how to pick another series, in the words of both entry points
SERIES_HINT = 'choose one with --series-uid UID on the command line, series_uid= in Python'

__all__ = [
    'Selection',
    'exclusion_reason',
    'orientation_name',
    'select_series',
    'name_list',
]

_SECONDARY_CAPTURE_PREFIX = '1.2.840.10008.5.1.4.1.1.7'
_LOCALIZER_WORDS = {'LOCALIZER', 'SCOUT', 'TOPOGRAM', 'SURVIEW', 'SCANOGRAM'}
_CT_SOP_CLASSES = {
    '1.2.840.10008.5.1.4.1.1.2',  # CT Image Storage
    '1.2.840.10008.5.1.4.1.1.2.1',  # Enhanced CT Image Storage
    '1.2.840.10008.5.1.4.1.1.2.2',  # Legacy Converted Enhanced CT Image Storage
}


def name_list(paths, limit: int = 5) -> str:
    """``'a.dcm, b.dcm and 3 more'`` for warnings."""
    names = [getattr(p, 'name', str(p)) for p in paths]
    if len(names) <= limit:
        return ', '.join(names)
    return ', '.join(names[:limit]) + f' and {len(names) - limit} more'


@lru_cache(maxsize=256)
def _orientation_of(iop: tuple[float, ...]) -> str:
    r, c = iop[:3], iop[3:]
    n = (
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    )
    a = [abs(v) for v in n]
    return ('sagittal', 'coronal', 'axial')[a.index(max(a))]


def orientation_name(iop) -> str:
    """'axial', 'coronal' or 'sagittal' from the dominant axis of the normal.

    The slice normal is ``row × col`` in LPS; an image is axial when its
    normal is closest to the S (head–foot) axis.
    """
    return _orientation_of(tuple(float(v) for v in iop))


def exclusion_reason(h: SliceHeader) -> str | None:
    """Why ``h`` cannot be part of an axial CT volume (None if it can)."""
    if h.modality is not None and h.modality.upper() != 'CT':
        return f'modality {h.modality} (not CT)'
    if not h.has_pixels or h.rows is None:
        return f'no pixel data (non-image object, SOP class {h.sop_class})'
    if h.sop_class and h.sop_class.startswith(_SECONDARY_CAPTURE_PREFIX):
        return 'secondary capture (screen capture, not a CT slice)'
    if h.modality is None and h.sop_class not in _CT_SOP_CLASSES:
        return f'no Modality and SOP class {h.sop_class} is not CT'
    if _LOCALIZER_WORDS & set(h.image_type):
        return 'localizer/scout image'
    if h.samples != 1:
        return f'colour image ({h.samples} samples per pixel)'
    if h.ipp is None or h.iop is None:
        return 'no ImagePositionPatient/ImageOrientationPatient (cannot be placed in space)'
    o = orientation_name(h.iop)
    if o != 'axial':
        return f'{o} orientation (a reformat, not axial slices)'
    return None


@dataclass
class Selection:
    """The chosen images plus what was left out and why."""

    slices: list[SliceHeader]
    warnings: list[str] = field(default_factory=list)
    other_series: list[dict] = field(default_factory=list)


def _group_key(h: SliceHeader):
    # images of one series are stacked only when they share the matrix, the
    # orientation and the pixel spacing (to 1 µm): anything else is another image
    ps = None if h.pixel_spacing is None else tuple(round(v, 3) for v in h.pixel_spacing)
    return (h.rows, h.cols, _rounded(h.iop), ps)


def _ps(h: SliceHeader) -> str:
    if h.pixel_spacing is None:
        return ''
    return ' at ' + ' x '.join(f'{v:.4g}' for v in h.pixel_spacing) + ' mm'


@lru_cache(maxsize=256)
def _rounded(iop: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 3) for v in iop)


def _n_positions(slices) -> int:
    """Number of distinct slice positions (duplicates count once)."""
    ipp = np.round(np.array([h.ipp for h in slices], dtype=float), 2)
    return len(np.unique(ipp, axis=0))


def _describe_group(uid, slices) -> dict:
    h = slices[0]
    return {
        'series_uid': uid,
        'n_slices': _n_positions(slices),
        'description': h.description,
        'series_number': h.series_number,
        'rows': h.rows,
        'cols': h.cols,
    }


def _fmt_group(d: dict) -> str:
    # no SeriesDescription in messages: free text that can name the patient
    # (napari-heartbox info --include-ids lists it)
    num = f', series number {d["series_number"]}' if d.get('series_number') is not None else ''
    return f'{d["series_uid"]} ({d["n_slices"]} slices{num})'


def select_series(
    slices: list[SliceHeader], *, series_uid: str | None, source: str
) -> Selection:
    """Choose the axial CT series to load.

    Parameters
    ----------
    slices : list of SliceHeader
        Every image found by pass 1.
    series_uid : str, optional
        Load this SeriesInstanceUID instead of the largest series.
    source : str
        The input path, for messages.

    Raises
    ------
    CTLoadError
        When no image is usable (the message says what was found), or when
        ``series_uid`` is not among the usable series.
    """
    excluded: dict[str, list[SliceHeader]] = defaultdict(list)
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in slices:
        reason = exclusion_reason(h)
        if reason is None:
            groups[h.series_uid or '(no SeriesInstanceUID)'].append(h)
        else:
            excluded[reason].append(h)

    if not groups:
        _raise_nothing_usable(excluded, source)

    warnings: list[str] = []
    for reason, hs in sorted(excluded.items()):
        files = list(dict.fromkeys(h.path for h in hs))
        warnings.append(f'excluded {len(files)} file(s), {reason}: {name_list(files)}')

    # split a series whose images differ in matrix size, orientation or pixel spacing
    candidates: dict[str, list[SliceHeader]] = {}
    for uid, hs in groups.items():
        sub: dict[tuple, list[SliceHeader]] = defaultdict(list)
        for h in hs:
            sub[_group_key(h)].append(h)
        parts = sorted(sub.values(), key=len, reverse=True)
        candidates[uid] = parts[0]
        if len(parts) > 1:
            dropped = [h.path for p in parts[1:] for h in p]
            warnings.append(
                f'series {uid} mixes image sizes, orientations or pixel spacings; kept the '
                f'{len(parts[0])} images of {parts[0][0].rows}x{parts[0][0].cols}{_ps(parts[0][0])} '
                f'and skipped {len(dropped)}: {name_list(dropped)}'
            )

    if series_uid is not None:
        if series_uid not in candidates:
            avail = '; '.join(
                _fmt_group(_describe_group(u, s)) for u, s in candidates.items()
            )
            raise CTLoadError(
                f'{source}: no axial CT series with SeriesInstanceUID {series_uid}; '
                f'available: {avail}'
            )
        chosen_uid = series_uid
    else:
        chosen_uid = max(
            candidates,
            key=lambda u: (
                _n_positions(candidates[u]),
                -(candidates[u][0].series_number or 0),
            ),
        )
    others = [_describe_group(u, s) for u, s in candidates.items() if u != chosen_uid]
    others.sort(key=lambda d: -d['n_slices'])
    if others:
        warnings.append(
            f'{len(others)} other series found and not loaded ({SERIES_HINT}): '
            + '; '.join(_fmt_group(d) for d in others)
        )
    return Selection(candidates[chosen_uid], warnings, others)


def _raise_nothing_usable(excluded: dict[str, list[SliceHeader]], source: str):
    all_h = [h for hs in excluded.values() for h in hs]
    if not all_h:
        raise CTLoadError(f'{source}: no DICOM images found')
    # a non-CT modality is the most useful thing to say
    for h in all_h:
        if h.modality is not None and h.modality.upper() != 'CT':
            other = len({x.path for x in all_h}) - 1
            extra = f' ({other} other file(s) not usable either)' if other else ''
            raise CTLoadError(
                f'{h.path}: modality is {h.modality}, not CT; napari-heartbox reads CT only{extra}'
            )
    if len({h.path for h in all_h}) == 1:
        h = all_h[0]
        reason = exclusion_reason(h)
        raise CTLoadError(f'{h.path}: cannot load as an axial CT slice: {reason}')
    found = '; '.join(
        f'{len({h.path for h in hs})} {reason}'
        for reason, hs in sorted(excluded.items())
    )
    raise CTLoadError(f'{source}: no axial CT series found; found: {found}')
