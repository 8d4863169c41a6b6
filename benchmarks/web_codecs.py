"""Compressed DICOM in the browser (issue 19): files → sector in Chromium, per syntax.

Run ``python -m benchmarks.web_codecs`` from the repository root. It writes one 700-slice
512² chest series (the demo phantom resampled, as the other benchmarks) with the project's
DICOM writer in each transfer syntax asked for (default: uncompressed explicit VR, JPEG
Lossless SV1, JPEG 2000 lossless), exports the web bundle, serves it with COOP/COEP on
127.0.0.1 and runs the page's pipeline (``HeartboxWorker.run`` on the File objects, previews
on, as the app does) in Debian Chromium with 1 and 2 onnxruntime threads. For each run it
reports the median end-to-end time of ``--repeats`` runs after one warm-up (model session
and decoder loaded), the ratio to the uncompressed series in the same browser session, the
slices decoded and the decode time, and checks that every syntax gives the same sector.

Bundle size per codec (the vendor files a syntax needs) is printed as well.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from ._browser import CHROMIUM, LAUNCH_ARGS, _stats_ms, _why_not
from ._inputs import base_phantom, resample_volume

SYNTAXES = ('explicit', 'jpeg-lossless', 'j2k')
ALL_SYNTAXES = ('explicit', 'rle', 'jpeg-lossless', 'jpeg-ls', 'j2k', 'htj2k')

# vendor files (relative to the bundle) each codec loads, for the size table
CODEC_FILES = {
    'rle': ['codecs.js'],
    'jpeg-lossless': ['codecs.js', 'jpeg-lossless.js'],
    'jpeg-ls': ['codecs.js', 'vendor/codecs/charlswasm_decode.mjs', 'vendor/codecs/charlswasm_decode.wasm'],
    'j2k': ['codecs.js', 'vendor/codecs/openjpegwasm_decode.mjs', 'vendor/codecs/openjpegwasm_decode.wasm'],
    'htj2k': ['codecs.js', 'vendor/codecs/openjphjs.mjs', 'vendor/codecs/openjphjs.wasm'],
}

_RUN_JS = """
async ([reps, threads]) => {
  const { HeartboxWorker } = await import('./heartbox.js');
  const files = Array.from(document.getElementById('bench-files').files);
  const w = new HeartboxWorker({ numThreads: threads });
  const times = [];
  let last = null;
  for (let r = 0; r <= reps; r++) {       // run 0 = warm-up (session, decoder)
    const t0 = performance.now();
    last = await w.run(files);
    if (r > 0) times.push(performance.now() - t0);
  }
  w.terminate();
  return { times_ms: times, timings: last.timings, sector: last.sector };
}
"""


def _sizes(bundle: Path) -> dict:
    import gzip

    out = {}
    for codec, files in CODEC_FILES.items():
        raw = sum((bundle / f).stat().st_size for f in files)
        gz = sum(len(gzip.compress((bundle / f).read_bytes(), 9)) for f in files)
        out[codec] = {'bytes': raw, 'gzip_bytes': gz}
    return out


def run(nz: int = 700, repeats: int = 3, syntaxes=SYNTAXES) -> dict:
    why = _why_not()
    if why:
        return {'skipped': why}
    from playwright.sync_api import sync_playwright

    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.web.export import export_web
    from napari_heartbox.web.serve import make_server

    base, source = base_phantom(0)
    volume = resample_volume(base, nz)
    tmp = Path(tempfile.mkdtemp(prefix='heartbox-bench-codecs-'))
    out: dict = {'volume': {'shape': list(volume.shape), 'spacing': list(volume.spacing), 'source': source}}
    folders = {}
    for ts in syntaxes:
        t0 = time.perf_counter()
        folders[ts] = tmp / ts
        paths = write_dicom_series(volume, folders[ts], transfer_syntax=ts)
        out.setdefault('series', {})[ts] = {
            'write_s': round(time.perf_counter() - t0, 2),
            'bytes': sum(p.stat().st_size for p in paths),
        }
        print(f'wrote {ts}: {out["series"][ts]}', flush=True)
    bundle = export_web(tmp / 'bundle').parent
    out['codec_bytes'] = _sizes(bundle)
    server = make_server(bundle, 0, isolate=True, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_port}/'
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
            page = browser.new_page(bypass_csp=True)
            page.goto(url + 'index.html')
            out['coi'] = page.evaluate('self.crossOriginIsolated')
            results = out.setdefault('runs', {})
            for ts in syntaxes:
                files = sorted(str(f) for f in folders[ts].iterdir())
                page.goto(url + 'index.html')
                page.evaluate(
                    "() => { const i = document.createElement('input'); i.type = 'file';"
                    " i.multiple = true; i.id = 'bench-files'; i.hidden = true;"
                    ' document.body.append(i); }'
                )
                page.locator('#bench-files').set_input_files(files)
                for threads in (1, 2):
                    r = page.evaluate(_RUN_JS, [repeats, threads])
                    t = r['timings']
                    results.setdefault(ts, {})[f'{threads}t'] = {
                        'end_to_end_s': _stats_ms(r['times_ms']),
                        'slices_scored': t['slices_scored'],
                        'slices_decoded': t.get('slices_decoded', 0),
                        'decode_ms': round(t.get('decode_ms', 0), 1),
                        'read_parse_ms': round(t['read_parse_ms'], 1),
                        'infer_ms': round(t['infer_ms'], 1),
                        'run_ms': round(t['run_ms'], 1),
                        'voxel': r['sector']['voxel'],
                    }
                    print(ts, threads, json.dumps(results[ts][f'{threads}t']), flush=True)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    ref = results.get('explicit', {})
    for per in results.values():
        for k, v in per.items():
            if k in ref:
                v['ratio_to_uncompressed'] = round(
                    v['end_to_end_s']['median'] / ref[k]['end_to_end_s']['median'], 2
                )
                v['same_box_as_uncompressed'] = v['voxel'] == ref[k]['voxel']
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--slices', type=int, default=700)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--syntax', action='append', choices=ALL_SYNTAXES,
                    help=f'transfer syntax to write (repeatable; default {", ".join(SYNTAXES)})')
    ap.add_argument('--out', type=Path, help='write the results as JSON here')
    a = ap.parse_args(argv)
    syntaxes = tuple(dict.fromkeys(['explicit', *(a.syntax or SYNTAXES)]))
    res = run(a.slices, a.repeats, syntaxes)
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.write_text(text + '\n')
    print('\n'.join(
        f'{ts:14s} {k}: {v["end_to_end_s"]["median"]:.2f} s  x{v.get("ratio_to_uncompressed", "-")}'
        f'  decoded {v["slices_decoded"]} ({v["decode_ms"]:.0f} ms)  same box: {v.get("same_box_as_uncompressed")}'
        for ts, per in res.get('runs', {}).items() for k, v in per.items()
    ) or text)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
