"""``napari-heartbox propose PATH``: find the heart box of one CT.

Prints a one-line summary (or, with ``--json``, the ``heartbox.sector/1``
JSON, with the loading warnings in its ``warnings`` array) on stdout, and
the warnings on stderr; ``--out FILE`` writes the JSON to a file. The JSON is
always valid RFC 8259 (a non-finite number would be ``null``). Never writes next
to the input scan unless ``--out`` points there.
"""

from __future__ import annotations

import json
import sys

from napari_heartbox._json import json_safe

__all__ = ['add_parser', 'json_safe']


def add_parser(subparsers) -> None:
    """Register the ``propose`` subcommand."""
    p = subparsers.add_parser(
        'propose',
        help='find the heart sector (3D box) of a CT with the bundled model',
        description=(
            'Load a CT (DICOM folder, DICOM file(s) or NIfTI), run the bundled heart '
            'model and print the heart box. The JSON follows the heartbox.sector/1 '
            'schema (docs/sector-schema.md).'
        ),
    )
    p.add_argument('path', nargs='+', help='DICOM folder, DICOM file(s) or .nii/.nii.gz')
    p.add_argument('--json', action='store_true', help='print the sector JSON on stdout')
    p.add_argument('--out', metavar='FILE', help='write the sector JSON to FILE')
    p.add_argument(
        '--margin-mm',
        type=float,
        default=None,
        metavar='M',
        help="safety margin on every face in mm (default: the model card's)",
    )
    p.add_argument('--series-uid', default=None, help='series to use when the input has several')
    p.add_argument(
        '--model', metavar='MODEL', default=None,
        help='model folder (e.g. what `finetune --out` wrote) or .onnx file with its card beside it '
        '(default: the bundled model)',
    )
    p.set_defaults(run=run)


def run(args) -> int:
    """Load, propose, print; returns 0 (errors raise HeartboxError → exit 2)."""
    import time
    from pathlib import Path

    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.io import open_ct
    from napari_heartbox.model import propose
    from napari_heartbox.model.runtime import HeartModel

    if args.margin_mm is not None and not (0 <= args.margin_mm <= 200):
        raise HeartboxError(f'--margin-mm {args.margin_mm}: must be between 0 and 200 mm')
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise HeartboxError(f'{out}: --out must be a file path, not a folder')
    src = args.path[0] if len(args.path) == 1 else args.path
    model = HeartModel.load(args.model)  # a bad --model fails before any CT is read
    t0 = time.perf_counter()
    # header pass only: the model reads the pixels of just the slices it scores
    volume = open_ct(src, series_uid=args.series_uid)
    t1 = time.perf_counter()
    sector = propose(volume, margin_mm=args.margin_mm, model=model)
    t2 = time.perf_counter()
    warnings = volume.read_warnings()
    doc = sector.to_dict()
    doc['warnings'] = warnings  # the loading warnings travel with the box (schema: optional)
    text = json.dumps(json_safe(doc), indent=2, allow_nan=False)  # RFC 8259: never NaN
    for w in warnings:  # on stderr too, with or without --json
        print(f'warning: {w}', file=sys.stderr)
    if out is not None:
        try:
            out.write_text(text + '\n', encoding='utf-8')
        except OSError as e:
            raise HeartboxError(f'{out}: cannot write ({e.strerror})') from None
    if args.json:
        print(text)
    else:
        if sector.found:
            lo, hi = sector.patient_mm()
            z, y, x = sector.ranges
            print(
                f'heart box: z [{z[0]}, {z[1]}) y [{y[0]}, {y[1]}) x [{x[0]}, {x[1]}) voxels; '
                f'LPS mm min {[round(float(v), 1) for v in lo]} '
                f'max {[round(float(v), 1) for v in hi]}; '
                f'{sector.volume_ml:.0f} ml; confidence {sector.confidence:.2f}'
            )
        else:
            why = f': {sector.note}' if sector.note else ''
            print(f'no heart found (confidence {sector.confidence:.2f}){why}')
        print(f'headers {t1 - t0:.2f} s, pixels + propose {t2 - t1:.2f} s', file=sys.stderr)
        if out is not None:
            print(f'wrote {out}', file=sys.stderr)
    return 0
