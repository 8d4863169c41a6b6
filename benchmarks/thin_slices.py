"""Thin-slice schedule benchmark (issue 23): slices scored and ratio (a) per slice spacing.

Run ``python -m benchmarks.thin_slices`` from the repository root. It takes the shared CPTAC
and RICORD scans (``../shared/data/ct``; skipped with a message when absent) and the demo
phantoms, resamples each in z (nearest neighbour: real anatomy, repeated slices) to 0.43,
0.625, 1.25 mm and the native spacing, and for the bundled card's schedule and the same card
without ``z_fine_mm`` (the rule before issue 23) prints: slices scored, slices read (with
their z context), ratio (a) = ``propose(volume)`` ÷ ``volume.hu.max()``, ratio (b) =
``propose(open_ct(folder))`` ÷ a pydicom header-only scan of the series written as DICOM
(medians of ``--repeats`` runs each; ``--no-folders`` leaves (b) out), the card's
``propose`` and ``hu.max()`` times in ms, and the box difference against the old rule
(z0, z1, y0, y1, x0, x1 in voxels).

Conventions: volumes ``(z, y, x)``, margin 0, boxes as half-open voxel ranges.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_heartbox.io import load_ct
from napari_heartbox.model.runtime import HeartModel
from napari_heartbox.model.zschedule import context_rows

from ._inputs import resample_volume

SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ct'
SPACINGS = (0.43, 0.625, 1.25)


def _cases():
    for name in ('cptac-lscc-c3n-00247', 'ricord-1a-001012'):
        folder = SHARED / name / 'dicom'
        if not folder.is_dir():
            print(f'{folder}: not found, {name} left out')
            continue
        vol = load_ct(folder)
        extent = vol.spacing[0] * vol.shape[0]
        for dz in SPACINGS:
            yield f'{name[:6]} {dz}', resample_volume(vol, int(round(extent / dz)), vol.shape[1])
        yield f'{name[:6]} {vol.spacing[0]:.3g}', vol
    from napari_heartbox.phantom import sample_chest_ct

    ph = sample_chest_ct(0).volume
    extent = ph.spacing[0] * ph.shape[0]
    for dz in (0.4, 0.625, 1.25, 2.5, 5.0):
        yield f'phantom {dz}', resample_volume(ph, int(round(extent / dz)), ph.shape[1])


def _median_s(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _ratio_b(model, vol, repeats: int) -> float:
    """(b): ``propose(open_ct(folder))`` ÷ a pydicom header-only scan of the same folder.

    The volume is written as an uncompressed DICOM series (shuffled file names) into a
    temporary folder, deleted afterwards; the two are timed alternately.
    """
    from napari_heartbox.io import open_ct, write_dicom_series

    from ._pipeline import _header_only_scan

    with tempfile.TemporaryDirectory(prefix='heartbox-thin-') as tmp:
        folder = Path(tmp) / 'series'
        write_dicom_series(vol, folder, shuffle_names=True)
        files = sorted(p for p in folder.rglob('*') if p.is_file())
        path, base = [], []
        for _ in range(repeats):
            base.append(_median_s(lambda: _header_only_scan(files), 1))
            path.append(_median_s(lambda: model.propose(open_ct(folder), margin_mm=0), 1))
        return float(np.median(path) / np.median(base))


def browser_times(cases, repeats: int) -> list[str]:
    """The same schedule in the browser: ``HeartboxWorker.run`` (2 wasm threads) in chromium.

    For each ``(name, volume)``: in memory (the int16 HU bytes fetched by the page,
    transferred to the worker) and from File objects of the series written as DICOM
    (what a folder pick gives the page), medians of ``repeats`` runs after a warm-up,
    with the slices the worker scored. Returns printable lines (or the reason it
    could not run).
    """
    from ._browser import _RUN_FILES_JS, _RUN_VOLUME_JS, CHROMIUM, LAUNCH_ARGS, _why_not

    why = _why_not()
    if why:
        return [f'browser: skipped ({why})']
    import threading

    from playwright.sync_api import sync_playwright

    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.web.export import export_web
    from napari_heartbox.web.serve import make_server

    lines = ['browser (2 threads)  slices | in memory: ms scored | files: ms run_ms']
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory(prefix='heartbox-thin-web-') as tmp:
        bundle = Path(tmp) / 'bundle'
        export_web(bundle)
        server = make_server(bundle, 0, isolate=True, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f'http://127.0.0.1:{server.server_port}/'
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
                page = browser.new_page(bypass_csp=True)
                page.goto(url + 'index.html')
                page.evaluate(
                    "() => { const i = document.createElement('input'); i.type = 'file';"
                    " i.multiple = true; i.id = 'bench-files'; i.hidden = true;"
                    ' document.body.append(i); }'
                )
                for name, vol in cases:
                    (bundle / 'bench_volume.i16').write_bytes(vol.hu.tobytes())
                    r = page.evaluate(
                        _RUN_VOLUME_JS, [list(vol.shape), list(vol.spacing), repeats, 2, './']
                    )
                    folder = Path(tmp) / 'series'
                    shutil.rmtree(folder, ignore_errors=True)
                    write_dicom_series(vol, folder, shuffle_names=True)
                    page.locator('#bench-files').set_input_files(sorted(map(str, folder.iterdir())))
                    f = page.evaluate(_RUN_FILES_JS, ['./', repeats, 2])
                    t = r['timings']
                    lines.append(
                        f'{name:20s} {vol.shape[0]:5d} | {np.median(r["times_ms"]):8.1f} '
                        f'{t.get("slices_scored", "?")!s:>6} | {np.median(f["times_ms"]):8.1f} '
                        f'{f["timings"].get("run_ms", float("nan")):7.1f}'
                    )
                    print(lines[-1], flush=True)
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--browser', action='store_true',
                    help='also time the browser worker (chromium) on the CPTAC series')
    ap.add_argument('--no-folders', action='store_true',
                    help='leave out ratio (b), which writes each series as DICOM to a temp folder')
    args = ap.parse_args(argv)
    model = HeartModel.default()
    card = dict(model.postprocess)
    old = {k: v for k, v in card.items() if k != 'z_fine_mm'}
    web_cases = []
    print('case           slices | old rule: scored read (a) (b) | card: scored read (a) (b) '
          'propose-ms max-ms box-diff')
    for name, vol in _cases():
        dz = vol.spacing[0]
        row, ref = [f'{name:14s} {vol.shape[0]:5d}'], None
        for cfg in (old, card):
            model.card['postprocess'] = cfg
            try:
                ran, _ = model.scheduled_scores(vol.hu, dz)
                s = model.propose(vol, margin_mm=0)
                reads = np.unique(context_rows(ran, vol.shape[0], model.context_offset(dz))).size
                t = _median_s(lambda v=vol: model.propose(v, margin_mm=0), args.repeats)
                base = _median_s(lambda v=vol: v.hu.max(), args.repeats)
                b = float('nan') if args.no_folders else _ratio_b(model, vol, args.repeats)
            finally:
                model.card['postprocess'] = card
            box = np.array([*s.z, *s.y, *s.x]) if s.found else None
            diff = ''
            if ref is None:
                ref = box
            elif (box is None) != (ref is None):
                diff = 'found differs'
            elif box is not None:
                diff = ','.join(str(int(d)) for d in box - ref)
            ms = f' {1e3 * t:6.1f} {1e3 * base:5.1f}' if cfg is card else ''
            row.append(f'{ran.size:4d} {reads:4d} {t / base:6.2f} {b:5.2f}{ms} {diff}')
        print(' | '.join(row), flush=True)
        if args.browser and name.startswith('cptac'):
            web_cases.append((name, vol))
    if web_cases:
        browser_times(web_cases, args.repeats)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
