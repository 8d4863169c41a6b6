"""``python -m models.threshold_study``: which heart-probability threshold should a recipe ship with?

The post-processing keeps the largest 6-connected component of the cells with
``prob >= threshold`` (``docs/model.md`` §4), and the slice schedule's coarse
pass calls a slice positive at the same threshold (§3). This study scores
candidate networks (the ``seed_*`` folders a ``models.seed_study`` run writes,
or ``bundled``) at every threshold of a grid, through the shipped path (the
slice schedule, then :func:`~napari_heartbox.model.postprocess.sector_from_prob`
at margin 0), on the **validation** phantoms (the first calibration phantoms,
seeds 100000…) and, for the record only, on the real scans.

Rule (the one ``python -m models.train --threshold`` follows, see
``models/EXPERIMENTS.md`` round 7): the recipe's threshold is the grid value
with the highest **seed-mean validation mean IoU** (a missed heart counts as
IoU 0); ties go to the lower threshold. The real scans are never used to pick.

Each network is run once per case on every slice; the schedule at each
threshold is then replayed on those scores (a slice's score depends only on
its own context slices, so this is exactly what ``propose`` would compute).

Examples
--------
::

    python -m models.threshold_study /tmp/study/seed_0 /tmp/study/seed_1 /tmp/study/seed_2
    python -m models.threshold_study bundled --val-cases 20 --skip-real
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.train import CALIB_SEED0, ROOT, log, real_cases, real_reference

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def _load(candidate: str):
    from napari_heartbox.model.card import CARD_NAME, ONNX_NAME
    from napari_heartbox.model.runtime import HeartModel

    if candidate == 'bundled':
        return HeartModel()
    d = Path(candidate)
    return HeartModel(d / ONNX_NAME, d / CARD_NAME)


def score_thresholds(model, volume, thresholds, **reference) -> list[dict]:
    """One :func:`~napari_heartbox.evaluate.evaluate_volume` row per threshold (margin 0).

    Parameters
    ----------
    model : HeartModel
        The candidate (its card's other post-processing values are kept).
    volume : CTVolume
        The scan.
    thresholds : sequence of float
        Values of ``postprocess.threshold`` to try.
    **reference
        The reference keywords of ``evaluate_volume`` (``heart_mask`` and
        ``heart``, or ``reference_box_mm`` and ``uncertainty_mm``).
    """
    from napari_heartbox.evaluate import evaluate_volume
    from napari_heartbox.model.postprocess import sector_from_prob, valid_cells
    from napari_heartbox.model.zschedule import scheduled_prob

    hu, grid = volume.hu, volume.grid
    dz = grid.spacing[0]
    full = model.predict(hu, dz)  # every slice, each with its z context
    rows_valid, cols_valid = valid_cells(hu.shape[1], hu.shape[2])
    rows = []
    for t in thresholds:
        pp = dict(model.postprocess, threshold=float(t))
        prob, _ = scheduled_prob(lambda idx: full[idx], hu.shape[0], dz, rows_valid, cols_valid, pp)
        sector = sector_from_prob(prob, grid, pp, margin_mm=0.0)
        rows.append(evaluate_volume(volume, proposed=sector, **reference))
    return rows


def _summary(rows: list[dict]) -> dict:
    from napari_heartbox.evaluate import summarize

    s = summarize(rows)
    iou, err = s['iou'] or {}, s['mean_abs_face_error_mm'] or {}
    return {'iou_mean': iou.get('mean'), 'iou_median': iou.get('median'),
            'mean_abs_face_error_mm': err.get('mean'),
            'missed': s['n_missed_heart'], 'false_box': s['n_false_box']}


def pick_threshold(per_candidate: dict[str, dict[float, dict]], thresholds) -> float:
    """The rule: highest seed-mean validation mean IoU; ties go to the lower threshold."""
    best, best_score = None, -np.inf
    for t in thresholds:
        score = np.mean([per_candidate[c][t]['iou_mean'] or 0.0 for c in per_candidate])
        if score > best_score + 1e-9:
            best, best_score = t, score
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('candidates', nargs='+',
                    help="folders with heartbox.onnx + heartbox.card.json, or 'bundled'")
    ap.add_argument('--val-cases', type=int, default=60,
                    help='validation phantoms (the first calibration phantoms)')
    ap.add_argument('--thresholds', type=float, nargs='+', default=list(THRESHOLDS))
    ap.add_argument('--skip-real', action='store_true')
    ap.add_argument('--out', default=str(ROOT / 'models' / 'runs' / 'threshold_study.json'))
    args = ap.parse_args(argv)

    from napari_heartbox.io import load_ct
    from napari_heartbox.phantom import make_phantom

    models = {c: _load(c) for c in args.candidates}
    thresholds = [float(t) for t in args.thresholds]
    val_rows = {c: {t: [] for t in thresholds} for c in models}
    for i, seed in enumerate(range(CALIB_SEED0, CALIB_SEED0 + args.val_cases)):
        case = make_phantom(seed, keep_labels=False)
        mask = np.asarray(case.heart_mask, bool)
        ref = {'heart_mask': mask, 'heart': True} if mask.any() else {'heart': False}
        for c, m in models.items():
            for t, r in zip(thresholds, score_thresholds(m, case.volume, thresholds, **ref), strict=True):
                val_rows[c][t].append(r)
        if (i + 1) % 10 == 0:
            log(f'validation phantoms: {i + 1}/{args.val_cases}')
    validation = {c: {t: _summary(rows) for t, rows in per_t.items()} for c, per_t in val_rows.items()}
    real = {c: {t: [] for t in thresholds} for c in models}
    if not args.skip_real:
        for cid, path, ref in real_cases():
            vol = load_ct(path)
            for c, m in models.items():
                for t, r in zip(thresholds, score_thresholds(m, vol, thresholds, **real_reference(ref)), strict=True):
                    real[c][t].append({'id': cid, 'heart_expected': r['heart_expected'], 'found': r['found'],
                                       'iou': r.get('iou'), 'face_error_mm': r.get('face_error_mm')})
    chosen = pick_threshold(validation, thresholds)

    def fmt(v, spec):
        return '-' if v is None else format(v, spec)

    print('threshold | validation mean IoU per candidate | seed mean | |face err| mm, seed mean '
          '| missed/false (all candidates) | real IoU, seed mean per scan (reported, never used to pick)')
    for t in thresholds:
        v = [validation[c][t] for c in models]
        real_ids = [r['id'] for r in next(iter(real.values()))[t] if r['heart_expected']]
        real_means = [np.mean([r['iou'] or 0.0 for c in models for r in real[c][t] if r['id'] == rid])
                      for rid in real_ids]
        false_real = sum(r['found'] for c in models for r in real[c][t] if not r['heart_expected'])
        errs = [x['mean_abs_face_error_mm'] for x in v if x['mean_abs_face_error_mm'] is not None]
        print(' | '.join([
            f'{t:.2f}' + (' *' if t == chosen else ''),
            ' '.join(fmt(x['iou_mean'], '.3f') for x in v),
            f"{np.mean([x['iou_mean'] or 0.0 for x in v]):.3f}",
            fmt(np.mean(errs) if errs else None, '.2f'),
            f"{sum(x['missed'] for x in v)}/{sum(x['false_box'] for x in v)}",
            ' '.join(f'{rid.split("/")[0][:14]} {m:.3f}' for rid, m in zip(real_ids, real_means, strict=True))
            + (f' (false boxes on heart-free scans: {false_real})' if real_ids else ''),
        ]))
    print(f'chosen (highest seed-mean validation mean IoU): {chosen}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        'candidates': list(models), 'validation_seeds': [CALIB_SEED0, CALIB_SEED0 + args.val_cases],
        'margin_mm': 0.0, 'rule': 'highest seed-mean validation mean IoU (missed heart = 0); ties: lower',
        'chosen_threshold': chosen,
        'validation': {c: {str(t): s for t, s in per_t.items()} for c, per_t in validation.items()},
        'real': {c: {str(t): rows for t, rows in per_t.items()} for c, per_t in real.items()},
    }, indent=1, default=str))
    log(f'wrote {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
