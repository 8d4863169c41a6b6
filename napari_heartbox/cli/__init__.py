"""The ``napari-heartbox`` command line.

Each subcommand lives in its own module ``napari_heartbox/cli/_<name>.py``
that defines ``add_parser(subparsers)`` (registering itself with
``set_defaults(run=...)``). Errors the user can act on
(:class:`~napari_heartbox.errors.HeartboxError`) are printed as one line
and exit with status 2; there is never a traceback for bad input.

The CLI must start without importing napari, Qt or torch (checked in the
tests), so subcommand modules import heavy things inside their ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ['main']

# Order = order in --help. Each name is a module napari_heartbox.cli._<name>.
SUBCOMMANDS = (
    'info',
    'propose',
    'batch',
    'evaluate',
    'demo',
    'export_web',
    'serve_web',
    'finetune',
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand of :data:`SUBCOMMANDS`."""
    from napari_heartbox import __version__

    parser = argparse.ArgumentParser(
        prog='napari-heartbox',
        description='Find the heart sector (a 3D box) in a chest CT.',
    )
    parser.add_argument(
        '--version', action='version', version=f'napari-heartbox {__version__}'
    )
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in SUBCOMMANDS:
        importlib.import_module(f'napari_heartbox.cli._{name}').add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    from napari_heartbox.errors import HeartboxError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'run', None):
        parser.print_help()
        return 1
    try:
        return int(args.run(args) or 0)
    except HeartboxError as e:
        print(f'napari-heartbox: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('napari-heartbox: interrupted', file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
