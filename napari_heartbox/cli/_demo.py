"""``napari-heartbox demo``: napari on the synthetic chest CT, box editor docked.

Opens a napari window with the built-in "Synthetic chest CT" sample (no
download), docks the "Heart sector" widget and presses *Propose*.

When it ends by itself
----------------------
* No display (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``): nothing is
  opened; it says so and prints what it would show (exit status 0).
* ``--exit-after SECONDS``: closes the window that many seconds after the
  proposal is shown.
* Under ``xvfb-run`` (what ``make demo`` uses when available), or when the
  ``CI`` or ``HEARTBOX_DEMO_EXIT`` environment variable is set, nobody can
  see the window: the demo saves a screenshot (``--screenshot``, default
  ``heartbox-demo.png`` in the current folder) and exits after ``HEARTBOX_DEMO_EXIT``
  seconds (a number; default 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ['add_parser', 'has_display', 'run']

WHAT_IT_SHOWS = (
    'napari with the layer "Synthetic chest CT" (a deterministic thorax phantom '
    'with lungs, heart, aorta, spine and ribs; axis order z, y, x in mm), the '
    '"Heart sector" dock widget, and the proposed heart box as an editable '
    'wireframe with six face handles ("heart box: Synthetic chest CT") plus '
    'a rectangle in the displayed slice.'
)


def add_parser(subparsers) -> None:
    """Register the ``demo`` subcommand."""
    p = subparsers.add_parser(
        'demo',
        help='open napari on the built-in synthetic chest CT with the box editor',
        description=__doc__.split('\n\n', 1)[1].split('When it ends')[0].strip(),
    )
    p.add_argument(
        '--screenshot',
        metavar='PNG',
        default=None,
        help='save a screenshot of the window (with the dock widget) once the box is shown',
    )
    p.add_argument(
        '--exit-after',
        metavar='SECONDS',
        type=float,
        default=None,
        help='close napari this many seconds after the box is shown',
    )
    p.add_argument(
        '--3d', dest='three_d', action='store_true', help='start in the 3D view'
    )
    p.set_defaults(run=run)


def has_display() -> bool:
    """True when a GUI window can be opened (always True off Linux)."""
    if not sys.platform.startswith('linux'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _unattended() -> tuple[bool, float]:
    """(is nobody watching?, seconds to stay open) from the environment."""
    env = os.environ.get('HEARTBOX_DEMO_EXIT')
    xvfb = 'xvfb-run' in os.environ.get('XAUTHORITY', '')
    if env is None and not os.environ.get('CI') and not xvfb:
        return False, 0.0
    try:
        return True, max(0.0, float(env)) if env else 2.0
    except ValueError:
        return True, 2.0


def run(args) -> int:
    """Run the demo (see the module docstring); returns the exit status."""
    if not has_display():
        print(
            'napari-heartbox demo: no display here (DISPLAY is not set), so napari '
            'cannot open a window.\nIt would show: ' + WHAT_IT_SHOWS + '\n'
            'Run it on a desktop, or headless with a screenshot:\n'
            '  xvfb-run -a napari-heartbox demo --screenshot heartbox-demo.png'
        )
        return 0

    unattended, linger = _unattended()
    shot = args.screenshot
    exit_after = args.exit_after
    if unattended:
        shot = shot or str(Path.cwd() / 'heartbox-demo.png')
        exit_after = linger if exit_after is None else exit_after

    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title='napari-heartbox demo')
    viewer.open_sample('napari-heartbox', 'synthetic_chest_ct')
    _dock, widget = viewer.window.add_plugin_dock_widget(
        'napari-heartbox', 'Heart sector'
    )
    print('napari-heartbox demo: ' + WHAT_IT_SHOWS)

    def shown():
        # Propose has centred the view on the box; --3d shows it as the 3D button does
        if args.three_d:
            widget.show_view('3D')
        print(f'napari-heartbox demo: {widget.status.value}')
        if shot:
            viewer.screenshot(shot, canvas_only=False, flash=False)
            print(f'napari-heartbox demo: screenshot saved to {shot}')
        if exit_after is not None:
            QTimer.singleShot(int(exit_after * 1000), viewer.close)

    worker = widget.propose()
    if worker is None:
        QTimer.singleShot(0, shown)
    else:
        worker.finished.connect(lambda: QTimer.singleShot(200, shown))
    napari.run()
    return 0
