"""Browser numbers: onnxruntime-web (wasm) in Debian chromium, driven by playwright.

Uses the web bundle exactly as users get it (``export_web`` into a temp
folder, served on 127.0.0.1 with COOP/COEP so 2 wasm threads are allowed):

* the bundle's own speed page (``speed.html?auto=1``): latency per batch and
  per frame vs batch size, 1 and 2 threads, on synthetic 512² slices;
* the same volume as the Python numbers: its int16 HU bytes are served next
  to the bundle, fetched by the page and passed to ``HeartboxWorker.run``
  (in-memory volume → Sector, the worker transfer included);
  ratio (c) = browser ÷ Python in-memory → Sector, medians.

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
async ([shape, spacing, reps, threads]) => {
  const { HeartboxWorker } = await import('./heartbox.js');
  const buf = await (await fetch('bench_volume.i16')).arrayBuffer();
  const w = new HeartboxWorker({ numThreads: threads });
  const times = [];
  let last = null;
  for (let r = 0; r <= reps; r++) {       // run 0 = warm-up (session creation)
    const hu = new Int16Array(buf.slice(0));
    const t0 = performance.now();
    last = await w.run({ hu, shape, spacing });
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
) -> dict:
    """Run the browser benchmarks; ``python`` = the results so far (for ratio c).

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
        if seed_path is not None:
            shutil.copyfile(seed_path, bundle / 'seed_style.onnx')
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
            for threads in (1, 2):
                r = page.evaluate(
                    _RUN_VOLUME_JS,
                    [
                        list(volume.shape),
                        list(volume.spacing),
                        max(1, repeats),
                        threads,
                    ],
                )
                vol_runs[f'{threads}t'] = {
                    'in_memory_s': _stats_ms(r['times_ms']),
                    'worker_timings': r['timings'],
                    'found': r['sector'].get('found') if r.get('sector') else None,
                }
            out['volume'] = {'shape': list(volume.shape), 'runs': vol_runs}
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
        }
        return out
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
