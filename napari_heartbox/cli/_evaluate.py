"""``napari-heartbox evaluate MANIFEST.json``: score heart boxes against references.

Prints one line per case and a summary, optionally writes the JSON report
(``--out``) and one PNG per case (``--png-dir``). Nothing is written unless
asked for, and never next to the input scans.
"""

from __future__ import annotations

import sys

__all__ = ['add_parser']


def add_parser(subparsers) -> None:
    """Register the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        'evaluate',
        help='score proposed heart boxes against reference boxes or masks',
        description=(
            'Run the model on every case of a manifest (or read proposed boxes from '
            '--predictions) and report 3D IoU, signed face errors in mm, heart-voxel '
            'coverage, found/not-found correctness and runtime. Manifest format: '
            'docs/evaluation.md.'
        ),
    )
    p.add_argument('manifest', help='manifest JSON listing the cases')
    p.add_argument('--out', metavar='REPORT.json', help='write the JSON report here')
    p.add_argument(
        '--png-dir',
        metavar='DIR',
        help='save <case>.png per case: axial/coronal/sagittal with reference '
        '(green) and proposed (magenta) boxes',
    )
    p.add_argument(
        '--predictions',
        metavar='PRED.json',
        help='score these boxes instead of running the model (e.g. another '
        "annotator's boxes, or an earlier report)",
    )
    p.add_argument(
        '--margin-mm',
        type=float,
        default=None,
        help="safety margin passed to propose (default: the manifest's margin_mm, else the model's)",
    )
    p.add_argument(
        '--tolerance-mm',
        type=float,
        default=None,
        help="allowance on top of each face uncertainty (default: the manifest's tolerance_mm, else 5)",
    )
    p.add_argument('--quiet', action='store_true', help='print only the summary table')
    p.set_defaults(run=run)


def run(args) -> int:
    """Evaluate the manifest; returns 0 (case errors are part of the report)."""
    import json
    from pathlib import Path

    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.evaluate import evaluate_manifest, format_table

    def progress(case: dict) -> None:
        if args.quiet:
            return
        if 'error' in case:
            print(f'  {case["id"]}: error: {case["error"]}', file=sys.stderr)
        else:
            iou = case.get('iou')
            iou_s = '-' if iou is None else f'{iou:.3f}'
            print(
                f'  {case["id"]}: found={case["found"]} IoU={iou_s}',
                file=sys.stderr,
            )

    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise HeartboxError(f'{out}: --out must be a file path, not a folder')
    report = evaluate_manifest(
        args.manifest,
        predictions=args.predictions,
        png_dir=args.png_dir,
        tolerance_mm=args.tolerance_mm,
        margin_mm=args.margin_mm,
        on_case=progress,
    )
    print(format_table(report))
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
        except OSError as e:
            raise HeartboxError(
                f'{out}: cannot write the report ({e.strerror})'
            ) from None
        print(f'report written to {out}')
    return 0
