"""Pure core, thin shell: no core module may import Qt or napari.

Every module of the package except the napari/Qt shell (``_napari``,
``_reader``, ``_writer``, ``_widget``, ``_sample_data``) is imported in a
fresh interpreter, and the test fails if that pulls in napari, Qt or torch.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import napari_heartbox

SHELL = {'_napari', '_reader', '_writer', '_widget', '_sample_data'}
# the torch side (network, export, fine-tuning; the `finetune` extra) is a shell of its own:
# it may import torch, never napari or Qt (test_training_shell_imports_no_gui_stack)
TRAINING = '_training'
# the notebook widget (the `jupyter` extra: anywidget) is a browser shell: no napari, Qt or torch
JUPYTER = 'jupyter'
FORBIDDEN = ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'torch', 'vispy')


def core_modules() -> list[str]:
    names = []
    for m in pkgutil.walk_packages(napari_heartbox.__path__, 'napari_heartbox.'):
        parts = m.name.split('.')
        if any(p in SHELL or p in (TRAINING, JUPYTER) for p in parts[1:]) or parts[-1] == '__main__':
            continue
        names.append(m.name)
    return names


def test_core_modules_import_no_gui_stack():
    mods = core_modules()
    assert 'napari_heartbox.sector' in mods and 'napari_heartbox.volume' in mods
    code = (
        'import importlib, json, sys\n'
        f'for m in {mods!r}: importlib.import_module(m)\n'
        f'bad = sorted(k for k in sys.modules if k.split(".")[0] in {FORBIDDEN!r})\n'
        'print(json.dumps(bad))\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_training_shell_imports_no_gui_stack():
    """The torch side (``napari_heartbox._training``) never pulls in napari or Qt."""
    import pytest

    pytest.importorskip('torch', reason='torch not installed (the finetune extra): torch shell not imported')
    mods = [m.name for m in pkgutil.walk_packages(napari_heartbox.__path__, 'napari_heartbox.')
            if m.name.split('.')[1] == TRAINING]
    assert 'napari_heartbox._training.finetune' in mods
    gui = tuple(f for f in FORBIDDEN if f != 'torch')
    code = (
        'import importlib, json, sys\n'
        f'for m in {mods!r}: importlib.import_module(m)\n'
        f'bad = sorted(k for k in sys.modules if k.split(".")[0] in {gui!r})\n'
        'print(json.dumps(bad))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_jupyter_shell_imports_no_gui_stack():
    """The notebook widget (``napari_heartbox.jupyter``) runs where there is no Qt and no display."""
    import pytest

    pytest.importorskip('anywidget', reason='anywidget not installed (the jupyter extra)')
    code = (
        'import importlib, json, sys\n'
        'importlib.import_module("napari_heartbox.jupyter")\n'
        f'bad = sorted(k for k in sys.modules if k.split(".")[0] in {FORBIDDEN!r})\n'
        'print(json.dumps(bad))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
