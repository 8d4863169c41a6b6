"""``python -m models.seed_study``: how much do the results depend on the training seed?

Trains the network several times on the SAME training phantoms with different
torch seeds (initialisation, batch order, augmentation), exports each run as a
candidate ``heartbox.onnx``, and scores every candidate at margin 0 on the
held-out test phantoms and on every real case in ``../shared/data/ct/``.
Prints a table with the mean and standard deviation over seeds and writes
``OUT/seed_study.json``.

Why: on the real chest CTs the IoU of two runs of the same recipe differs by
0.1-0.3, so one run per recipe cannot rank two recipes. Compare recipes by
their seed means (``models/EXPERIMENTS.md``). The post-processing parameters
(threshold, confidence, margin) are the bundled card's; candidates are not
calibrated, so the study compares networks, not cards. A new recipe's
threshold is then picked from its candidates by ``python -m
models.threshold_study OUT/seed_*``.

Examples
--------
::

    python -m models.seed_study --seeds 0 1 2                   # CPU: ~7 min per seed on 2 free cores
    python -m models.seed_study --seeds 0 1 2 --val-cases 60    # + validation phantoms, to pick a seed
    python -m models.seed_study --seeds 0 1 2 3 4 --device cuda  # a GPU
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from models.train import (
    CALIB_SEED0,
    ROOT,
    TEST_SEED0,
    TRAIN_SEED0,
    add_recipe_args,
    evaluate_real,
    init_onnx,
    log,
    maybe_windowed,
    score_phantoms,
    train_net,
    training_data,
)


def _candidate(net, out: Path) -> Path:
    """Export ``net`` into ``out`` with a copy of the bundled card (own hash)."""
    from models.export import compose, export_network
    from napari_heartbox.model.card import (
        CARD_NAME,
        ONNX_NAME,
        assets_dir,
        sha256_file,
        write_card,
    )

    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_NAME
    onnx_path.write_bytes(compose(export_network(net)).SerializeToString())
    card = json.loads((assets_dir() / CARD_NAME).read_text())
    card.pop('metrics', None)
    card.pop('trained_with', None)
    card.update(sha256=sha256_file(onnx_path), bytes=onnx_path.stat().st_size,
                name='napari-heartbox seed-study candidate')
    write_card(out / CARD_NAME, card)
    return onnx_path


def _phantom_scores(model, seeds) -> dict:
    from napari_heartbox.evaluate import summarize

    s = summarize(score_phantoms(model, seeds)[0.0])
    iou, err = s['iou'] or {}, s['mean_abs_face_error_mm'] or {}  # None: no heart case / no box
    return {'iou_median': iou.get('median'), 'iou_p5': iou.get('p5'),
            'mean_abs_face_error_mm': err.get('mean'),
            'missed': s['n_missed_heart'], 'false_box': s['n_false_box'],
            'coverage_ge_99': s['coverage_ge_99']}


def _table(results: list[dict]) -> list[str]:
    real_ids = [r['id'] for r in results[0]['real']] if results else []
    val = any(res.get('validation') for res in results)
    head = ['seed', *(['validation |face err| mm (IoU med)'] if val else []),
            'phantom IoU med (p5)', '|face err| mm', 'missed/false'] + [
        i.split('/')[0][:14] for i in real_ids]
    lines = [' | '.join(head)]

    def f(v, spec):
        return '-' if v is None else format(v, spec)

    def real_cell(r):
        if r['heart_expected']:
            return f(r['iou'], '.3f')
        return 'false box' if r['found'] else 'none ✓'

    for res in results:
        p = res['phantom']
        v = res.get('validation') or {}
        lines.append(' | '.join([
            str(res['seed']),
            *([f"{f(v.get('mean_abs_face_error_mm'), '.2f')} ({f(v.get('iou_median'), '.3f')})"] if val else []),
            f"{f(p['iou_median'], '.3f')} ({f(p['iou_p5'], '.2f')})",
            f(p['mean_abs_face_error_mm'], '.2f'), f"{p['missed']}/{p['false_box']}",
            *[real_cell(r) for r in res['real']]]))

    def ms(vals):
        vals = [v for v in vals if v is not None]
        return '-' if not vals else f'{np.mean(vals):.3f} ± {np.std(vals):.3f}'

    results = [r for r in results if r['seed'] != 'init']  # the baseline is not one of the draws
    lines.append(' | '.join([
        'mean ± sd',
        *([ms([(r.get('validation') or {}).get('mean_abs_face_error_mm') for r in results])] if val else []),
        ms([r['phantom']['iou_median'] for r in results]),
        ms([r['phantom']['mean_abs_face_error_mm'] for r in results]), '',
        *[ms([res['real'][k]['iou'] for res in results]) if results[0]['real'][k]['heart_expected']
          else f"{sum(not res['real'][k]['found'] for res in results)}/{len(results)} none"
          for k in range(len(real_ids))]]))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='torch seeds, one run each')
    add_recipe_args(ap)
    ap.add_argument(
        '--val-cases', type=int, default=0,
        help='also score each run on this many calibration phantoms (validation: pick a seed by '
        'these, never by the test phantoms or the real scans)',
    )
    ap.add_argument('--score-init', action='store_true',
                    help='also score the --init model itself (the baseline, same code and cases)')
    ap.add_argument('--out', default=str(ROOT / 'models' / 'runs' / 'seed_study'))
    args = ap.parse_args(argv)

    from models import data
    from napari_heartbox.model.card import CARD_NAME
    from napari_heartbox.model.runtime import HeartModel

    out = Path(args.out)
    train_seeds = range(TRAIN_SEED0, TRAIN_SEED0 + args.train_cases)
    x_all, y_all, real_mask, _ = training_data(args, train_seeds)
    results = []
    init = init_onnx(args.init)
    runs = ([('init', None)] if init is not None and args.score_init else []) + [(s, s) for s in args.seeds]
    for name, seed in runs:
        t0 = time.perf_counter()
        if seed is None:  # the starting model itself, scored by the same code: the baseline
            model = HeartModel(init, init.with_name(CARD_NAME))
        else:
            net = train_net(x_all, y_all, steps=args.steps, batch=args.batch, lr=args.lr, seed=seed,
                            threads=args.threads, device=args.device, log_every=max(args.steps // 4, 1),
                            real=real_mask, real_fraction=args.real_fraction, init=init)
            onnx_path = _candidate(net, out / f'seed_{seed}')
            model = maybe_windowed(HeartModel(onnx_path, onnx_path.parent / CARD_NAME), args.grid_cell_mm)
        res = {'seed': name, 'train_s': round(time.perf_counter() - t0),
               'validation': _phantom_scores(model, range(CALIB_SEED0, CALIB_SEED0 + args.val_cases))
               if args.val_cases else None,
               'phantom': _phantom_scores(model, range(TEST_SEED0, TEST_SEED0 + args.test_cases)),
               'real': [] if args.skip_real else [
                   {k: r.get(k) for k in ('id', 'heart_expected', 'found', 'iou', 'face_error_mm', 'fov_check')}
                   for r in evaluate_real(model, 0.0)]}
        results.append(res)
        log(f'seed {seed}: {res["phantom"]}')
    report = {
        'phantom_cache_id': data.cache_dir().name, 'train_phantoms': args.train_cases,
        'test_phantoms': args.test_cases, 'steps': args.steps, 'batch': args.batch, 'lr': args.lr,
        'device': args.device, 'margin_mm': 0.0, 'init': args.init, 'real_cases': args.real_cases,
        'real_fraction': args.real_fraction, 'grid_cell_mm': args.grid_cell_mm, 'runs': results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / 'seed_study.json').write_text(json.dumps(report, indent=1, default=str))
    print('\n'.join(_table(results)))
    log(f'wrote {out / "seed_study.json"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
