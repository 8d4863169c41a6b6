"""Evaluate heart boxes against references: metrics, manifests and reports.

This module is the one place where box accuracy is computed; the CLI
(``napari-heartbox evaluate``), the training script and the benchmarks reuse it.

Conventions
-----------
* Boxes are compared in **patient LPS millimetres**, with faces on voxel
  **edges** (what :meth:`napari_heartbox.sector.Sector.patient_mm` returns and
  what ``reference_box.json`` files store as ``patient_mm_lps``). Points and
  corners are ordered ``(x, y, z)`` = ``(L, P, S)`` here, unlike voxel arrays,
  which are ``(z, y, x)``.
* The six faces are named anatomically (LPS: +x = patient left, +y =
  posterior, +z = superior):

  ==========  ==========
  face        coordinate
  ==========  ==========
  right       x min
  left        x max
  anterior    y min
  posterior   y max
  inferior    z min
  superior    z max
  ==========  ==========

* **Signed face error** (mm) is positive when the proposed face lies
  *outside* the reference box (the proposal is too generous on that side)
  and negative when it cuts into it: ``ref_min - prop_min`` for the min
  faces and ``prop_max - ref_max`` for the max faces.
* **Coverage** is the fraction of reference heart-mask voxels whose *centre*
  lies inside the proposed box (only when a mask is given).
* A case is **correct on found/not-found** when the proposal's ``found``
  equals "the reference has a heart".

Public API
----------
:func:`face_errors_mm`, :func:`box_metrics`, :func:`mask_box_mm`,
:func:`mask_coverage` (pure metric functions);
:func:`evaluate_volume` (one in-memory case, e.g. a phantom during training);
:func:`load_manifest`, :func:`load_predictions`, :func:`evaluate_manifest`
(what the CLI runs); :func:`summarize` and :func:`format_table`.
The manifest and report formats are documented in ``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._eval_summary import format_table, summarize
from .errors import CTLoadError, HeartboxError
from .grid import Grid
from .volume import CTVolume

__all__ = [
    'FACES',
    'MANIFEST_SCHEMA',
    'PREDICTIONS_SCHEMA',
    'REPORT_SCHEMA',
    'CaseSpec',
    'Prediction',
    'box_metrics',
    'evaluate_manifest',
    'evaluate_volume',
    'face_errors_mm',
    'format_table',
    'load_manifest',
    'load_predictions',
    'mask_box_mm',
    'mask_coverage',
    'summarize',
]

MANIFEST_SCHEMA = 'heartbox.manifest/1'
PREDICTIONS_SCHEMA = 'heartbox.predictions/1'
REPORT_SCHEMA = 'heartbox.evaluation/1'

#: Face name → (LPS axis 0=x/1=y/2=z, 0 = min side / 1 = max side).
FACES: dict[str, tuple[int, int]] = {
    'right': (0, 0),
    'left': (0, 1),
    'anterior': (1, 0),
    'posterior': (1, 1),
    'inferior': (2, 0),
    'superior': (2, 1),
}
#: Accepted aliases for face names in uncertainty dicts (reference_box.json
#: files write e.g. ``x_min_patient_right`` or ``z_max``).
_FACE_ALIASES = {
    'x_min': 'right',
    'x_max': 'left',
    'y_min': 'anterior',
    'y_max': 'posterior',
    'z_min': 'inferior',
    'z_max': 'superior',
}
DEFAULT_TOLERANCE_MM = 5.0
COVERAGE_TARGET = 0.99

Box = tuple[np.ndarray, np.ndarray]  # (lps_min, lps_max), (x, y, z) order


# ----------------------------------------------------------------- metrics
def _box(lps_min, lps_max) -> Box:
    lo = np.asarray(lps_min, dtype=np.float64).reshape(3)
    hi = np.asarray(lps_max, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)) or np.any(hi <= lo):
        raise ValueError(f'box min {lo.tolist()} must be below max {hi.tolist()}')
    return lo, hi


def face_errors_mm(ref_min, ref_max, prop_min, prop_max) -> dict[str, float]:
    """Signed error of each face in mm (positive = proposed face outside).

    Parameters
    ----------
    ref_min, ref_max : array-like of 3 float
        Reference box corners, LPS ``(x, y, z)`` mm at voxel edges.
    prop_min, prop_max : array-like of 3 float
        Proposed box corners, same convention.

    Returns
    -------
    dict
        ``{'right': e, 'left': e, 'anterior': e, 'posterior': e,
        'inferior': e, 'superior': e}``.
    """
    rlo, rhi = _box(ref_min, ref_max)
    plo, phi = _box(prop_min, prop_max)
    out = {}
    for name, (axis, side) in FACES.items():
        if side == 0:
            out[name] = float(rlo[axis] - plo[axis])
        else:
            out[name] = float(phi[axis] - rhi[axis])
    return out


def _iou(a: Box, b: Box) -> float:
    from .sector import box_iou_mm

    return float(box_iou_mm(a[0], a[1], b[0], b[1]))


def _normalise_uncertainty(unc: Mapping | None) -> dict[str, float] | None:
    """Map uncertainty keys (face names or ``x_min``-style) to face names."""
    if unc is None:
        return None
    out: dict[str, float] = {}
    for key, value in unc.items():
        k = str(key).lower()
        name = k if k in FACES else None
        if name is None:
            m = re.match(r'([xyz]_(?:min|max))', k)
            name = _FACE_ALIASES.get(m.group(1)) if m else None
        if name is None:
            raise ValueError(f'unknown face {key!r} in uncertainty_mm')
        out[name] = float(value)
    return out


def box_metrics(
    reference: Box,
    proposed: Box,
    *,
    uncertainty_mm: Mapping | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> dict:
    """IoU and per-face errors of a proposed box against a reference box.

    Parameters
    ----------
    reference, proposed : (lps_min, lps_max)
        Boxes in LPS mm ``(x, y, z)`` at voxel edges.
    uncertainty_mm : mapping, optional
        Per-face uncertainty of the reference (face names or ``x_min``-style
        keys). When given, each face is checked against
        ``|error| <= uncertainty + tolerance_mm``.
    tolerance_mm : float
        Extra allowance on top of the stated uncertainty (the issue's bar:
        5 mm).

    Returns
    -------
    dict
        ``iou``, ``face_error_mm`` (signed, see module docstring),
        ``mean_abs_face_error_mm``, ``max_abs_face_error_mm`` and, with an
        uncertainty, ``face_within_tolerance`` (per face) and
        ``all_faces_within_tolerance``.
    """
    ref = _box(*reference)
    prop = _box(*proposed)
    errs = face_errors_mm(ref[0], ref[1], prop[0], prop[1])
    abs_errs = [abs(v) for v in errs.values()]
    out = {
        'iou': _iou(ref, prop),
        'face_error_mm': errs,
        'mean_abs_face_error_mm': float(np.mean(abs_errs)),
        'max_abs_face_error_mm': float(np.max(abs_errs)),
    }
    unc = _normalise_uncertainty(uncertainty_mm)
    if unc:
        within = {
            f: abs(errs[f]) <= unc[f] + tolerance_mm + 1e-9 for f in FACES if f in unc
        }
        out['face_within_tolerance'] = within
        out['all_faces_within_tolerance'] = bool(all(within.values()))
    return out


def _heart_indices(mask: np.ndarray) -> np.ndarray:
    """``(n, 3)`` (z, y, x) indices of the nonzero voxels of a boolean mask."""
    return np.argwhere(mask)


def mask_box_mm(mask: np.ndarray, grid: Grid) -> Box | None:
    """LPS box (voxel edges) around the nonzero voxels of ``mask``.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(Z, Y, X)`` array on ``grid``; nonzero = heart.
    grid : Grid
        The mask's grid.

    Returns
    -------
    (lps_min, lps_max) or None
        None when the mask is empty.
    """
    from .sector import Sector

    m = np.asarray(mask) != 0
    if m.shape != grid.shape:
        raise ValueError(f'mask shape {m.shape} does not match grid {grid.shape}')
    ranges = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(m.any(axis=other))
        if hit.size == 0:
            return None
        ranges.append((int(hit[0]), int(hit[-1])))
    pm = Sector.from_inclusive(grid, *ranges).patient_mm()
    return pm[0], pm[1]


def mask_coverage(mask: np.ndarray, grid: Grid, box: Box | None) -> float | None:
    """Fraction of heart voxels (by centre) inside an LPS box.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(Z, Y, X)`` array on ``grid``; nonzero = heart.
    grid : Grid
        The mask's grid (voxel centres → LPS).
    box : (lps_min, lps_max) or None
        The proposed box; None (nothing proposed) covers nothing.

    Returns
    -------
    float or None
        In ``[0, 1]``; None when the mask is empty.
    """
    idx = _heart_indices(np.asarray(mask) != 0)
    if idx.shape[0] == 0:
        return None
    if box is None:
        return 0.0
    lo, hi = _box(*box)
    pts = grid.index_to_lps(idx)  # voxel centres, (x, y, z) LPS
    inside = np.all((pts >= lo - 1e-6) & (pts <= hi + 1e-6), axis=1)
    return float(inside.mean())


# --------------------------------------------------------- case structures
@dataclass
class CaseSpec:
    """One manifest case (paths already resolved).

    Attributes
    ----------
    id : str
        Case name (unique within the manifest).
    path : Path or None
        The CT (DICOM folder/file or NIfTI); needed when the model is run or
        a PNG is drawn.
    series_uid : str or None
        Series to pick when ``path`` holds several.
    box_mm : (lps_min, lps_max) or None
        Reference box in LPS mm at voxel edges.
    uncertainty_mm : dict or None
        Per-face uncertainty (face names).
    mask : Path or None
        Heart mask (NIfTI or anything ``load_ct`` reads); nonzero or
        ``mask_labels`` = heart.
    mask_labels : list of int or None
        Label values that count as heart in ``mask``.
    heart : bool
        Whether the reference says a heart is in view.
    path_as_given : str or None
        ``path`` as the manifest wrote it (usually relative to the manifest):
        what the report shows, so it names no absolute path of this machine.
    """

    id: str
    path: Path | None = None
    path_as_given: str | None = None
    series_uid: str | None = None
    box_mm: Box | None = None
    uncertainty_mm: dict | None = None
    mask: Path | None = None
    mask_labels: list[int] | None = None
    heart: bool = True
    extra: dict = field(default_factory=dict)


@dataclass
class Prediction:
    """A proposed box: ``found`` and, when found, its LPS corners (edges)."""

    found: bool
    box_mm: Box | None = None
    confidence: float | None = None


def _parse_box(obj, where: str) -> Box | None:
    """Read a box from ``{'min','max'}`` under common keys, or None."""
    for key in ('box_mm', 'patient_mm', 'patient_mm_lps'):
        v = obj.get(key)
        if v is not None:
            try:
                return _box(v['min'], v['max'])
            except (KeyError, TypeError, ValueError) as e:
                raise HeartboxError(f'{where}: bad "{key}" box ({e})') from None
    if 'min' in obj and 'max' in obj:
        try:
            return _box(obj['min'], obj['max'])
        except (TypeError, ValueError) as e:
            raise HeartboxError(f'{where}: bad box ({e})') from None
    return None


def _read_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise HeartboxError(f'{path}: {what} not found') from None
    except (OSError, UnicodeDecodeError) as e:
        raise HeartboxError(f'{path}: cannot read {what} ({e})') from None
    except json.JSONDecodeError as e:
        raise HeartboxError(
            f'{path}: {what} is not valid JSON ({e.msg}, line {e.lineno})'
        ) from None


def load_manifest(path) -> tuple[list[CaseSpec], dict]:
    """Read an evaluation manifest (format: ``docs/evaluation.md``).

    Relative paths inside it are resolved against the manifest's folder.

    Parameters
    ----------
    path : str or Path
        The manifest JSON.

    Returns
    -------
    cases : list of CaseSpec
    options : dict
        Top-level options (``tolerance_mm``, ``margin_mm``) when present.

    Raises
    ------
    HeartboxError
        With a one-line message naming the file and the problem.
    """
    path = Path(path)
    data = _read_json(path, 'manifest')
    if isinstance(data, list):
        data = {'cases': data}
    if not isinstance(data, dict) or not isinstance(data.get('cases'), list):
        raise HeartboxError(f'{path}: manifest must be an object with a "cases" list')
    schema = data.get('schema', MANIFEST_SCHEMA)
    if schema != MANIFEST_SCHEMA:
        raise HeartboxError(f'{path}: unsupported manifest schema {schema!r}')
    base = path.resolve().parent

    def resolve(p):
        return None if p is None else (base / Path(str(p)).expanduser())

    cases, seen = [], set()
    for i, c in enumerate(data['cases']):
        where = f'{path}: case {i + 1}'
        if not isinstance(c, dict):
            raise HeartboxError(f'{where} is not an object')
        cpath = resolve(c.get('path'))
        cid = str(c.get('id') or (cpath.name if cpath else f'case{i + 1}'))
        where = f'{path}: case {cid!r}'
        if cid in seen:
            raise HeartboxError(f'{where}: duplicate case id')
        seen.add(cid)
        spec = CaseSpec(id=cid, path=cpath, series_uid=c.get('series_uid'),
                        path_as_given=None if c.get('path') is None else str(c['path']))
        if c.get('reference') is not None:
            ref_path = resolve(c['reference'])
            ref = _read_json(ref_path, 'reference box')
            spec.box_mm = _parse_box(ref, str(ref_path))
            if spec.box_mm is None:
                raise HeartboxError(
                    f'{ref_path}: no "patient_mm_lps" box in the reference file'
                )
            spec.uncertainty_mm = ref.get('uncertainty_mm')
            spec.series_uid = spec.series_uid or ref.get('SeriesInstanceUID')
        box = _parse_box(c, where)
        if box is not None:
            spec.box_mm = box
        if c.get('uncertainty_mm') is not None:
            spec.uncertainty_mm = c['uncertainty_mm']
        try:
            spec.uncertainty_mm = _normalise_uncertainty(spec.uncertainty_mm)
        except ValueError as e:
            raise HeartboxError(f'{where}: {e}') from None
        spec.mask = resolve(c.get('mask'))
        if c.get('mask_labels') is not None:
            spec.mask_labels = [int(v) for v in c['mask_labels']]
        heart = c.get('heart')
        if heart is False:
            if spec.box_mm is not None:
                raise HeartboxError(
                    f'{where}: "heart": false together with a reference box'
                )
            spec.heart = False
        elif spec.box_mm is None and spec.mask is None:
            raise HeartboxError(
                f'{where}: needs a reference ("box_mm", "reference", "mask") or "heart": false'
            )
        spec.extra = {k: v for k, v in c.items() if k in ('notes', 'tags')}
        cases.append(spec)
    options = {k: data[k] for k in ('tolerance_mm', 'margin_mm') if k in data}
    return cases, options


def _prediction_from(obj, where: str) -> Prediction:
    if isinstance(obj, Prediction):
        return obj
    if not isinstance(obj, dict):
        raise HeartboxError(f'{where}: prediction must be an object')
    found = bool(obj.get('found', True))
    conf = obj.get('confidence')
    if not found:
        return Prediction(False, None, None if conf is None else float(conf))
    box = _parse_box(obj, where)
    if box is None:
        raise HeartboxError(
            f'{where}: a found prediction needs a box ("box_mm" or "patient_mm")'
        )
    return Prediction(True, box, None if conf is None else float(conf))


def load_predictions(path) -> dict[str, Prediction]:
    """Read proposed boxes per case id instead of running the model.

    Accepts ``{"schema": "heartbox.predictions/1", "predictions": {id: box}}``,
    a plain ``{id: box}`` object, or an earlier evaluation report (its
    ``proposed`` boxes). A box is a ``heartbox.sector/1`` object, or
    ``{"found": true, "box_mm": {"min": [...], "max": [...]}}``, or
    ``{"found": false}``.
    """
    path = Path(path)
    data = _read_json(path, 'predictions file')
    if not isinstance(data, dict):
        raise HeartboxError(f'{path}: predictions must be a JSON object')
    if data.get('schema') == REPORT_SCHEMA:
        items = {
            c['id']: {
                'found': c['found'],
                'box_mm': c.get('proposed_box_mm'),
                'confidence': c.get('confidence'),
            }
            for c in data.get('cases', [])
            if 'error' not in c
        }
    elif 'predictions' in data:
        items = data['predictions']
    else:
        items = {k: v for k, v in data.items() if k != 'schema'}
    if not isinstance(items, dict):
        raise HeartboxError(f'{path}: "predictions" must map case ids to boxes')
    return {
        str(k): _prediction_from(v, f'{path}: prediction {k!r}')
        for k, v in items.items()
    }


# -------------------------------------------------------------- evaluation
def _round(v, nd=4):
    if v is None:
        return None
    if isinstance(v, dict):
        return {k: _round(x, nd) for k, x in v.items()}
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return round(v, nd) if math.isfinite(v) else None
    return v


def _box_json(box: Box | None):
    if box is None:
        return None
    return {
        'min': [round(float(v), 4) for v in box[0]],
        'max': [round(float(v), 4) for v in box[1]],
    }


def _score_case(
    *,
    reference_box: Box | None,
    heart: bool,
    uncertainty_mm: Mapping | None,
    mask: np.ndarray | None,
    mask_grid: Grid | None,
    pred: Prediction,
    tolerance_mm: float,
) -> dict:
    """Metrics of one case once the reference and the prediction are known."""
    out = {
        'heart_expected': heart,
        'found': pred.found,
        'found_correct': pred.found == heart,
        'confidence': pred.confidence,
        'reference_box_mm': _box_json(reference_box),
        'proposed_box_mm': _box_json(pred.box_mm if pred.found else None),
        'iou': None,
        'face_error_mm': None,
        'mean_abs_face_error_mm': None,
        'max_abs_face_error_mm': None,
        'coverage': None,
    }
    if heart and reference_box is not None:
        if pred.found:
            m = box_metrics(
                reference_box,
                pred.box_mm,
                uncertainty_mm=uncertainty_mm,
                tolerance_mm=tolerance_mm,
            )
            out.update(m)
        else:
            out['iou'] = 0.0
            if uncertainty_mm:
                out['all_faces_within_tolerance'] = False
    if mask is not None and mask_grid is not None and heart:
        out['coverage'] = mask_coverage(
            mask, mask_grid, pred.box_mm if pred.found else None
        )
    return _round(out, 6)


def _default_propose(volume: CTVolume, margin_mm, model) -> Prediction:
    from . import propose

    sector = propose(volume, margin_mm=margin_mm, model=model)
    return _prediction_from_sector(sector)


def _prediction_from_sector(sector) -> Prediction:
    if not sector.found:
        return Prediction(False, None, float(sector.confidence))
    lo, hi = sector.patient_mm()
    return Prediction(True, (lo, hi), float(sector.confidence))


def evaluate_volume(
    volume: CTVolume | None = None,
    *,
    proposed=None,
    reference_box_mm: Box | None = None,
    heart_mask: np.ndarray | None = None,
    mask_grid: Grid | None = None,
    heart: bool | None = None,
    uncertainty_mm: Mapping | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    margin_mm: float | None = None,
    model=None,
) -> dict:
    """Score one in-memory case (e.g. a phantom during training).

    Parameters
    ----------
    volume : CTVolume, optional
        The CT; needed when ``proposed`` is None (the model is run on it) and
        as the default grid of ``heart_mask``.
    proposed : Sector or Prediction, optional
        The box to score; by default ``napari_heartbox.propose(volume)``.
    reference_box_mm : (lps_min, lps_max), optional
        Reference box in LPS mm at voxel edges; by default the extent of
        ``heart_mask``.
    heart_mask : numpy.ndarray, optional
        ``(Z, Y, X)`` heart mask (nonzero = heart) on ``mask_grid``.
    mask_grid : Grid, optional
        Grid of ``heart_mask``; defaults to ``volume.grid``.
    heart : bool, optional
        Whether a heart is in view; by default True if there is a reference
        box or a non-empty mask.
    uncertainty_mm, tolerance_mm
        See :func:`box_metrics`.
    margin_mm, model
        Passed to ``propose`` when it is run.

    Returns
    -------
    dict
        The per-case metrics (keys as in the report's ``cases`` entries,
        plus ``runtime_s`` with ``propose``).
    """
    if mask_grid is None and volume is not None:
        mask_grid = volume.grid
    if heart_mask is not None and mask_grid is None:
        raise ValueError('heart_mask needs mask_grid or volume')
    if reference_box_mm is None and heart_mask is not None:
        reference_box_mm = mask_box_mm(heart_mask, mask_grid)
    if heart is None:
        heart = reference_box_mm is not None
    t0 = time.perf_counter()
    if proposed is None:
        if volume is None:
            raise ValueError('evaluate_volume needs a volume or a proposed box')
        pred = _default_propose(volume, margin_mm, model)
    elif isinstance(proposed, Prediction):
        pred = proposed
    else:
        pred = _prediction_from_sector(proposed)
    t_prop = time.perf_counter() - t0
    out = _score_case(
        reference_box=reference_box_mm,
        heart=heart,
        uncertainty_mm=uncertainty_mm,
        mask=heart_mask,
        mask_grid=mask_grid,
        pred=pred,
        tolerance_mm=tolerance_mm,
    )
    out['runtime_s'] = {'propose': round(t_prop, 4)}
    return out


def _load_mask(spec: CaseSpec) -> tuple[np.ndarray, Grid]:
    from .io import load_ct

    vol = load_ct(spec.mask, labels=True)  # a label map on purpose
    if spec.mask_labels:
        mask = np.isin(vol.hu, np.asarray(spec.mask_labels, dtype=vol.hu.dtype))
    else:
        mask = vol.hu != 0
    return mask, vol.grid


def _safe_name(case_id: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', case_id).strip('._') or 'case'


def _evaluate_spec(
    spec: CaseSpec,
    *,
    predictions: Mapping[str, Prediction] | None,
    png_dir: Path | None,
    tolerance_mm: float,
    margin_mm,
    model,
    propose_fn: Callable | None,
) -> dict:
    result: dict = {
        'id': spec.id,
        # as the manifest wrote it (relative to the manifest), not resolved to an absolute path
        'path': spec.path_as_given if spec.path_as_given is not None else (
            None if spec.path is None else spec.path.name),
    }
    t_start = time.perf_counter()
    runtime = {'load': None, 'propose': None}
    mask = mask_grid = None
    reference_box = spec.box_mm
    heart = spec.heart
    try:
        if spec.mask is not None:
            mask, mask_grid = _load_mask(spec)
            if reference_box is None:
                reference_box = mask_box_mm(mask, mask_grid)
                if reference_box is None and spec.heart:
                    heart = False  # empty mask: no heart in view
        need_ct = predictions is None or png_dir is not None
        volume = None
        if need_ct:
            if spec.path is None:
                raise HeartboxError(
                    f'case {spec.id!r}: no "path" to a CT in the manifest'
                )
            from .io import load_ct

            t0 = time.perf_counter()
            volume = load_ct(spec.path, series_uid=spec.series_uid)
            runtime['load'] = round(time.perf_counter() - t0, 4)
        if predictions is not None:
            if spec.id not in predictions:
                raise HeartboxError(
                    f'case {spec.id!r}: no prediction for it in the predictions file'
                )
            pred = predictions[spec.id]
        else:
            t0 = time.perf_counter()
            if propose_fn is not None:
                sector = propose_fn(volume)
                pred = _prediction_from_sector(sector)
            else:
                pred = _default_propose(volume, margin_mm, model)
            runtime['propose'] = round(time.perf_counter() - t0, 4)
    except CTLoadError as e:
        result['error'] = str(e)
        return result
    except HeartboxError as e:
        from .errors import ModelError

        if isinstance(e, ModelError):
            raise  # the model is missing or broken: no case can be evaluated
        result['error'] = str(e)
        return result
    scored = _score_case(
        reference_box=reference_box,
        heart=heart,
        uncertainty_mm=spec.uncertainty_mm,
        mask=mask,
        mask_grid=mask_grid,
        pred=pred,
        tolerance_mm=tolerance_mm,
    )
    result.update(scored)
    if spec.uncertainty_mm:
        result['uncertainty_mm'] = spec.uncertainty_mm
    if png_dir is not None and volume is not None:
        from ._box_overlay import PROPOSED_RGB, REFERENCE_RGB, render_box_views
        from ._png import write_png

        # proposed first (2 px), then the reference (1 px) on top: both stay
        # visible where the outlines coincide
        boxes = []
        if pred.found:
            boxes.append((pred.box_mm[0], pred.box_mm[1], PROPOSED_RGB, 2))
        if reference_box is not None:
            boxes.append((reference_box[0], reference_box[1], REFERENCE_RGB, 1))
        centre = None
        if reference_box is not None:
            centre = (np.asarray(reference_box[0]) + np.asarray(reference_box[1])) / 2
        png = write_png(
            png_dir / f'{_safe_name(spec.id)}.png',
            render_box_views(volume, boxes, centre_lps=centre),
        )
        result['png'] = str(png)
    runtime['total'] = round(time.perf_counter() - t_start, 4)
    result['runtime_s'] = runtime
    return result


def evaluate_manifest(
    manifest,
    *,
    predictions=None,
    png_dir=None,
    tolerance_mm: float | None = None,
    margin_mm: float | None = None,
    model=None,
    propose_fn: Callable | None = None,
    on_case: Callable[[dict], None] | None = None,
) -> dict:
    """Evaluate every case of a manifest and return the report.

    Parameters
    ----------
    manifest : str, Path or (list of CaseSpec, dict)
        The manifest file, or what :func:`load_manifest` returned.
    predictions : str, Path or mapping of id → Prediction, optional
        Proposed boxes to score instead of running the model (e.g. a second
        annotator's boxes). The CT is then read only to draw PNGs.
    png_dir : str or Path, optional
        Folder (created) for one ``<case id>.png`` per case: axial, coronal
        and sagittal views through the reference box centre with the
        reference (green) and proposed (magenta) boxes.
    tolerance_mm : float, optional
        Allowance on top of each face's uncertainty (default 5 mm or the
        manifest's ``tolerance_mm``).
    margin_mm, model
        Passed to :func:`napari_heartbox.propose`.
    propose_fn : callable, optional
        ``volume -> Sector`` used instead of ``propose`` (e.g. by the
        training script to score a candidate model).
    on_case : callable, optional
        Called with each case's result as soon as it is done.

    Returns
    -------
    dict
        ``{"schema": "heartbox.evaluation/1", "cases": [...],
        "summary": {...}, "settings": {...}}`` (see ``docs/evaluation.md``).

    Raises
    ------
    HeartboxError
        Bad manifest/predictions file, or :class:`ModelError` when the model
        is needed but not available. Unreadable cases do not raise: they
        are reported with an ``error`` line.
    """
    if isinstance(manifest, (str, Path)):
        manifest_path = str(manifest)
        cases, options = load_manifest(manifest)
    else:
        manifest_path = None
        cases, options = manifest
    if tolerance_mm is None:
        tolerance_mm = float(options.get('tolerance_mm', DEFAULT_TOLERANCE_MM))
    if margin_mm is None:
        margin_mm = options.get('margin_mm')
    if isinstance(predictions, (str, Path)):
        predictions = load_predictions(predictions)
    elif predictions is not None:
        predictions = {
            k: _prediction_from(v, f'prediction {k!r}') for k, v in predictions.items()
        }
    if png_dir is not None:
        png_dir = Path(png_dir)
        png_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in cases:
        r = _evaluate_spec(
            spec,
            predictions=predictions,
            png_dir=png_dir,
            tolerance_mm=tolerance_mm,
            margin_mm=margin_mm,
            model=model,
            propose_fn=propose_fn,
        )
        results.append(r)
        if on_case is not None:
            on_case(r)
    return {
        'schema': REPORT_SCHEMA,
        'manifest': manifest_path,
        'settings': {
            'source': 'predictions' if predictions is not None else 'model',
            'tolerance_mm': tolerance_mm,
            'margin_mm': margin_mm,
            'face_error_sign': 'positive = proposed face outside the reference box',
        },
        'cases': results,
        'summary': summarize(results),
    }
