"""``napari-heartbox export-web OUTDIR``: write the static browser bundle."""

from __future__ import annotations

__all__ = ['add_parser']


def add_parser(subparsers) -> None:
    """Register the ``export-web`` subcommand."""
    p = subparsers.add_parser(
        'export-web',
        help='write the browser app (WebAssembly) as a static folder',
        description=(
            'Write a self-contained static web bundle: the app, the bundled ONNX '
            'model, its config and the onnxruntime-web runtime. Serve it with '
            '"napari-heartbox serve-web OUTDIR" (browsers refuse file://).'
        ),
    )
    p.add_argument('outdir', help='folder to write (created if missing)')
    p.add_argument(
        '--model', default=None,
        help='model folder (e.g. what `finetune --out` wrote) or ONNX file (default: the bundled one)'
    )
    p.add_argument(
        '--card', default=None, help='model card JSON (default: next to the model)'
    )
    p.set_defaults(run=run)


def run(args) -> int:
    """Export the bundle and print where it is and how to serve it."""
    import json

    from napari_heartbox.web.export import export_web

    index = export_web(args.outdir, model_path=args.model, card_path=args.card)
    bundle = json.loads((index.parent / 'bundle.json').read_text(encoding='utf-8'))
    mb = bundle['total_bytes'] / 1e6
    print(f'wrote {index.parent} ({len(bundle["files"])} files, {mb:.1f} MB)')
    print(f'serve it with: napari-heartbox serve-web {index.parent}')
    return 0
