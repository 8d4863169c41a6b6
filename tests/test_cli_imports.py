"""The CLI cold path imports no napari, Qt or torch (issue 6 §2-3).

Each command runs in a fresh interpreter through ``napari_heartbox.cli.main``
(what the ``napari-heartbox`` console script calls); afterwards the wrapper
prints the forbidden top-level modules found in ``sys.modules``. A command
that fails (e.g. ``propose`` while no model is bundled) still exercises its
import path, which is what is checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_heartbox.cli import build_parser

FORBIDDEN = (
    'napari',
    'qtpy',
    'PyQt5',
    'PyQt6',
    'PySide2',
    'PySide6',
    'torch',
    'vispy',
    'matplotlib',
)
MARK = '@@heartbox-modules@@'
WRAPPER = f"""
import json, sys
from napari_heartbox.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
bad = sorted({{k.split('.')[0] for k in sys.modules}} & set({FORBIDDEN!r}))
print({MARK!r} + json.dumps({{'rc': rc, 'forbidden': bad}}), file=sys.__stdout__)
"""


def _run_cli(*args) -> dict:
    r = subprocess.run(
        [sys.executable, '-c', WRAPPER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(MARK)]
    assert lines, f'wrapper did not finish: {r.stderr[-2000:]}'
    out = json.loads(lines[-1][len(MARK) :])
    out['stderr'] = r.stderr
    return out


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:  # argparse keeps subparsers here
        if getattr(action, 'choices', None) and isinstance(action.choices, dict):
            return set(action.choices)
    return set()


@pytest.fixture(scope='module')
def small_dicom(tmp_path_factory):
    """A 12-slice 64×64 synthetic CT folder written by the package's writer."""
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.volume import CTVolume

    z, y, x = np.mgrid[0:12, 0:64, 0:64]
    hu = np.where((y - 32) ** 2 + (x - 32) ** 2 < 25**2, 40, -1000).astype(np.int16)
    folder = tmp_path_factory.mktemp('cli_imports') / 'ct'
    write_dicom_series(CTVolume.from_array(hu, spacing=(2.0, 0.8, 0.8)), folder)
    return folder


def test_every_subcommand_is_registered():
    from napari_heartbox.cli import SUBCOMMANDS

    assert _subcommands() == {n.replace('_', '-') for n in SUBCOMMANDS}


def test_help_imports_no_gui_stack():
    out = _run_cli('--help')
    assert out['rc'] == 0
    assert out['forbidden'] == []


@pytest.mark.parametrize('command', ['info', 'propose'])
def test_command_on_a_folder_imports_no_gui_stack(command, small_dicom):
    assert command in _subcommands()
    args = [command, small_dicom] + (['--json'] if command == 'propose' else [])
    out = _run_cli(*args)
    assert 'Traceback' not in out['stderr'], out['stderr'][-2000:]
    assert out['rc'] == 0, out['stderr'][-2000:]
    assert out['forbidden'] == [], f'{command} imported {out["forbidden"]}'


def test_evaluate_imports_no_gui_stack(tmp_path):
    manifest = tmp_path / 'm.json'
    manifest.write_text(
        json.dumps(
            {'cases': [{'id': 'a', 'box_mm': {'min': [0, 0, 0], 'max': [1, 1, 1]}}]}
        )
    )
    preds = tmp_path / 'p.json'
    preds.write_text(
        json.dumps(
            {'a': {'found': True, 'box_mm': {'min': [0, 0, 0], 'max': [1, 1, 2]}}}
        )
    )
    out = _run_cli('evaluate', manifest, '--predictions', preds)
    assert out['rc'] == 0, out['stderr']
    assert out['forbidden'] == []
