"""The Jupyter widget end to end: JupyterLab on 127.0.0.1, a notebook, real Chromium, the mouse.

A notebook cell creates a ``SectorWidget`` over a phantom chest CT and logs every change of
``widget.sector`` to a file. In Chromium the test drags the axial view's right edge and asserts
that the Python-side sector moved by the dragged number of voxels. It then sets the sector from
Python (a second client on the same kernel) and asserts that the page drew the box there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip('anywidget', reason='the Jupyter widget needs the jupyter extra (anywidget)')
pytest.importorskip('jupyterlab', reason='the end-to-end test needs jupyterlab (testing extra)')

from benchmarks._browser import CHROMIUM, LAUNCH_ARGS  # noqa: E402

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - playwright is in the testing extra
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(sync_playwright is None, reason='python playwright is not installed'),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f'{CHROMIUM} not found (apt-get install chromium)'),
]

TOKEN = 'heartbox-test-token'
ARTIFACTS = Path(__file__).resolve().parents[1] / 'test-artifacts'
CELL = '''\
import json, pathlib
from napari_heartbox.phantom import make_phantom
from napari_heartbox.jupyter import SectorWidget
case = make_phantom(11, coverage='chest', matrix=(256, 256), fov_mm=380.0, keep_labels=False)
w = SectorWidget(case.volume, case.heart_box)
def log(change, path=pathlib.Path('sector-log.jsonl')):
    with path.open('a') as f:
        f.write(json.dumps(change['new'].to_dict() if change['new'] is not None else None) + '\\n')
w.observe(log, names='sector')
w
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab_server(root: Path, notebook_cell: str | None = CELL):
    """A JupyterLab server on 127.0.0.1 serving ``root`` (config, runtime and settings in it too),
    with ``root/widget.ipynb`` holding ``notebook_cell``; yields its base URL."""
    import urllib.request

    if notebook_cell is not None:
        nb = {
            'cells': [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [],
                       'source': notebook_cell}],
            'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}},
            'nbformat': 4, 'nbformat_minor': 5,
        }
        (root / 'widget.ipynb').write_text(json.dumps(nb))
    env = dict(os.environ)
    for var, sub in (('JUPYTER_CONFIG_DIR', 'cfg'), ('JUPYTER_RUNTIME_DIR', 'runtime'),
                     ('JUPYTERLAB_SETTINGS_DIR', 'settings'), ('JUPYTERLAB_WORKSPACES_DIR', 'ws')):
        env[var] = str(root / sub)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1',
         f'--ServerApp.port={port}', f'--IdentityProvider.token={TOKEN}',
         f'--ServerApp.root_dir={root}', '--LabApp.news_url=', '--ServerApp.port_retries=0', '--allow-root'],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f'{base}/api/status?token={TOKEN}', timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.poll() is not None else ''
                    raise RuntimeError(f'JupyterLab did not start: {out[-2000:]}') from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_kernel(page) -> None:
    """Until the notebook is connected to its kernel: the status bar reads
    "Python 3 (ipykernel) | Idle" (before that: "No Kernel" or "Connecting")."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-Widget')].some("
        "e => /Python 3.*\\|\\s*Idle/.test(e.textContent))",
        timeout=120_000)


@pytest.fixture
def lab(tmp_path):
    with jupyterlab_server(tmp_path) as base:
        yield base, tmp_path


def _kernel_client(base: str, runtime: Path):
    """A second client of the notebook's kernel (its connection file is in the runtime dir)."""
    import urllib.request

    from jupyter_client import BlockingKernelClient

    sessions = json.loads(urllib.request.urlopen(f'{base}/api/sessions?token={TOKEN}').read())
    (session,) = sessions
    kc = BlockingKernelClient(connection_file=str(runtime / f'kernel-{session["kernel"]["id"]}.json'))
    kc.load_connection_file()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return kc


def _last_logged(path: Path):
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else None


def _rect(page, view):
    return [float(v) for v in page.get_attribute(f'canvas[data-view="{view}"]', 'data-rect').split(',')]


def test_drag_a_face_in_chromium_and_set_the_box_from_python(lab):
    base, root = lab
    log = root / 'sector-log.jsonl'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=['--headless', *LAUNCH_ARGS])
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            console = []
            page.on('console', lambda m: console.append(f'{m.type}: {m.text}'))
            try:
                _drive(page, base, root, log)
            except Exception:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / 'jupyter-widget-failure.png'))
                (ARTIFACTS / 'jupyter-widget-console.txt').write_text('\n'.join(console))
                raise
        finally:
            browser.close()


def _drive(page, base, root, log):
    """Open the notebook, run its cell, drag the axial right face, then set the box from Python."""
    page.goto(f'{base}/lab/tree/widget.ipynb?token={TOKEN}', timeout=120_000)
    page.wait_for_selector('.jp-Notebook .jp-Cell .cm-content', timeout=120_000)
    wait_for_kernel(page)  # run the cell once the notebook is connected to its kernel
    page.click('.jp-Notebook .jp-Cell .cm-content')
    page.keyboard.press('Shift+Enter')
    page.wait_for_selector('.heartbox-widget[data-ready="1"] canvas[data-view="axial"][data-rect]',
                           timeout=120_000)
    start = json.loads(page.get_attribute('.heartbox-widget', 'data-box'))
    canvas = page.locator('canvas[data-view="axial"]')
    bb = canvas.bounding_box()
    width_px = int(page.get_attribute('canvas[data-view="axial"]', 'width'))
    css = bb['width'] / width_px  # CSS pixels per canvas pixel
    left, top, right, bottom = _rect(page, 'axial')
    # drag the right face (x1) 30 canvas pixels to the right
    x, y = bb['x'] + right * css, bb['y'] + (top + bottom) / 2 * css
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x + 3 * k * css, y)
    page.mouse.up()
    cols = json.loads(page.get_attribute('.heartbox-widget', 'data-box'))
    n_x = 256
    expected = round((right + 30) * n_x / width_px)
    assert cols[5] == expected and cols[5] > start[5]
    deadline = time.monotonic() + 30
    while (got := _last_logged(log)) is None or got['voxel']['x'][1] != expected:
        assert time.monotonic() < deadline, f'Python-side sector never reached x1={expected}: {got}'
        time.sleep(0.2)
    assert got['voxel']['x'] == [start[4], expected]  # only the dragged face moved
    assert got['voxel']['z'] == start[0:2] and got['voxel']['y'] == start[2:4]
    # set the box from Python: the page redraws it there
    kc = _kernel_client(base, root / 'runtime')
    try:
        reply = kc.execute_interactive('w.sector = w.sector.with_ranges(y=(40, 200))', timeout=60)
        assert reply['content']['status'] == 'ok'
    finally:
        kc.stop_channels()
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('.heartbox-widget').dataset.box)[2] === 40",
        timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)  # what the widget looked like, for a person to check
    page.locator('.heartbox-widget').screenshot(path=str(ARTIFACTS / 'jupyter-widget.png'))
    _, top2, _, bottom2 = _rect(page, 'axial')
    height_px = int(page.get_attribute('canvas[data-view="axial"]', 'height'))
    assert top2 == pytest.approx(40 * height_px / 256, abs=0.01)
    assert bottom2 == pytest.approx(200 * height_px / 256, abs=0.01)
