"""Browser numbers: onnxruntime-web (wasm) in Debian chromium, driven by playwright.

Uses the web bundle exactly as users get it (``export_web`` into a temp
folder, served on 127.0.0.1 with COOP/COEP so 2 wasm threads are allowed):

* the bundle's own speed page (``speed.html?auto=1``): latency per batch and
  per frame vs batch size, 1 and 2 threads, on synthetic 512² slices;
* the same volume as the Python numbers: its int16 HU bytes are served next
  to the bundle, fetched by the page and passed to ``HeartboxWorker.run``
  (in-memory volume → Sector, the worker transfer included);
  ratio (c) = browser ÷ Python in-memory → Sector, medians;
* the same DICOM folder as the Python folder numbers, as File objects from an
  ``<input type=file>`` (what a person's folder pick gives the page), through
  ``HeartboxWorker.run``: end to end from File objects to the sector;
* both again with the seed-style pipeline: the seed graph exported as a
  second bundle (``seed/``, same origin, same chromium session, every slice
  scored), so ours ÷ seed-style is a pipeline ratio measured side by side.

Skipped (with the reason) when the web exporter, the bundled model, chromium
or playwright is missing.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ['run']

CHROMIUM = '/usr/bin/chromium'
LAUNCH_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]

_RUN_VOLUME_JS = """
async ([shape, spacing, reps, threads, prefix]) => {
  const { HeartboxWorker } = await import(prefix + 'heartbox.js');
  const buf = await (await fetch('bench_volume.i16')).arrayBuffer();
  const w = new HeartboxWorker({ numThreads: threads });
  const times = [];
  let last = null;
  for (let r = 0; r <= reps; r++) {       // run 0 = warm-up (session creation)
    const hu = new Int16Array(buf.slice(0));
    const t0 = performance.now();
    last = await w.run({ hu, shape, spacing }, { transfer: true });  // moved, not copied
    if (r > 0) times.push(performance.now() - t0);
  }
  w.terminate();
  return { times_ms: times, timings: last.timings, sector: last.sector };
}
"""


_RUN_FILES_JS = """
async ([prefix, reps, threads]) => {
  const { HeartboxWorker } = await import(prefix + 'heartbox.js');
  const files = Array.from(document.getElementById('bench-files').files);
  const w = new HeartboxWorker({ numThreads: threads });
  const times = [];
  let last = null;
  for (let r = 0; r <= reps; r++) {       // run 0 = warm-up (session creation)
    const t0 = performance.now();
    last = await w.run(files, { previews: false });
    if (r > 0) times.push(performance.now() - t0);
  }
  w.terminate();
  return { times_ms: times, timings: last.timings, sector: last.sector };
}
"""


def _why_not() -> str | None:
    here = Path(__file__).resolve().parents[1]
    if not (here / 'napari_heartbox' / 'web' / 'export.py').is_file():
        return 'napari_heartbox/web/export.py not present (no web bundle yet)'
    if not Path(CHROMIUM).exists():
        return f'{CHROMIUM} not installed'
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright (python) not installed'
    return None


def _stats_ms(times_ms):
    from ._timing import stats

    return stats([t / 1000.0 for t in times_ms])


def _speed_page(page, url: str, batches, repeats: int, extra: str = '') -> dict:
    """Run the bundle's speed page (1 and 2 wasm threads) and return its results object."""
    q = (
        f'speed.html?size=512&batches={",".join(map(str, batches))}'
        f'&reps={max(1, repeats)}&threads=2&auto=1{extra}'
    )
    page.goto(url + q)
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.body.dataset.state)", timeout=900_000
    )
    return page.evaluate('window.heartboxSpeedResults')


def _seed_bundle(bundle: Path, seed_path, card_path, export_web) -> str:
    """Export the seed-style graph as a second bundle under ``bundle/seed/``."""
    import json

    from napari_heartbox.model.card import CARD_NAME, assets_dir

    from ._seed import seed_card

    ours = json.loads(Path(card_path or assets_dir() / CARD_NAME).read_text())
    card = bundle.parent / 'seed.card.json'
    card.write_text(json.dumps(seed_card(seed_path, ours['postprocess'])))
    export_web(bundle / 'seed', model_path=seed_path, card_path=card)
    return './seed/'


def _pipeline_ratios(pipelines: dict) -> dict:
    """Ours ÷ seed-style, medians, per thread count: in-memory, files, and the
    worker's preprocess + inference wall time (``infer_ms``) of the files run."""
    out = {}
    for t, ours in pipelines.get('ours', {}).items():
        seed = pipelines.get('seed', {}).get(t)
        if not seed:
            continue
        r = {'in_memory': round(ours['in_memory_s']['median'] / seed['in_memory_s']['median'], 3)}
        if 'files_s' in ours and 'files_s' in seed:
            r['files'] = round(ours['files_s']['median'] / seed['files_s']['median'], 3)
            r['files_infer'] = round(
                ours['files_timings']['infer_ms'] / seed['files_timings']['infer_ms'], 3
            )
        out[t] = r
    return out


def _ratio_d(ours: dict, seed: dict) -> dict:
    """Per thread count and batch: our ms/frame ÷ the seed-style graph's ms/frame."""
    out = {}
    for ro in (ours or {}).get('runs', []):
        rs = next(
            (r for r in (seed or {}).get('runs', []) if r['threads'] == ro['threads']),
            None,
        )
        if rs is None:
            continue
        seed_pf = {
            p['batch']: p['ms_per_frame'] for p in rs['points'] if 'error' not in p
        }
        out[f'{ro["threads"]}t'] = {
            str(p['batch']): round(p['ms_per_frame'] / seed_pf[p['batch']], 3)
            for p in ro['points']
            if 'error' not in p and seed_pf.get(p['batch'])
        }
    return out


def run(
    volume,
    batches,
    repeats: int,
    python: dict,
    model_path=None,
    card_path=None,
    seed_path=None,
    folder=None,
) -> dict:
    """Run the browser benchmarks; ``python`` = the results so far (for ratio c).

    ``folder`` is the DICOM folder of ``volume`` (files end to end; skipped if None).

    ``model_path``/``card_path`` default to the bundled model (as in ``export_web``).
    """
    why = _why_not()
    if why:
        return {'skipped': why}
    from playwright.sync_api import sync_playwright

    from napari_heartbox.errors import HeartboxError
    from napari_heartbox.web.export import export_web
    from napari_heartbox.web.serve import make_server

    tmp = Path(tempfile.mkdtemp(prefix='heartbox-bench-web-'))
    server = None
    try:
        try:
            bundle = tmp / 'bundle'
            export_web(bundle, model_path=model_path, card_path=card_path)
        except HeartboxError as e:
            return {'skipped': f'web export failed: {e}'}
        (bundle / 'bench_volume.i16').write_bytes(volume.hu.tobytes())
        prefixes = {'ours': './'}
        if seed_path is not None:
            shutil.copyfile(seed_path, bundle / 'seed_style.onnx')
            prefixes['seed'] = _seed_bundle(bundle, seed_path, card_path, export_web)
        server = make_server(bundle, 0, isolate=True, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f'http://127.0.0.1:{server.server_port}/'
        out: dict = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
            )
            # bypass_csp lets playwright evaluate its helper scripts on the strict page
            page = browser.new_page(bypass_csp=True)
            out['speed_page'] = _speed_page(page, url, batches, repeats)
            if seed_path is not None:
                # ratio (d) in the browser: the seed-style graph through the same page
                out['speed_page_seed'] = _speed_page(
                    page, url, batches, repeats, '&model=seed_style.onnx&input=hu'
                )
                out['ratio_d_per_batch'] = _ratio_d(
                    out['speed_page'], out['speed_page_seed']
                )
            out['coi'] = page.evaluate('self.crossOriginIsolated')
            vol_runs = {}
            pipelines: dict = {}
            files = sorted(str(f) for f in Path(folder).iterdir()) if folder else []
            if files:
                page.evaluate(
                    "() => { const i = document.createElement('input'); i.type = 'file';"
                    " i.multiple = true; i.id = 'bench-files'; i.hidden = true;"
                    ' document.body.append(i); }'
                )
                page.locator('#bench-files').set_input_files(files)
            for threads in (1, 2):
                for name, prefix in prefixes.items():
                    runs = pipelines.setdefault(name, {}).setdefault(f'{threads}t', {})
                    r = page.evaluate(
                        _RUN_VOLUME_JS,
                        [
                            list(volume.shape),
                            list(volume.spacing),
                            max(1, repeats),
                            threads,
                            prefix,
                        ],
                    )
                    runs['in_memory_s'] = _stats_ms(r['times_ms'])
                    runs['in_memory_timings'] = r['timings']
                    if files:
                        f = page.evaluate(_RUN_FILES_JS, [prefix, max(1, repeats), threads])
                        runs['files_s'] = _stats_ms(f['times_ms'])
                        runs['files_timings'] = f['timings']
                    if name == 'ours':
                        vol_runs[f'{threads}t'] = {
                            'in_memory_s': runs['in_memory_s'],
                            'worker_timings': r['timings'],
                            'found': r['sector'].get('found') if r.get('sector') else None,
                        }
            out['volume'] = {'shape': list(volume.shape), 'runs': vol_runs}
            out['pipelines'] = pipelines
            out['pipeline_ratio_vs_seed'] = _pipeline_ratios(pipelines)
            browser.close()
        # ratio (c): browser in-memory → Sector ÷ Python in-memory → Sector, same volume
        key = str(volume.shape[0])
        py = python.get('sizes', {}).get(key, {}).get('in_memory', {})
        py_total = (py.get('stages_s') or {}).get('total')
        if py_total:
            best = min(v['in_memory_s']['median'] for v in vol_runs.values())
            out['ratio_c'] = round(best / py_total['median'], 3)
        out['summary'] = {
            'in_memory_s': {k: v['in_memory_s']['median'] for k, v in vol_runs.items()},
            'ratio_c': out.get('ratio_c'),
            'ratio_d_browser_median_over_batches': {
                k: round(float(np.median(list(v.values()))), 3)
                for k, v in out.get('ratio_d_per_batch', {}).items()
                if v
            },
            'cross_origin_isolated': out['coi'],
            'files_s': {
                k: v['files_s']['median']
                for k, v in pipelines.get('ours', {}).items()
                if 'files_s' in v
            },
            'pipeline_ratio_vs_seed': out['pipeline_ratio_vs_seed'],
        }
        return out
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
