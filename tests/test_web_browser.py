"""The exported web app in real (headless, Debian) Chromium, driven by playwright.

Every test serves a freshly exported bundle on 127.0.0.1, uses the pages as a
person would (the first ``input[type=file]`` gets the files), and checks that
no request left 127.0.0.1. Parity with Python: same voxel ranges as
``napari_heartbox.propose`` and patient-mm within 0.01 mm.

Model: the bundled ``napari_heartbox/model/assets/heartbox.onnx`` when it
exists; otherwise a throwaway model with the same I/O contract written to
tmp_path (``test_web_export.write_throwaway_model``), whose Python reference is
onnxruntime + ``sector_from_prob`` on the same ``load_ct`` volume.

Skips with a reason when chromium, playwright or the browser runtime files
(``make web-vendor``) are absent. Screenshots and timings go to
``test-artifacts/`` (gitignored). No timing is asserted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from test_web_export import (
    BUNDLED_CARD,
    BUNDLED_MODEL,
    TEST_POSTPROCESS,
    vendor_available,
    write_throwaway_model,
)

from benchmarks._browser import CHROMIUM, LAUNCH_ARGS
from napari_heartbox.io.dicom_select import SERIES_HINT

# one definition of the Debian chromium binary and its flags (closed network, no sandbox as root)
ARGS = ['--headless', *LAUNCH_ARGS]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / 'test-artifacts'
TIMEOUT_MS = 240_000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - playwright is in the testing extra
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None, reason='python playwright is not installed'
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f'{CHROMIUM} not found (apt-get install chromium)',
    ),
    pytest.mark.skipif(
        not vendor_available(),
        reason='browser runtime files absent: run "make web-vendor"',
    ),
]

USE_BUNDLED = BUNDLED_MODEL.is_file() and BUNDLED_CARD.is_file()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """(onnx, card, postprocess config) used by both the bundle and Python."""
    if USE_BUNDLED:
        card = json.loads(BUNDLED_CARD.read_text())
        return BUNDLED_MODEL, BUNDLED_CARD, card['postprocess']
    onnx_path, card = write_throwaway_model(tmp_path_factory.mktemp('model'))
    return onnx_path, card, TEST_POSTPROCESS


@pytest.fixture(scope='module')
def bundle(tmp_path_factory, model_files):
    from napari_heartbox.web.export import export_web

    onnx_path, card, _ = model_files
    return export_web(
        tmp_path_factory.mktemp('web') / 'bundle', model_path=onnx_path, card_path=card
    ).parent


@pytest.fixture(scope='module')
def base_url(bundle):
    from napari_heartbox.web.serve import make_server

    server = make_server(bundle, 0, quiet=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{server.server_port}/'
    server.shutdown()
    server.server_close()


@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Page:
    """A fresh page that logs every request and every page error."""

    def __init__(self, browser, base_url):
        self.base = base_url
        self.ctx = browser.new_context(accept_downloads=True)
        self.page = self.ctx.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.ctx.on('request', lambda r: self.requests.append(r.url))
        self.page.on('pageerror', lambda e: self.errors.append(str(e)))

    def open(self, name):
        self.page.goto(self.base + name)
        return self.page

    def wait_state(self, states=('done', 'error')):
        sel = ', '.join(f'body[data-state={s}]' for s in states)
        self.page.wait_for_selector(sel, state='attached', timeout=TIMEOUT_MS)
        return self.page.locator('body').get_attribute('data-state')

    def assert_local_only(self):
        assert self.requests, 'no request was logged'
        foreign = [
            u
            for u in self.requests
            if not (u.startswith((self.base, 'data:', 'blob:')))
        ]
        assert not foreign, f'requests left 127.0.0.1: {foreign}'


@pytest.fixture
def web(browser, base_url):
    p = Page(browser, base_url)
    yield p
    p.ctx.close()


def python_sector(path, model_files) -> dict:
    """Python's answer for the same series (the parity reference)."""
    from napari_heartbox.io import load_ct

    onnx_path, _, post = model_files
    volume = load_ct(path)
    if USE_BUNDLED:
        from napari_heartbox import propose

        return propose(volume).to_dict()
    import onnxruntime as ort

    from napari_heartbox.model.postprocess import sector_from_prob

    sess = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    prob = np.concatenate(
        [
            sess.run(None, {'hu': volume.hu[i : i + 32]})[0]
            for i in range(0, volume.shape[0], 32)
        ]
    )
    sha = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
    return sector_from_prob(
        prob, volume.grid, post, series_uid=volume.series_uid, model_sha256=sha
    ).to_dict()


def run_main_page(web, files) -> tuple[dict, dict]:
    page = web.open('index.html')
    page.locator('input[type=file]').first.set_input_files([str(f) for f in files])
    state = web.wait_state()
    status = page.locator('#status').inner_text()
    assert state == 'done', status
    sector = json.loads(page.locator('#sector-json').inner_text())
    extra = json.loads(page.locator('#timings-json').text_content())
    return sector, extra


def assert_same_sector(web_sector: dict, py: dict):
    for key in ('schema', 'found', 'voxel', 'shape', 'series_uid', 'model_sha256'):
        assert web_sector[key] == py[key], key
    assert web_sector['spacing_mm'] == pytest.approx(py['spacing_mm'], abs=1e-6)
    assert np.allclose(web_sector['affine_lps'], py['affine_lps'], atol=1e-5)
    assert web_sector['confidence'] == pytest.approx(py['confidence'], abs=1e-3)
    if py['found']:
        for k in ('min', 'max'):
            assert np.allclose(
                web_sector['patient_mm'][k], py['patient_mm'][k], atol=0.01
            ), k
    else:
        assert web_sector['patient_mm'] is None


def save_artifact(name, data):
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(data, indent=2))


def dicom_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob('*') if p.is_file() and p.suffix.lower() != '.json'
    )


# ------------------------------------------------------------ synthetic data
def _write_series(volume, folder, **kw):
    from napari_heartbox.io import write_dicom_series

    write_dicom_series(volume, folder, **kw)
    return folder


def _blob_volume(nz, heart: bool):
    """Body ellipse in air with (optionally) a bright 'heart' blob: input for the throwaway model."""
    from napari_heartbox.volume import CTVolume

    zz, yy, xx = np.ogrid[0:nz, 0:512, 0:512]
    hu = np.full((nz, 512, 512), -1000, np.int16)
    body = ((xx - 256) / 200.0) ** 2 + ((yy - 256) / 150.0) ** 2 < 1
    hu[np.broadcast_to(body, hu.shape)] = 40
    if heart:
        blob = ((xx - 290) / 60.0) ** 2 + ((yy - 230) / 50.0) ** 2 + (
            (zz - nz * 0.55) / (nz * 0.15)
        ) ** 2 < 1
        hu[blob] = 250
    return CTVolume.from_array(
        hu, spacing=(0.5, 0.7, 0.7), origin_lps=(-180.0, -170.0, -400.0)
    )


@pytest.fixture(scope='module')
def chest_700(tmp_path_factory):
    """A 700-slice 512² synthetic chest CT, written as DICOM with shuffled names."""
    if USE_BUNDLED:
        from napari_heartbox.phantom import make_phantom

        vol = make_phantom(
            3,
            matrix=(512, 512),
            n_slices=700,
            slice_spacing_mm=0.5,
            coverage='chest',
            keep_labels=False,
        ).volume
    else:
        vol = _blob_volume(700, heart=True)
    return _write_series(vol, tmp_path_factory.mktemp('chest700'), shuffle_names=True)


@pytest.fixture(scope='module')
def heart_free(tmp_path_factory):
    """A heart-free series (abdomen phantom; a plain body for the throwaway model)."""
    if USE_BUNDLED:
        from napari_heartbox.phantom import make_phantom

        vol = make_phantom(
            4, matrix=(512, 512), n_slices=80, coverage='abdomen', keep_labels=False
        ).volume
    else:
        vol = _blob_volume(80, heart=False)
    return _write_series(
        vol, tmp_path_factory.mktemp('noheart'), transfer_syntax='implicit'
    )


@pytest.fixture(scope='module')
def small_series(tmp_path_factory):
    """A 48-slice series with unsigned storage, slope 0.5 and implicit VR."""
    vol = _blob_volume(48, heart=True)
    return _write_series(
        vol,
        tmp_path_factory.mktemp('small'),
        unsigned=True,
        slope=0.5,
        intercept=-1024.0,
        transfer_syntax='implicit',
        shuffle_names=True,
    )


@pytest.fixture(scope='module')
def tiny_series(tmp_path_factory):
    """8 slices (4 MB): small enough to hand to the page as bytes for a drop."""
    return _write_series(
        _blob_volume(8, heart=True), tmp_path_factory.mktemp('tiny'), shuffle_names=True
    )


# ------------------------------------------------------------------- tests
@pytest.mark.slow
def test_main_page_matches_python_on_700_slices(web, chest_700, model_files):
    files = dicom_files(chest_700)
    assert len(files) == 700
    sector, extra = run_main_page(web, files)
    py = python_sector(chest_700, model_files)
    assert py['found'], (
        'the synthetic chest must contain a heart for this test to mean anything'
    )
    assert_same_sector(sector, py)
    assert sector['shape'] == [700, 512, 512]
    save_artifact(
        'web-timings-700.json',
        {'model': 'bundled' if USE_BUNDLED else 'throwaway', **extra},
    )
    web.page.screenshot(path=str(ARTIFACTS / 'web-main-700.png'), full_page=True)
    web.assert_local_only()
    assert not web.errors


@pytest.mark.realdata
def test_main_page_matches_python_on_real_cptac(web, shared_data, model_files):
    folder = shared_data / 'ct' / 'cptac-lscc-c3n-00247'
    if not folder.is_dir():
        pytest.skip(f'{folder} not found')
    files = dicom_files(folder / 'dicom')
    sector, extra = run_main_page(web, files)
    py = python_sector(folder / 'dicom', model_files)
    assert_same_sector(sector, py)
    assert sector['shape'][0] == 99
    save_artifact('web-timings-cptac.json', extra)
    web.page.screenshot(path=str(ARTIFACTS / 'web-main-cptac.png'), full_page=True)
    web.assert_local_only()


def test_heart_free_series_is_found_false_in_both(web, heart_free, model_files):
    sector, _ = run_main_page(web, dicom_files(heart_free))
    py = python_sector(heart_free, model_files)
    assert py['found'] is False
    assert sector['found'] is False
    assert_same_sector(sector, py)
    assert 'No heart in view' in web.page.locator('#status').inner_text()
    web.assert_local_only()


def test_unsigned_slope_implicit_series_matches_python(web, small_series, model_files):
    sector, _ = run_main_page(web, dicom_files(small_series))
    assert_same_sector(sector, python_sector(small_series, model_files))


def test_two_pass_read_of_a_large_series_gives_the_same_sector(web, small_series, model_files):
    """Series over the whole-read budget are read header-first, then pixels by chunk:
    forcing that path (budget 0) must not change the answer."""
    page = web.open('index.html')
    page.evaluate(
        "() => { const i = document.createElement('input'); i.type = 'file';"
        " i.multiple = true; i.id = 'two-pass'; document.body.append(i); }"
    )
    page.locator('#two-pass').set_input_files([str(f) for f in dicom_files(small_series)])
    results = page.evaluate(
        """async () => {
            const { HeartboxWorker } = await import('./heartbox.js');
            const files = Array.from(document.getElementById('two-pass').files);
            const w = new HeartboxWorker();
            const two = await w.run(files, { wholeReadBytes: 0, chunkSlices: 5 });
            const one = await w.run(files);
            w.terminate();
            return [two.sector, one.sector];
        }"""
    )
    py = python_sector(small_series, model_files)
    for sector in results:
        assert_same_sector(sector, py)
    web.assert_local_only()


def _variant_series(folder: Path, variant: str) -> Path:
    """A 16-slice series with one loader situation (gap, duplicate, extra series...)."""
    vol = _blob_volume(16, heart=True)
    if variant == 'flipped':
        # rows run right->left and columns anterior<-posterior: Python flips both axes
        _write_series(
            vol, folder, image_orientation=(-1, 0, 0, 0, -1, 0), shuffle_names=True
        )
        return folder
    from napari_heartbox.io import write_dicom_series

    written = write_dicom_series(vol, folder, shuffle_names=True)
    if variant == 'gap':
        written[7].unlink()
    elif variant == 'duplicate':
        shutil.copyfile(written[5], folder / 'zz-copy.dcm')
    elif variant == 'two_series':
        from napari_heartbox.volume import CTVolume

        other = CTVolume.from_array(vol.hu[:6], spacing=(2.0, 0.7, 0.7))
        _write_series(
            other, folder, seed=9, file_prefix='b', series_description='Other'
        )
    elif variant == 'localizer_and_text':
        from napari_heartbox.volume import CTVolume

        scout = CTVolume.from_array(vol.hu[:1], spacing=(1.0, 0.7, 0.7))
        _write_series(
            scout,
            folder,
            seed=5,
            file_prefix='scout',
            image_type=('ORIGINAL', 'PRIMARY', 'LOCALIZER'),
        )
        (folder / 'readme.txt').write_text('not an image')
    return folder


@pytest.mark.parametrize(
    'variant', ['gap', 'duplicate', 'two_series', 'localizer_and_text', 'flipped']
)
def test_loader_situations_match_python(web, tmp_path, variant, model_files):
    """Series selection, sorting, gap filling, flips and warnings as in Python's load_ct."""
    from napari_heartbox.io import load_ct

    folder = _variant_series(tmp_path / variant, variant)
    sector, extra = run_main_page(web, dicom_files(folder))
    py_vol = load_ct(folder)
    assert sector['shape'] == list(py_vol.shape)
    assert np.allclose(sector['affine_lps'], py_vol.grid.matrix, atol=1e-5)
    assert sector['spacing_mm'] == pytest.approx(list(py_vol.spacing), abs=1e-6)
    py_warn = [
        w.replace(
            f'({SERIES_HINT})', '(the browser app loads the largest)'
        )
        for w in py_vol.warnings
    ]
    assert extra['warnings'] == py_warn
    if variant != 'flipped':
        assert py_vol.warnings, 'this situation must produce a warning'
    assert_same_sector(sector, python_sector(folder, model_files))


def test_host_page_api_and_event(web, small_series, model_files):
    page = web.open('example-host.html')
    page.locator('input[type=file]').first.set_input_files(
        [str(f) for f in dicom_files(small_series)]
    )
    assert web.wait_state() == 'done', page.locator('#host-status').inner_text()
    from_api = json.loads(page.locator('#api-result').inner_text())
    from_event = json.loads(page.locator('#event-result').inner_text())
    assert from_api == from_event
    assert_same_sector(from_api, python_sector(small_series, model_files))
    if from_api['found']:
        z = from_api['voxel']['z']
        assert page.locator('#heart_z').input_value() == f'{z[0]},{z[1]}'
    web.assert_local_only()


def test_non_dicom_files_give_a_clear_message(web, tmp_path):
    a = tmp_path / 'notes.txt'
    a.write_text('not a scan')
    b = tmp_path / 'photo.png'
    b.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(200))
    page = web.open('index.html')
    page.locator('input[type=file]').first.set_input_files([str(a), str(b)])
    assert web.wait_state() == 'error'
    msg = page.locator('#status').inner_text()
    assert 'None of the 2 selected files is a DICOM file' in msg and 'notes.txt' in msg
    assert page.locator('#sector-json').inner_text() == ''
    web.assert_local_only()


def test_a_new_selection_clears_the_previous_result_and_an_error_shows_alone(
    web, small_series, tmp_path
):
    """Issue 19: after a series with a box, a folder of non-DICOM files leaves no trace of
    the previous patient's previews, numbers, timings or JSON; a fresh page shows no empty
    canvases or headings either."""
    page = web.open('index.html')
    assert page.locator('#views').is_hidden() and page.locator('#results').is_hidden()
    run_main_page(web, dicom_files(small_series))
    assert page.locator('#views').is_visible() and page.locator('#results').is_visible()
    assert page.locator('#numbers tr').count() > 0
    junk = tmp_path / 'notes.txt'
    junk.write_text('not a scan')
    page.locator('input[type=file]').first.set_input_files([str(junk)])
    assert web.wait_state(('error',)) == 'error'  # not the 'done' of the previous run
    assert page.locator('#views').is_hidden() and page.locator('#results').is_hidden()
    assert page.locator('#numbers tr').count() == 0 and page.locator('#timings tr').count() == 0
    assert page.locator('#sector-json').text_content() == ''
    assert page.locator('#copy').is_disabled() and page.locator('#download').is_disabled()
    blank = page.evaluate(
        """() => ['view-axial', 'view-coronal', 'view-sagittal'].every((id) => {
             const c = document.getElementById(id);
             return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every((v) => v === 0);
           })"""
    )
    assert blank  # the previous previews are wiped, not just hidden


def test_a_worker_cannot_reach_another_origin(web, bundle):
    """Issue 18: the page's <meta> CSP does not govern workers; the server's CSP header
    does. A worker of this origin that tries a fetch and a WebSocket to 127.0.0.2 is
    blocked by the policy (a CSP violation, not merely a refused connection)."""
    (bundle / 'csp-probe.js').write_text(
        """
const seen = [];
self.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
async function probe() {
  let fetched = 'no error';
  try { await fetch('http://127.0.0.2:9/leak'); } catch (e) { fetched = String(e); }
  let ws = 'opened';
  try { new WebSocket('ws://127.0.0.2:9/leak'); } catch (e) { ws = String(e); }
  await new Promise((r) => setTimeout(r, 200));
  self.postMessage({ fetched, ws, seen });
}
probe();
"""
    )
    page = web.open('index.html')
    result = page.evaluate(
        """() => new Promise((resolve) => {
             const w = new Worker('csp-probe.js');
             w.onmessage = (e) => { resolve(e.data); w.terminate(); };
           })"""
    )
    assert result['fetched'] != 'no error'
    assert any(d.startswith('connect-src') for d in result['seen']), result
    assert not [u for u in web.requests if '127.0.0.2' in u]  # never left the page


def test_empty_selection_gives_a_clear_message(web, tmp_path):
    page = web.open('index.html')
    f = tmp_path / 'x.txt'
    f.write_text('x')
    inp = page.locator('input[type=file]').first
    inp.set_input_files([str(f)])
    web.wait_state()
    inp.set_input_files([])  # the person cancels / clears the selection
    page.wait_for_selector('#status:has-text("No files selected")', timeout=TIMEOUT_MS)
    assert page.locator('body').get_attribute('data-state') == 'error'


def test_postprocess_port_matches_python(web, model_files):
    """postprocess.js on the same prob arrays as napari_heartbox.model.postprocess."""
    from napari_heartbox.grid import Grid
    from napari_heartbox.model.postprocess import sector_from_prob

    _, _, post = model_files
    page = web.open('index.html')
    rng = np.random.default_rng(0)
    cases = []
    for i in range(12):
        nz = int(rng.integers(3, 40))
        h, w = [(512, 512), (500, 600), (768, 768), (333, 1024)][i % 4]
        zz, rr, cc = np.ogrid[0:nz, 0:64, 0:64]
        prob = rng.random((nz, 64, 64), dtype=np.float32) * 0.3
        for _ in range(int(rng.integers(0, 4))):  # blobs of various sizes
            cz, cr, ccol = rng.integers(0, nz), rng.integers(0, 64), rng.integers(0, 64)
            rad = rng.uniform(1, 14)
            d = (
                ((zz - cz) / max(rad / 3, 0.5)) ** 2
                + ((rr - cr) / rad) ** 2
                + ((cc - ccol) / rad) ** 2
            )
            prob = np.maximum(prob, np.clip(1.2 - 0.5 * d, 0, 1).astype(np.float32))
        spacing = (
            float(rng.uniform(0.5, 5)),
            float(rng.uniform(0.3, 1)),
            float(rng.uniform(0.3, 1)),
        )
        margin = [None, 0.0, 7.5][i % 3]
        grid = Grid.axis_aligned((nz, h, w), spacing)
        py = sector_from_prob(prob, grid, post, margin_mm=margin)
        cases.append((prob, (nz, h, w), spacing, margin, py))
    for i, (gap, dz, r1) in enumerate([(2, 2.5, 38), (5, 2.5, 38), (3, 5.0, 38), (12, 2.5, 38),
                                       (3, 2.5, 44)]):
        # a heart split along z by a less certain slab (re-joined when the gap
        # is within the card's join_gap_mm and the piece's rows and columns lie
        # inside the heart's: rows up to r1 = 44 reach past them), plus a large
        # blob far above it
        prob = rng.random((90, 64, 64), dtype=np.float32) * 0.5
        prob[10:30, 20:40, 20:42] = 0.95
        prob[30 + gap : 42 + gap, 22:r1, 24:40] = 0.9
        prob[75:88, 18:40, 20:40] = 0.99
        spacing = (dz, 0.7, 0.7)
        margin = [None, 0.0][i % 2] if i < 4 else 0.0
        grid = Grid.axis_aligned((90, 512, 512), spacing)
        py = sector_from_prob(prob, grid, post, margin_mm=margin)
        cases.append((prob, (90, 512, 512), spacing, margin, py))
    # a scan too short along z for a heart box (8 mm), with a certain heart in it: no box, a note
    prob = np.full((4, 64, 64), 0.01, np.float32)
    prob[:, 20:40, 20:40] = 0.99
    py = sector_from_prob(prob, Grid.axis_aligned((4, 512, 512), (2.0, 0.7, 0.7)), post)
    assert not py.found and '8 mm along z (4 slices)' in py.note
    cases.append((prob, (4, 512, 512), (2.0, 0.7, 0.7), None, py))
    got = page.evaluate(
        """async ([cases, post]) => {
            const { sectorFromProb } = await import('./postprocess.js');
            return cases.map(([b64, shape, spacing, margin]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const prob = new Float32Array(bytes.buffer);
                return sectorFromProb(prob, shape, spacing, post, margin === null ? undefined : margin);
            });
        }""",
        [
            [
                [base64.b64encode(p.tobytes()).decode(), list(s), list(sp), m]
                for p, s, sp, m, _ in cases
            ],
            post,
        ],
    )
    n_found = 0
    for (_, _, _, _, py), js in zip(cases, got, strict=True):
        assert js['found'] == py.found
        assert js.get('note') == py.note
        assert js['confidence'] == pytest.approx(py.confidence, abs=1e-9)
        if py.found:
            n_found += 1
            assert [js['z'], js['y'], js['x']] == [list(py.z), list(py.y), list(py.x)]
    assert 3 <= n_found < len(cases)  # both outcomes are exercised
    split = [py for *_, py in cases[-6:-1]]
    if post.get('join_fraction') is not None:  # every outcome of the re-join is exercised
        assert {tuple(py.z) for py in split[:4]} & {(10, 44), (10, 47)}  # joined
        assert tuple(split[3].z) == (10, 30)  # gap too wide
        assert tuple(split[4].z) == (10, 30)  # reaches past the heart's rows


@pytest.mark.parametrize('fine_mm', [None, 1.5])
def test_slice_schedule_port_scores_the_same_slices_as_python(web, fine_mm):
    """zschedule.js, streaming chunk by chunk, scores exactly the slices that
    napari_heartbox.model.zschedule picks, each with the same z-context rows,
    and fills the same stack (with and without the fine-grid refinement)."""
    from napari_heartbox.model.zschedule import (
        context_offset,
        context_rows,
        fine_step,
        refine_reach,
        scheduled_prob,
        z_step,
    )

    page = web.open('index.html')
    rng = np.random.default_rng(1)
    cfg = {'threshold': 0.5, 'z_step_mm': 4.0, 'z_refine_mm': 12.0, 'z_context_mm': 8.0}
    if fine_mm:
        cfg['z_fine_mm'] = fine_mm
    cases = []
    for i in range(12):
        nz = int(rng.integers(20, 300))
        dz = float(rng.choice([0.43, 0.5, 0.625, 0.8, 1.0, 1.25, 3.0]))
        pos = np.zeros(nz, bool)  # a heart run + stray positive slices
        a = int(rng.integers(0, nz // 2))
        pos[a : a + int(rng.integers(1, nz // 2))] = True
        pos[rng.integers(0, nz, size=int(rng.integers(0, 4)))] = True
        prob = np.zeros((nz, 64, 64), np.float32)
        prob[pos, 10 + i, 20] = 0.9  # positive slices have one positive cell
        prob[:, 0, 0] = np.arange(nz, dtype=np.float32)  # slice id, to check the fill
        prob[:, 0, 0] /= 1e4
        ran_calls = []

        def run(idx, prob=prob, ran_calls=ran_calls):
            ran_calls.append(np.asarray(idx))
            return prob[idx]

        filled, ran = scheduled_prob(run, nz, dz, 60, 64, cfg)
        chunk = [7, 32, 1, 64][i % 4]
        cases.append((prob, nz, dz, chunk, filled, ran))
    got = page.evaluate(
        """async ([cases, cfg]) => {
            const { SliceScheduler } = await import('./zschedule.js');
            const out = [];
            for (const [b64, nz, dz, chunk] of cases) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const prob = new Float32Array(bytes.buffer);
                const H = 4, W = 4, G2 = 64 * 64;  // tiny slices: pixel 0 holds the slice index
                const scored = [];
                const score = async (data, n, context, m) => {
                    const p = new Float32Array(m * G2);
                    for (let i = 0; i < m; i++) {
                        const [lo, z, hi] = [0, 1, 2].map((j) => data[Number(context[i * 3 + j]) * H * W]);
                        scored.push([z, lo, hi]);
                        p.set(prob.subarray(z * G2, (z + 1) * G2), i * G2);
                    }
                    return p;
                };
                const s = new SliceScheduler([nz, 256, 256], dz, cfg, score, 5);
                s.H = H; s.W = W;  // validCells come from 256x256 (60 valid rows are not used here)
                s.rowsValid = 60; s.colsValid = 64;
                let maxKept = 0;  // slices held in memory after a push
                for (let z0 = 0; z0 < nz; z0 += chunk) {
                    const n = Math.min(chunk, nz - z0);
                    const data = new Int16Array(n * H * W);
                    for (let k = 0; k < n; k++) data[k * H * W] = z0 + k;
                    await s.push(z0, n, data);
                    maxKept = Math.max(maxKept, s.history.reduce((m, c) => m + c.n, 0));
                }
                const { prob: filled, slicesRun } = s.finish();
                const ids = Array.from({ length: nz }, (_, z) => Math.round(filled[z * G2] * 1e4));
                out.push({ scored: scored.sort((a, b) => a[0] - b[0]), slicesRun, ids, maxKept });
            }
            return out;
        }""",
        [[[base64.b64encode(p.tobytes()).decode(), nz, dz, ch] for p, nz, dz, ch, _, _ in cases], cfg],
    )
    n_refined = n_fine = 0
    for (_, nz, dz, chunk, filled, ran), js in zip(cases, got, strict=True):
        k, step = context_offset(dz, cfg), z_step(dz, cfg)
        rows = context_rows(ran, nz, k)
        assert js['scored'] == rows[:, [1, 0, 2]].tolist()  # each slice once, the same set and context
        assert js['slicesRun'] == ran.size
        assert js['ids'] == np.rint(filled[:, 0, 0] * 1e4).astype(int).tolist()
        n_refined += ran.size < nz
        n_fine += fine_step(dz, cfg) > 1
        # memory stays bounded: what later scoring can still read, plus the chunk that holds it
        bound = 2 * k + 2 * step + refine_reach(dz, cfg) + fine_step(dz, cfg) + chunk
        assert js['maxKept'] <= min(nz, bound), (nz, dz, chunk, js['maxKept'], bound)
    assert n_refined >= 4  # the schedule skipped slices in most cases
    assert n_fine >= (3 if fine_mm else 0)  # the fine grid and the final step were exercised


def test_speed_page_completes_and_plots(web):
    page = web.open('speed.html?size=512&batches=2,4,8&reps=1&auto=1')
    state = web.wait_state()
    assert state == 'done', page.locator('#status').inner_text()
    # one uPlot chart per metric, each with a drawn canvas
    assert page.locator('#chart-batch canvas').count() >= 1
    assert page.locator('#chart-frame canvas').count() >= 1
    rows = page.locator('#results tbody tr')
    isolated = 'single thread only' not in page.locator('#status').inner_text()
    assert rows.count() == 3 * (2 if isolated else 1)
    with page.expect_download() as dl:
        page.locator('#download').click()
    path = dl.value.path()
    results = json.loads(Path(path).read_text())
    assert results['schema'] == 'heartbox.speed/1'
    assert [p['batch'] for p in results['runs'][0]['points']] == [2, 4, 8]
    for run in results['runs']:
        for p in run['points']:
            assert 'error' not in p, p
            assert p['ms_per_batch'] > 0 and p['ms_per_frame'] == pytest.approx(
                p['ms_per_batch'] / p['batch']
            )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'web-speed-page.png'), full_page=True)
    shutil.copyfile(path, ARTIFACTS / 'web-speed-results.json')
    web.assert_local_only()


# text extent of each element (a Range over its contents, not the cell/box around it)
_TEXT_BOXES = """(els) => els.map((e) => {
  const r = document.createRange(); r.selectNodeContents(e);
  const b = r.getBoundingClientRect();
  return {text: e.textContent.trim(), x0: b.left, x1: b.right, y0: b.top, y1: b.bottom};
})"""

# the border box of each element (a label with its control)
_BOXES = """(els) => els.map((e) => {
  const b = e.getBoundingClientRect();
  return {text: e.textContent.trim(), x0: b.left, x1: b.right, y0: b.top, y1: b.bottom};
})"""


def _assert_apart(boxes, gap=8.0):
    """Consecutive boxes on one line leave >= gap px; boxes never overlap."""
    for a, b in zip(boxes, boxes[1:], strict=False):
        if min(a['y1'], b['y1']) - max(a['y0'], b['y0']) > 2:  # same line
            assert b['x0'] - a['x1'] >= gap, (a, b)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_x = min(a['x1'], b['x1']) - max(a['x0'], b['x0'])
            overlap_y = min(a['y1'], b['y1']) - max(a['y0'], b['y0'])
            assert overlap_x <= 0 or overlap_y <= 0, (a, b)


def test_speed_page_results_hidden_until_a_row_and_headings_apart(web):
    """No empty, header-only table before a run; readable, separate headings after."""
    page = web.open('speed.html')
    page.wait_for_selector('body[data-state=idle]', state='attached')
    page.wait_for_timeout(300)  # the module script has run
    for sel in ('#results-card', '#results', '#results th', '#charts'):
        assert not page.locator(sel).first.is_visible(), sel
    assert page.locator('#results tbody tr').count() == 0
    # the controls are spaced apart, not glued to the next label
    controls = page.locator('#controls > label, #controls > button')
    _assert_apart(controls.evaluate_all(_BOXES))

    # a run that fails before any point: the error shows alone
    page = web.open('speed.html?size=64&batches=2&reps=1&model=missing.onnx&auto=1')
    assert web.wait_state() == 'error'
    assert not page.locator('#results-card').is_visible()

    # the smallest run: one batch size, one repeat, 64^2 slices
    page = web.open('speed.html?size=64&batches=2&reps=1&auto=1')
    assert web.wait_state() == 'done', page.locator('#status').inner_text()
    isolated = 'single thread only' not in page.locator('#status').inner_text()
    for sel in ('#results-card', '#results', '#charts', '#chart-batch canvas'):
        assert page.locator(sel).first.is_visible(), sel
    assert page.locator('#charts canvas').count() >= 2
    rows = page.locator('#results tbody tr')
    assert rows.count() == (2 if isolated else 1)
    assert rows.first.locator('td').nth(1).inner_text() == '2'
    # column headers: separate words with room between them, not "threadsbatchms / batch"
    th = page.locator('#results thead th').evaluate_all(_TEXT_BOXES)
    assert [b['text'] for b in th] == ['threads', 'batch', 'ms / batch', 'ms / frame']
    _assert_apart(th)
    # headings (card, chart titles) and the table one under the other, none overlapping
    blocks = page.locator(
        '#results-card h2, #results-card .u-title, #results-card .u-legend, #results'
    ).evaluate_all(_TEXT_BOXES)
    assert len(blocks) >= 6, blocks
    _assert_apart(blocks)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'web-speed-page-small.png'), full_page=True)
    web.assert_local_only()


def test_folder_picker_and_drag_and_drop(web, tiny_series, model_files):
    """The directory input and a drop of files give the same sector as Python."""
    py = python_sector(tiny_series, model_files)
    page = web.open('index.html')
    page.locator('#folder').set_input_files(str(tiny_series))
    assert web.wait_state() == 'done', page.locator('#status').inner_text()
    assert_same_sector(json.loads(page.locator('#sector-json').inner_text()), py)

    page = web.open('index.html')
    files = dicom_files(tiny_series)
    payload = [[f.name, base64.b64encode(f.read_bytes()).decode()] for f in files]
    dt = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name));
            }
            return dt;
        }""",
        payload,
    )
    page.locator('#drop').dispatch_event('drop', {'dataTransfer': dt})
    assert web.wait_state() == 'done', page.locator('#status').inner_text()
    assert_same_sector(json.loads(page.locator('#sector-json').inner_text()), py)
    # Download JSON gives the same object
    with page.expect_download() as dl:
        page.locator('#download').click()
    assert json.loads(Path(dl.value.path()).read_text()) == json.loads(
        page.locator('#sector-json').inner_text()
    )
    assert dl.value.suggested_filename == 'heartbox-sector.json'  # no UID in the name (issue 18)
    web.assert_local_only()


def test_app_in_an_iframe_posts_the_sector_to_its_parent(web, tiny_series, model_files):
    page = web.open('example-host.html')
    page.evaluate(
        """() => {
            window.addEventListener('message', (e) => {
                if (e.data && e.data.type === 'heartbox:sector' && e.origin === location.origin) {
                    const pre = document.createElement('pre');
                    pre.id = 'from-iframe';
                    pre.textContent = JSON.stringify(e.data.sector);
                    document.body.append(pre);
                }
            });
            const f = document.createElement('iframe');
            f.src = 'index.html';
            f.width = 800; f.height = 600;
            document.body.append(f);
        }"""
    )
    frame = page.frame_locator('iframe')
    frame.locator('input[type=file]').first.set_input_files(
        [str(f) for f in dicom_files(tiny_series)]
    )
    page.wait_for_selector('#from-iframe', state='attached', timeout=TIMEOUT_MS)
    posted = json.loads(page.locator('#from-iframe').text_content())
    assert_same_sector(posted, python_sector(tiny_series, model_files))
    web.assert_local_only()


@pytest.mark.parametrize(
    'pixel_rep,bits,slope,intercept',
    [
        (1, 16, 1.0, -1024.0),  # signed, random bits: some values overflow and clip
        (1, 16, 1.0, 24.0),  # signed, CT-like values (set below): the SWAR fast path
        (1, 16, 1.0, -32000.0),  # overflow: must clip like Python
        (0, 12, 1.0, -1024.0),  # unsigned 12-bit with garbage in the high bits (masked)
        (0, 16, 1.0, -1024.0),  # unsigned 16-bit (scalar path)
        (1, 12, 1.0, 0.0),  # signed 12-bit: sign extension
        (0, 16, 0.5, -1024.25),  # float slope/intercept: float32 + round-half-even
        (1, 16, 2.0, 30000.0),  # float path with clipping at +32767
    ],
)
def test_hu_conversion_is_bit_identical_to_python(
    web, pixel_rep, bits, slope, intercept
):
    from napari_heartbox.io.dicom_headers import SliceHeader
    from napari_heartbox.io.dicom_pixels import _Clip, stored_to_hu_inplace

    rng = np.random.default_rng(bits + pixel_rep)
    rows, cols = 37, 61  # odd size: exercises the last-element path
    raw = rng.integers(0, 65536, size=(rows, cols), dtype=np.uint16)
    if intercept == 24.0:
        raw = (
            rng.integers(-1024, 3000, size=(rows, cols))
            .astype(np.int16)
            .view(np.uint16)
        )
    else:
        raw[0, :8] = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 2049, 4095, 4096]
    expect = raw.view(np.int16).copy()
    h = SliceHeader(
        path=Path('x.dcm'),
        bits_stored=bits,
        pixel_rep=pixel_rep,
        slope=slope,
        intercept=intercept,
        rows=rows,
        cols=cols,
    )
    clip = _Clip()
    stored_to_hu_inplace(expect, h, clip)
    page = web.open('index.html')
    got = page.evaluate(
        """async ([b64, rec]) => {
            const { sliceToHU } = await import('./dicom.js');
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const r = { ...rec, name: 'x.dcm', buffer: bytes.buffer, transferSyntax: '1.2.840.10008.1.2.1',
                        pixel: { offset: 0, length: bytes.length } };
            const out = new Int16Array(rec.rows * rec.cols);
            const clipped = sliceToHU(r, out);
            // the lazy path (stored values kept, HU on demand) for every in-plane orientation
            const { lazySlice, storedValues } = await import('./dicom.js');
            const lazy = [];
            for (const [transpose, flipY, flipX] of [[false, false, false], [false, true, true], [true, false, true], [true, true, false]]) {
                const orient = { transpose, flipY, flipX };
                const s = lazySlice(r, storedValues(r), orient);
                const o = new Int16Array(rec.rows * rec.cols);
                const c = s.hu(o);
                const [h, w] = transpose ? [rec.cols, rec.rows] : [rec.rows, rec.cols];
                const at = new Int16Array(h * w);
                s.previewInto(at, 0, h, w, 1);  // stride 1: every voxel
                const pv = new Int16Array(2 + Math.ceil(h / 3) * Math.ceil(w / 3));  // stride 3, offset 2
                s.previewInto(pv, 2, Math.ceil(h / 3), Math.ceil(w / 3), 3);
                lazy.push({ orient: [transpose, flipY, flipX], hu: Array.from(o), at: Array.from(at), clipped: c, pv: Array.from(pv.subarray(2)) });
            }
            return { hu: Array.from(out), clipped, lazy };
        }""",
        [
            base64.b64encode(raw.tobytes()).decode(),
            {
                'rows': rows,
                'cols': cols,
                'bitsStored': bits,
                'pixelRepresentation': pixel_rep,
                'slope': slope,
                'intercept': intercept,
            },
        ],
    )
    assert np.array_equal(np.array(got['hu'], np.int16).reshape(rows, cols), expect)
    assert got['clipped'] == bool(clip.n)
    for lz in got['lazy']:
        transpose, flip_y, flip_x = lz['orient']
        want = expect.T if transpose else expect
        want = want[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
        assert np.array_equal(np.array(lz['hu'], np.int16).reshape(want.shape), want)
        assert np.array_equal(np.array(lz['at'], np.int16).reshape(want.shape), want)
        assert np.array_equal(np.array(lz['pv'], np.int16).reshape(want[::3, ::3].shape), want[::3, ::3])
        assert lz['clipped'] == bool(clip.n)


def test_api_accepts_a_volume(web, tiny_series, model_files):
    """findHeartSector({hu, shape, spacing, affine, seriesUid}) == Python on the same volume."""
    from napari_heartbox.io import load_ct

    vol = load_ct(tiny_series)
    page = web.open('example-host.html')
    got = page.evaluate(
        """async ([b64, shape, spacing, affine, uid]) => {
            const { findHeartSector } = await import('./heartbox.js');
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const hu = new Int16Array(bytes.buffer);
            const moved = new Int16Array(hu);  // a copy, handed over with transfer: true
            const viaTransfer = await findHeartSector({ hu: moved, shape, spacing, affine, seriesUid: uid },
                                                      { transfer: true });
            const sector = await findHeartSector({ hu, shape, spacing, affine, seriesUid: uid });
            return { sector, viaTransfer, movedLength: moved.length, keptLength: hu.length };
        }""",
        [
            base64.b64encode(vol.hu.tobytes()).decode(),
            list(vol.shape),
            list(vol.spacing),
            vol.grid.matrix.tolist(),
            vol.series_uid,
        ],
    )
    assert_same_sector(got['sector'], python_sector(tiny_series, model_files))
    assert got['viaTransfer'] == got['sector']
    assert got['movedLength'] == 0 and got['keptLength'] == vol.hu.size  # moved vs copied
    # the event reached the page too
    page.wait_for_selector(
        '#event-result:not(:empty)', state='attached', timeout=TIMEOUT_MS
    )
    assert json.loads(page.locator('#event-result').inner_text()) == got['sector']


@pytest.mark.slow
def test_finetuned_bundle_gives_the_python_box(browser, tmp_path):
    """A model folder written by `finetune` exports (export_web with the folder) and gives the
    same sector in Chromium as `propose` with that model in Python."""
    pytest.importorskip('torch', reason='torch not installed (the finetune extra)')
    if not USE_BUNDLED:
        pytest.skip('fine-tuning starts from the bundled model, which is absent')
    from test_finetune import _phantom_corrections

    from napari_heartbox._training.finetune import finetune
    from napari_heartbox.model.runtime import HeartModel
    from napari_heartbox.phantom import make_phantom
    from napari_heartbox.web.export import export_web
    from napari_heartbox.web.serve import make_server

    corr = _phantom_corrections(tmp_path / 'corr', 2, -12.0)
    finetune(corr, tmp_path / 'model', steps=40, replay=2, report=False, log=lambda *a: None)
    model = HeartModel.load(tmp_path / 'model')
    assert model.sha256 != HeartModel.default().sha256
    bundle = export_web(tmp_path / 'bundle', model_path=tmp_path / 'model').parent
    vol = make_phantom(5, matrix=(256, 256), n_slices=120, slice_spacing_mm=2.0, coverage='chest',
                       keep_labels=False).volume
    series = _write_series(vol, tmp_path / 'series', shuffle_names=True)
    from napari_heartbox.io import load_ct

    py = model.propose(load_ct(series)).to_dict()
    assert py['found'] and py['model_sha256'] == model.sha256
    server = make_server(bundle, 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = Page(browser, f'http://127.0.0.1:{server.server_port}/')
    try:
        sector, _ = run_main_page(page, dicom_files(series))
        assert_same_sector(sector, py)
        page.assert_local_only()
        assert not page.errors
    finally:
        page.ctx.close()
        server.shutdown()
        server.server_close()
