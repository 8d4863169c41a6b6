"""``napari-heartbox serve-web OUTDIR [--port]``: serve a bundle on 127.0.0.1."""

from __future__ import annotations

__all__ = ['add_parser']


def add_parser(subparsers) -> None:
    """Register the ``serve-web`` subcommand."""
    p = subparsers.add_parser(
        'serve-web',
        help='serve an exported web bundle on http://127.0.0.1',
        description=(
            'Serve a folder written by export-web on the loopback interface, with '
            'the MIME types and COOP/COEP headers onnxruntime-web needs for threads.'
        ),
    )
    p.add_argument('outdir', help='the folder written by export-web')
    p.add_argument('--port', type=int, default=8000, help='TCP port (0: any free one)')
    p.add_argument(
        '--no-isolation',
        action='store_true',
        help='do not send COOP/COEP (the app then runs single-threaded)',
    )
    p.set_defaults(run=run)


def run(args) -> int:
    """Serve until Ctrl-C."""
    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.web.serve import serve

    try:
        serve(args.outdir, args.port, isolate=not args.no_isolation)
    except FileNotFoundError as e:
        raise HeartboxError(str(e)) from None
    except OSError as e:
        raise HeartboxError(
            f'cannot serve {args.outdir} on port {args.port}: {e}'
        ) from None
    return 0
