"""``napari-heartbox info PATH``: what a CT input holds (geometry, series, warnings).

No patient name, ID or birth date is ever printed.
"""

from __future__ import annotations

import json
import sys

__all__ = ['add_parser', 'run', 'summary']


def add_parser(subparsers) -> None:
    """Register the ``info`` subcommand."""
    p = subparsers.add_parser(
        'info',
        help='show the geometry, series and loading warnings of a CT',
        description=(
            'Load a CT (DICOM folder or file, NIfTI) and print its geometry '
            '(z, y, x order; z index 0 = most inferior slice; LPS mm), the series '
            'found and any loading warnings.'
        ),
    )
    p.add_argument(
        'path', help='DICOM folder (searched recursively), DICOM file, or .nii/.nii.gz'
    )
    p.add_argument('--json', action='store_true', help='print machine-readable JSON')
    p.add_argument(
        '--series-uid',
        default=None,
        help='SeriesInstanceUID to load when there are several',
    )
    p.add_argument(
        '--include-ids', action='store_true',
        help='also show SeriesDescription / NIfTI descrip (free text that can name the '
        'patient) and StudyInstanceUID; left out by default',
    )
    p.set_defaults(run=run)


def _progress_bar():
    """A ``progress(done, total)`` callback drawing tqdm on stderr.

    The bar appears only when loading takes more than half a second and only
    on a terminal.
    """
    from tqdm import tqdm

    state = {'bar': None}

    def progress(done: int, total: int) -> None:
        bar = state['bar']
        if bar is None:
            bar = state['bar'] = tqdm(
                total=total,
                unit='file',
                desc='loading',
                file=sys.stderr,
                delay=0.5,
                disable=None,
                leave=False,
            )
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close() -> None:
        if state['bar'] is not None:
            state['bar'].close()

    return progress, close


def summary(result, path: str, include_ids: bool = False) -> dict:
    """JSON-friendly description of a :class:`~napari_heartbox.io.load.LoadResult`.

    Series descriptions (free text) and the StudyInstanceUID only with ``include_ids``.
    """
    vol = result.volume
    hu = vol.hu
    corners_idx = [[-0.5, -0.5, -0.5], [s - 0.5 for s in vol.shape]]
    lps = vol.grid.index_to_lps(corners_idx)
    return {
        'path': path,
        'shape': list(vol.shape),
        'n_slices': vol.shape[0],
        'spacing_mm': [round(s, 6) for s in vol.spacing],
        'affine_lps': [[round(v, 6) for v in row] for row in vol.grid.affine],
        'extent_lps_mm': {
            'min': [round(float(v), 3) for v in lps.min(axis=0)],
            'max': [round(float(v), 3) for v in lps.max(axis=0)],
        },
        'axis_aligned': vol.grid.is_axis_aligned,
        'hu_range': [int(hu.min()), int(hu.max())],
        'series': vol.info.to_dict(include_ids=include_ids),
        'series_found': [
            d if include_ids else {k: v for k, v in d.items() if k != 'description'}
            for d in result.series
        ],
        'warnings': list(vol.warnings),
    }


def _human(s: dict) -> str:
    z, y, x = s['shape']
    sp = tuple(round(v, 4) for v in s['spacing_mm'])
    ser = s['series']
    lines = [
        f'{s["path"]}',
        (
            f'  {z} slice{"s" if z != 1 else ""} of {y} x {x} '
            f'({ser["source_format"]}, {ser["n_source_files"]} file(s))'
        ),
        f'  spacing (z, y, x) mm: {sp}',
    ]
    if ser.get('slice_thickness_mm') is not None:
        lines.append(f'  slice thickness: {ser["slice_thickness_mm"]:g} mm')
    lo, hi = s['extent_lps_mm']['min'], s['extent_lps_mm']['max']
    lines.append(
        '  extent LPS mm (voxel edges): '
        + ', '.join(
            f'{a} {a0:.1f}..{a1:.1f}' for a, a0, a1 in zip('LPS', lo, hi, strict=True)
        )
    )
    if not s['axis_aligned']:
        lines.append('  grid is not axis-aligned (oblique or sheared)')
    lines.append(f'  HU range: {s["hu_range"][0]} .. {s["hu_range"][1]}')
    desc = f', description {ser.get("description") or "-"}' if 'description' in ser else ''
    lines.append(
        f'  modality {ser["modality"]}, manufacturer {ser.get("manufacturer") or "-"}{desc}'
    )
    lines.append(f'  SeriesInstanceUID: {ser.get("series_uid") or "-"}')
    if 'study_uid' in ser:
        lines.append(f'  StudyInstanceUID: {ser.get("study_uid") or "-"}')
    others = [d for d in s['series_found'] if not d.get('loaded')]
    if others:
        lines.append(f'  other series ({len(others)}, not loaded; use --series-uid):')
        for d in others:
            desc = f" '{d['description']}'" if d.get('description') else ''
            lines.append(f'    {d["series_uid"]}: {d["n_slices"]} slices{desc}')
    if s['warnings']:
        lines.append(f'  warnings ({len(s["warnings"])}):')
        lines += [f'    - {w}' for w in s['warnings']]
    else:
        lines.append('  warnings: none')
    return '\n'.join(lines)


def run(args) -> int:
    """Load ``args.path`` and print its summary."""
    from napari_heartbox.io.load import load_ct_with_series

    progress, close = _progress_bar()
    try:
        result = load_ct_with_series(
            args.path, series_uid=args.series_uid, progress=progress
        )
    finally:
        close()
    s = summary(result, str(args.path), include_ids=args.include_ids)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(_human(s))
    return 0
