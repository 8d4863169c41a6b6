"""Overall statistics and the plain-text table of an evaluation report.

Split out of :mod:`napari_heartbox.evaluate` (which re-exports
:func:`summarize` and :func:`format_table`); the metric definitions and the
face names/sign convention are documented there and in ``docs/evaluation.md``.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ['format_table', 'summarize']


def _stats(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {
        'n': int(v.size),
        'mean': round(float(v.mean()), 4),
        'median': round(float(np.median(v)), 4),
        'p5': round(float(np.percentile(v, 5)), 4),
        'p95': round(float(np.percentile(v, 95)), 4),
        'min': round(float(v.min()), 4),
        'max': round(float(v.max()), 4),
    }


def summarize(cases: list[dict]) -> dict:
    """Overall metrics over per-case results.

    IoU statistics include missed hearts (IoU 0); face-error statistics use
    the heart cases where a box was found. ``coverage_ge_99`` is the fraction
    of mask cases whose coverage is at least 0.99.
    """
    from .evaluate import COVERAGE_TARGET, FACES  # (evaluate imports this module)

    ok = [c for c in cases if 'error' not in c]
    heart = [c for c in ok if c.get('heart_expected')]
    no_heart = [c for c in ok if not c.get('heart_expected')]
    found_heart = [c for c in heart if c.get('found') and c.get('face_error_mm')]
    faces = {}
    for f in FACES:
        vals = [c['face_error_mm'][f] for c in found_heart]
        faces[f] = {
            'mean_signed': None if not vals else round(float(np.mean(vals)), 4),
            'mean_abs': None if not vals else round(float(np.mean(np.abs(vals))), 4),
        }
    cov = [c['coverage'] for c in heart if c.get('coverage') is not None]
    tol = [
        c['all_faces_within_tolerance']
        for c in heart
        if 'all_faces_within_tolerance' in c
    ]
    all_abs = [abs(c['face_error_mm'][f]) for c in found_heart for f in FACES]
    props = [
        c['runtime_s']['propose']
        for c in ok
        if c.get('runtime_s', {}).get('propose') is not None
    ]
    loads = [
        c['runtime_s']['load']
        for c in ok
        if c.get('runtime_s', {}).get('load') is not None
    ]
    return {
        'n_cases': len(cases),
        'n_errors': len(cases) - len(ok),
        'n_heart': len(heart),
        'n_no_heart': len(no_heart),
        'found_accuracy': None
        if not ok
        else round(sum(c['found_correct'] for c in ok) / len(ok), 4),
        'n_missed_heart': sum(1 for c in heart if not c['found']),
        'n_false_box': sum(1 for c in no_heart if c['found']),
        'iou': _stats([c.get('iou') for c in heart]),
        'mean_abs_face_error_mm': _stats(
            [c['mean_abs_face_error_mm'] for c in found_heart]
        ),
        'abs_face_error_p95_mm': None
        if not all_abs
        else round(float(np.percentile(all_abs, 95)), 4),
        'faces': faces,
        'coverage': _stats(cov),
        'coverage_ge_99': None
        if not cov
        else round(sum(v >= COVERAGE_TARGET for v in cov) / len(cov), 4),
        'n_all_faces_within_tolerance': sum(tol) if tol else None,
        'n_with_uncertainty': len(tol),
        'runtime_s': {'propose': _stats(props), 'load': _stats(loads)},
    }


# ------------------------------------------------------------------ table
_SHORT = {
    'right': 'R',
    'left': 'L',
    'anterior': 'A',
    'posterior': 'P',
    'inferior': 'I',
    'superior': 'S',
}


def _fmt(v, spec):
    if v is not None:
        return format(v, spec)
    m = re.match(r'[+ -]?(\d+)', spec)  # keep table columns aligned
    return '-'.rjust(int(m.group(1))) if m else '-'


def format_table(report: dict) -> str:
    """A plain-text table of a report: one line per case, then the summary."""
    from .evaluate import FACES

    idw = max([4] + [len(c['id']) for c in report['cases']])
    head = (
        f'{"case":<{idw}}  heart found ok   IoU   '
        + ' '.join(f'{_SHORT[f]:>6}' for f in FACES)
        + '  cover  time_s'
    )
    lines = [head, '-' * len(head)]
    for c in report['cases']:
        if 'error' in c:
            lines.append(f'{c["id"]:<{idw}}  error: {c["error"]}')
            continue
        fe = c.get('face_error_mm') or {}
        rt = c.get('runtime_s') or {}
        t = rt.get('propose')
        lines.append(
            f'{c["id"]:<{idw}}  {"yes" if c["heart_expected"] else "no":>5} '
            f'{"yes" if c["found"] else "no":>5} {"ok" if c["found_correct"] else "XX":>3} '
            f'{_fmt(c.get("iou"), "6.3f")} '
            + ' '.join(f'{_fmt(fe.get(f), "+6.1f")}' for f in FACES)
            + f'  {_fmt(c.get("coverage"), "5.3f")}  {_fmt(t, "6.3f")}'
        )
    s = report['summary']
    lines.append('-' * len(head))
    iou = s.get('iou') or {}
    mae = s.get('mean_abs_face_error_mm') or {}
    lines.append(
        f'{s["n_cases"]} cases ({s["n_heart"]} with heart, {s["n_no_heart"]} without, '
        f'{s["n_errors"]} unreadable); found/not-found correct: '
        f'{_fmt(s.get("found_accuracy"), ".1%")}; missed hearts {s["n_missed_heart"]}, '
        f'false boxes {s["n_false_box"]}'
    )
    lines.append(
        f'IoU median {_fmt(iou.get("median"), ".3f")} (p5 {_fmt(iou.get("p5"), ".3f")}, '
        f'min {_fmt(iou.get("min"), ".3f")}); mean |face error| '
        f'{_fmt(mae.get("mean"), ".2f")} mm (p95 over faces {_fmt(s.get("abs_face_error_p95_mm"), ".1f")} mm)'
    )
    if s.get('coverage'):
        lines.append(
            f'coverage median {s["coverage"]["median"]:.4f}; cases with coverage >= 0.99: '
            f'{s["coverage_ge_99"]:.1%}'
        )
    if s.get('n_with_uncertainty'):
        lines.append(
            f'all faces within uncertainty + tolerance: '
            f'{s["n_all_faces_within_tolerance"]}/{s["n_with_uncertainty"]}'
        )
    lines.append(
        'face errors (mm): R/L = patient right/left (x min/max), A/P = anterior/posterior '
        '(y min/max), I/S = inferior/superior (z min/max); + = proposed face outside the reference'
    )
    return '\n'.join(lines)
