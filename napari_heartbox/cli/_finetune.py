"""``napari-heartbox finetune CORRECTIONS_DIR --out MODEL_DIR``: a new model from corrected boxes.

Reads a worklist corrections folder (or sector files beside their CTs), fine-tunes
the base model with a box-supervised loss plus phantom replay, and writes a model
folder that ``propose --model``, ``export-web --model``, the napari widget and the
worklist accept, with a before/after report on held-out cases. Needs torch (the
``finetune`` extra); imported only when the command runs.
"""

from __future__ import annotations

__all__ = ['add_parser']


def add_parser(subparsers) -> None:
    """Register the ``finetune`` subcommand."""
    p = subparsers.add_parser(
        'finetune',
        help='train a new model from corrected boxes (needs the finetune extra: torch)',
        description=(
            'Fine-tune the heart model on corrected boxes: a worklist corrections folder '
            '(heartbox.corrections/1) or a folder of sector files beside their CTs. Writes '
            'MODEL_DIR/heartbox.onnx, heartbox.card.json and finetune_report.{json,md} '
            '(held-out scores before and after: leave-one-out up to 5 cases, else 5-fold).'
        ),
    )
    p.add_argument('corrections', metavar='CORRECTIONS_DIR')
    p.add_argument('--out', required=True, metavar='MODEL_DIR', help='folder for the new model (created)')
    p.add_argument('--base', metavar='MODEL', default=None,
                   help='model folder or .onnx to start from (default: the bundled model)')
    p.add_argument('--steps', type=int, default=300, help='optimiser steps per fine-tune (default 300)')
    p.add_argument('--lr', type=float, default=5e-4, help='learning rate (default 5e-4)')
    p.add_argument('--replay', type=int, default=16,
                   help='phantoms replayed with full labels so the model does not forget (default 16)')
    p.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda' when torch sees a GPU")
    p.add_argument('--no-report', action='store_true',
                   help='train once on all cases, skip the held-out before/after scores')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from napari_heartbox.errors import HeartboxError

    if args.steps < 1 or args.replay < 0 or not (0 < args.lr < 1):
        raise HeartboxError('--steps must be >= 1, --replay >= 0 and --lr in (0, 1)')
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HeartboxError(f'{out}: --out must be a folder')
    from napari_heartbox._training.finetune import finetune

    r = finetune(args.corrections, out, base=args.base, steps=args.steps, lr=args.lr, replay=args.replay,
                 device=args.device, report=not args.no_report, seed=args.seed,
                 log=lambda m: print(m, file=sys.stderr))
    rep = r.get('report')
    if rep:
        b, a = rep['before'], rep['after']
        print(f'held-out ({rep["scheme"]}, {b["n"]} cases): median IoU {b["median_iou"]:.3f} -> '
              f'{a["median_iou"]:.3f}; mean |face error| {b["mean_abs_face_error_mm"] or 0:.1f} -> '
              f'{a["mean_abs_face_error_mm"] or 0:.1f} mm')
    print(f'model: {out.resolve()} (use it with: napari-heartbox propose --model {out} CT)')
    return 0
