"""The Jupyter notebook runs headless (nbclient, under Xvfb) so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / 'docs' / 'notebooks' / 'heartbox.ipynb'


@pytest.mark.gui
@pytest.mark.slow
def test_notebook_runs(tmp_path):
    nbformat = pytest.importorskip('nbformat')
    nbclient = pytest.importorskip('nbclient')
    if not os.environ.get('DISPLAY'):
        pytest.skip('needs an X display for napari: run under xvfb-run')
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,  # per cell; a hung kernel fails the test instead of stalling CI
        kernel_name='python3',
        resources={'metadata': {'path': str(tmp_path)}},
    )
    client.execute()
    outputs = [
        o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
    ]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = ''.join(
        o.get('text', '') for o in outputs if o.get('output_type') == 'stream'
    )
    assert 'slices of 512x512' in text
    assert 'edited box:' in text and 'corrected: True' in text
    assert 'heart_sector.json corrected' in text
    assert 'box now ((' in text  # the notebook widget's sector, set from Python, observed
    assert [o for o in outputs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    pngs = [o for o in outputs if 'image/png' in o.get('data', {})]
    assert len(pngs) == 2  # the 2D and 3D screenshots
