"""Score saved models on every real chest CT with a hand box (shared cases + ``models.eval_cases``).

``python -m models.score_real bundled models/runs/round16-window6-phantoms/seed_0 ... [--grid-cell-mm 6]``
prints, per model, each case's IoU at margin 0, the faces off by more than 10 mm, and the
field-of-view check (the largest face difference between the full scan and a chest crop), and
writes the rows to ``--out`` as JSON. Evaluation only: nothing is trained or tuned here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_model(arg: str, cell_mm: float | None, body_window: bool = False):
    """``bundled`` or a model folder / .onnx, windowed when ``cell_mm`` is set (never the bundled
    one) or on the body window (round 17) when ``body_window``."""
    from models.train import maybe_windowed
    from napari_heartbox.model.runtime import HeartModel

    model = HeartModel.load(None if arg == 'bundled' else arg)
    if body_window:
        from models.body_window import BodyWindowModel

        return BodyWindowModel(model)
    return model if arg == 'bundled' else maybe_windowed(model, cell_mm)


def summary_line(name: str, rows: list[dict]) -> str:
    cells, ious, fov = [], [], []
    for r in rows:
        if not r['heart_expected']:
            cells.append(f"{r['id'].split('/')[-1][:12]} {'FALSE BOX' if r['found'] else 'none'}")
            continue
        iou = r.get('iou')
        ious.append(iou or 0.0)
        errs = r.get('face_error_mm') or {}  # face name → signed mm (+ = box outside)
        big = ', '.join(f'{f[:3]} {e:+.0f}' for f, e in errs.items() if abs(e) > 10)
        fc = (r.get('fov_check') or {}).get('max_face_diff_mm')
        if fc is not None:
            fov.append(fc)
        cells.append(f"{r['id'].split('/')[-1][:12]} {0 if iou is None else iou:.3f}"
                     f"{f' ({big})' if big else ''}{f' fov {fc:.0f}' if fc is not None else ''}")
    head = (f'{name}: median IoU {np.median(ious):.3f}, mean {np.mean(ious):.3f} over {len(ious)} chest CTs; '
            f'FOV max diff median {np.median(fov) if fov else float("nan"):.1f} mm')
    return head + '\n    ' + '\n    '.join(cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('models', nargs='+', help="'bundled' or model folders")
    ap.add_argument('--grid-cell-mm', type=float, default=None,
                    help='score the (non-bundled) models on fixed-mm windows (models/EXPERIMENTS.md round 16)')
    ap.add_argument('--body-window', action='store_true',
                    help="score the models on each scan's body window (models/EXPERIMENTS.md round 17)")
    ap.add_argument('--phantoms', type=int, default=0, metavar='N',
                    help='also score the first N test phantoms (median IoU at margin 0)')
    ap.add_argument('--out', type=Path, default=None)
    args = ap.parse_args(argv)

    from models.train import evaluate_real

    report = {}
    for m in args.models:
        model = load_model(m, args.grid_cell_mm, args.body_window)
        rows = evaluate_real(model, 0.0)
        keep = ('id', 'heart_expected', 'found', 'iou', 'face_error_mm', 'fov_check', 'mean_abs_face_error_mm')
        report[m] = [{k: r.get(k) for k in keep} for r in rows]
        print(summary_line(m, report[m]), flush=True)
        if args.phantoms:
            from models.train import TEST_SEED0, score_phantoms

            prow = score_phantoms(model, range(TEST_SEED0, TEST_SEED0 + args.phantoms))[0.0]
            ious = [r['iou'] or 0.0 for r in prow if r.get('heart_expected', True)]
            print(f'    test phantoms: median IoU {np.median(ious):.3f} over {len(ious)}', flush=True)
            report[m] = {'real': report[m], 'phantom_ious': ious}
    if args.out:
        args.out.write_text(json.dumps({'grid_cell_mm': args.grid_cell_mm, 'models': report}, indent=1,
                                       default=str))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
