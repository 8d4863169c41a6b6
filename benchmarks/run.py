"""``python -m benchmarks``: where the time goes, as medians with min/max and as ratios.

Sections (each one is skipped, with the reason recorded, when what it needs
is missing, e.g. no bundled model yet):

1. inputs: a phantom chest CT resampled to N × 512² (N = 300, 700, 1000)
   and written as uncompressed DICOM (shuffled names) in a temp folder;
2. per size: in-memory → Sector by stage, with ratio (a) ÷ ``hu.max()``;
   folder → Sector (the propose path, and the whole-volume path by stage),
   with ratio (b) ÷ a pydicom header-only scan;
   ratio (d) ÷ a seed-style pipeline; peak RSS of folder → Sector in a
   fresh process;
3. the batch-size curve (1 … 1024) of the model graph in Python
   onnxruntime with 1 and 2 intra-op threads (plus the seed-style graph),
   and a sweep of the runtime's own (batch, threads) settings;
4. the browser (onnxruntime-web in chromium via playwright), when the web
   bundle and chromium are available: ratio (c) browser ÷ Python.

Results: a table on stdout and ``benchmarks/results/<tag>.json``; PNG plots
in ``docs/images/`` (full runs) — see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_SIZES = (300, 700, 1000)
QUICK_SIZES = (48,)
FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
QUICK_BATCHES = (1, 4, 16)
SWEEP_BATCHES = (4, 8, 16, 32, 64)


def _parse(argv):
    p = argparse.ArgumentParser(
        prog='python -m benchmarks', description=__doc__.split('\n')[0]
    )
    p.add_argument(
        '--quick', action='store_true', help='small sizes, few repeats (CI smoke run)'
    )
    p.add_argument(
        '--sizes',
        type=lambda s: [int(v) for v in s.split(',')],
        help='slice counts, e.g. 300,700',
    )
    p.add_argument(
        '--repeats', type=int, help='timed runs per measurement (default 7; quick 2)'
    )
    p.add_argument(
        '--batch-sizes',
        type=lambda s: [int(v) for v in s.split(',')],
        help='batch curve sizes',
    )
    p.add_argument(
        '--curve-size',
        type=int,
        default=700,
        help='volume the batch sweep runs on (default 700)',
    )
    p.add_argument('--out-dir', type=Path, default=ROOT / 'benchmarks' / 'results')
    p.add_argument(
        '--plots-dir',
        type=Path,
        help='PNG plots (default docs/images for full runs, none for --quick)',
    )
    p.add_argument(
        '--tag', help='result file name (default: quick, or the UTC date-time)'
    )
    p.add_argument(
        '--cache-dir', type=Path, help='keep generated DICOM folders here between runs'
    )
    p.add_argument(
        '--model', type=Path, help='ONNX model to benchmark instead of the bundled one'
    )
    p.add_argument(
        '--card', type=Path, help='its model card (default: next to --model)'
    )
    p.add_argument(
        '--skip',
        default='',
        help='comma list of sections to skip: memory,cli,curve,sweep,browser,seed',
    )
    return p.parse_args(argv)


def _fmt(st):
    if not st:
        return '-'
    return f'{st["median"]:.3f} [{st["min"]:.3f}-{st["max"]:.3f}]'


def _section(results, name, fn):
    """Run one section; record ``{'skipped': reason}`` instead of failing the whole run."""
    from napari_heartbox.errors import HeartboxError

    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except (HeartboxError, ImportError, FileNotFoundError) as e:
        results[name] = {'skipped': f'{type(e).__name__}: {e}'}
    except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
        traceback.print_exc()
        results[name] = {'skipped': f'failed: {type(e).__name__}: {e}'}
    print(
        f'[bench] {name}: {time.perf_counter() - t0:.1f} s', file=sys.stderr, flush=True
    )
    return results[name]


def main(argv=None) -> int:
    """Run the benchmarks; returns the exit status."""
    args = _parse(argv)
    skip = {s.strip() for s in args.skip.split(',') if s.strip()}
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    repeats = args.repeats or (2 if args.quick else 7)
    batches = args.batch_sizes or (QUICK_BATCHES if args.quick else FULL_BATCHES)
    tag = args.tag or (
        'quick' if args.quick else time.strftime('%Y%m%d-%H%M%S', time.gmtime())
    )
    plots_dir = args.plots_dir or (None if args.quick else ROOT / 'docs' / 'images')
    tmp = None
    cache = args.cache_dir
    if cache is None:
        tmp = tempfile.mkdtemp(prefix='heartbox-bench-')
        cache = Path(tmp)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        results = _run(args, sizes, repeats, batches, skip, cache)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    results['settings'].update({'tag': tag, 'quick': bool(args.quick)})
    if plots_dir is not None:
        from ._plots import plot_batch_curves

        results['plots'] = [
            str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
            for p in plot_batch_curves(results, plots_dir)
        ]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f'{tag}.json'
    out.write_text(json.dumps(results, indent=2) + '\n', encoding='utf-8')
    print(format_report(results))
    print(f'\nresults written to {out}')
    return 0


def _environment() -> dict:
    import numpy
    import onnxruntime

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        'python': platform.python_version(),
        'machine': platform.machine(),
        'cpu_count': os.cpu_count(),
        'loadavg_at_start': load,
        'numpy': numpy.__version__,
        'onnxruntime': onnxruntime.__version__,
        'utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    }


def _run(args, sizes, repeats, batches, skip, cache: Path) -> dict:
    from napari_heartbox.errors import ModelError

    from . import _batch, _inputs, _pipeline, _seed

    results: dict = {
        'schema': 'heartbox.bench/1',
        'environment': _environment(),
        'settings': {
            'sizes': list(sizes),
            'repeats': repeats,
            'batch_sizes': list(batches),
        },
        'sizes': {},
    }
    bundled = args.model is None
    base, source = _inputs.base_phantom(0)
    results['settings']['input'] = (
        f'{source}, resampled to N x 512 x 512, uncompressed DICOM (shuffled names)'
    )
    try:
        # benchmark a private copy: the bundled file may be replaced mid-run by a training job
        model = _pipeline.load_model(
            *_pipeline.snapshot_model(args.model, args.card, cache)
        )
        results['model'] = {
            'path': str(args.model or 'bundled (napari_heartbox/model/assets)'),
            'sha256': model.sha256,
            'runtime_threads': model.threads,
            'runtime_batch': model.batch,
            'params': model.card.get('params'),
            'bytes': model.onnx_path.stat().st_size,
        }
        args.model, args.card = model.onnx_path, model.card_path
    except ModelError as e:
        model = None
        results['model'] = {'skipped': str(e)}
    seed_session = seed_path = None
    if 'seed' not in skip:
        seed_path, n_params = _seed.seed_model_path(cache)
        results['seed_model'] = {'params': n_params, 'bytes': seed_path.stat().st_size}
        seed_session = _batch.make_session(seed_path, threads=2)

    curve_volume = curve_folder = None
    for nz in sizes:
        vol = _inputs.volume_with_slices(base, nz)
        folder = _inputs.dicom_folder(vol, cache / f'dicom_{nz}')
        results['sizes'][str(nz)] = _bench_size(
            model, seed_session, vol, folder, repeats, skip, bundled=bundled
        )
        if nz == args.curve_size or curve_volume is None:
            curve_volume, curve_folder = vol, folder

    hu = curve_volume.hu
    budget = 0.5 if args.quick else 3.0
    curve_repeats = 3 if args.quick else 15
    if 'curve' not in skip:
        curves: dict = {}
        results['batch_curve'] = curves
        graphs = []  # (name, onnx path): our graph and the seed-style baseline
        if model is not None:
            graphs.append(('heartbox', model.onnx_path))
        if seed_session is not None:
            graphs.append(('seed', seed_path))
        for name, onnx_path in graphs:
            for threads in (1, 2):
                sess = _batch.make_session(onnx_path, threads)
                _section(
                    curves,
                    f'{name}_{threads}t',
                    lambda s=sess: _batch.batch_curve(
                        s,
                        _batch.feeds_for(s),
                        hu,
                        batches,
                        repeats=curve_repeats,
                        budget_s=budget,
                    ),
                )
    if model is not None and 'sweep' not in skip:
        results['runtime_sweep'] = _section(
            results,
            'runtime_sweep',
            lambda: _runtime_sweep(
                args, curve_volume, repeats, (4, 16, 64) if args.quick else SWEEP_BATCHES
            ),
        )
    if 'browser' not in skip:
        from . import _browser

        _section(
            results,
            'browser',
            lambda: _browser.run(
                curve_volume,
                batches,
                repeats,
                python=results,
                model_path=args.model,
                card_path=args.card,
                seed_path=seed_path if seed_session is not None else None,
                folder=curve_folder,
            ),
        )
    return results


def _bench_size(model, seed_session, vol, folder, repeats, skip, bundled: bool) -> dict:
    """Stage timings, ratios (a, b, d) and peak memory for one volume size."""
    from . import _memory, _pipeline

    r: dict = {'volume_mib': round(vol.hu.nbytes / 2**20, 1), 'shape': list(vol.shape)}
    if model is not None:
        _section(r, 'in_memory', lambda: _pipeline.in_memory(model, vol, repeats))
        _section(
            r, 'folder', lambda: _pipeline.folder_to_sector(model, folder, repeats)
        )
        if seed_session is not None:
            _section(
                r,
                'seed',
                lambda: _pipeline.seed_pipeline(model, seed_session, vol, repeats),
            )
    else:
        _section(r, 'folder', lambda: _pipeline.load_only(folder, repeats))
    if 'memory' not in skip:
        _section(
            r,
            'memory',
            lambda: _memory.peak_rss_folder_to_sector(
                folder,
                model.onnx_path if model else None,
                model.card_path if model else None,
            ),
        )
    if model is not None and bundled and 'cli' not in skip:
        # the CLI uses the bundled model only
        _section(
            r, 'cli_cold', lambda: _memory.cli_cold_start(folder, max(3, repeats // 2))
        )
    return r


def _runtime_sweep(args, volume, repeats, batch_sizes) -> dict:
    """``HeartModel.propose`` (the slice schedule + post) on the in-memory volume,
    for each (threads, batch) setting: the evidence for the card's ``runtime``."""
    from . import _pipeline
    from ._timing import repeat

    rows = []
    for threads in (1, 2):
        for b in batch_sizes:
            m = _pipeline.load_model(args.model, args.card, threads=threads, batch=b)
            st = repeat(lambda m=m: m.propose(volume), repeats=repeats, warmup=1)
            rows.append({'threads': threads, 'batch': b, 'propose_s': st})
    best = min(rows, key=lambda r: r['propose_s']['median'])
    return {
        'n_slices': int(volume.shape[0]),
        'rows': rows,
        'best': {'threads': best['threads'], 'batch': best['batch']},
    }


def format_report(res: dict) -> str:
    """Plain-text tables of a results dict."""
    lines = []
    env = res['environment']
    lines.append(
        f'napari-heartbox benchmarks  ({env["utc"]}, {env["cpu_count"]} CPUs, load avg at start '
        f'{env["loadavg_at_start"]}, onnxruntime {env["onnxruntime"]})'
    )
    m = res.get('model', {})
    if 'skipped' in m:
        lines.append(f'model: not benchmarked ({m["skipped"]})')
    else:
        lines.append(
            f'model: {m["params"]} params, {m["bytes"]} B; runtime threads={m["runtime_threads"]} '
            f'batch={m["runtime_batch"]}'
        )
    lines.append('times in s: median [min-max] over the repeats')
    for nz, r in res['sizes'].items():
        lines.append(f'\n== {nz} slices x 512 x 512 ({r["volume_mib"]} MiB) ==')
        im = r.get('in_memory')
        if im and 'skipped' not in im:
            st = im['stages_s']
            lines.append(
                f'in-memory -> Sector  total {_fmt(st["total"])} = preprocess+inference '
                f'{_fmt(st["preprocess+inference"])} + post {_fmt(st["post"])}'
            )
            lines.append(
                f'  (a) / numpy hu.max() {_fmt(im["baseline_numpy_max_s"])} = {im["ratio_a"]:.2f}  (bar <= 4.0)'
            )
        fo = r.get('folder')
        if fo and 'skipped' not in fo:
            st = fo['stages_s']
            parts = ' + '.join(f'{k} {_fmt(v)}' for k, v in st.items() if k != 'total')
            total = f'total {_fmt(st["total"])} = ' if 'total' in st else 'load = '
            if 'propose_path_s' in fo:
                pp = fo['propose_path_s']
                lines.append(
                    f'folder -> Sector, propose path (open_ct + propose)  total '
                    f'{_fmt(pp["total"])} = header pass {_fmt(pp["header pass"])} + pixels of the '
                    f'scored slices + inference + post {_fmt(pp["pixels+preprocess+inference+post"])}'
                )
                lines.append(
                    f'folder -> volume + Sector, whole-volume path (napari)  {total}{parts}  '
                    f'= {fo["ratio_b_whole_volume"]:.2f} x the header scan'
                )
            else:
                lines.append(f'folder -> Sector  {total}{parts}')
            ratio = fo.get('ratio_b', fo.get('load_over_header_scan'))
            label = '(b)' if 'ratio_b' in fo else 'load only'
            lines.append(
                f'  {label} / pydicom header-only scan {_fmt(fo["baseline_header_scan_s"])} = {ratio:.2f}'
                + ('  (bar <= 1.5)' if 'ratio_b' in fo else '')
            )
        elif fo:
            lines.append(f'folder -> Sector: skipped ({fo["skipped"]})')
        sd = r.get('seed')
        if sd and 'skipped' not in sd:
            lines.append(
                f'  (d) ours {_fmt(sd["ours_s"])} / seed-style {_fmt(sd["seed_style_s"])} = {sd["ratio_d"]:.2f}'
            )
        mem = r.get('memory')
        if mem and 'error' not in mem and 'skipped' not in mem:
            lines.append(
                f'peak RSS folder -> volume + Sector (fresh process, load_ct): {mem["peak_rss_mib"]:.0f} MiB '
                f'(volume {mem["volume_mib"]:.0f} MiB; bar {mem["bar_mib"]:.0f} MiB; imports alone '
                f'{mem["rss_after_imports_mib"]:.0f} MiB)'
                + ('' if mem.get('found') is not None else ' [no model: load only]')
            )
            pm = mem.get('propose_path') or {}
            if 'peak_rss_mib' in pm:
                lines.append(
                    f'  propose path (open_ct + propose, the CLI): {pm["peak_rss_mib"]:.0f} MiB'
                )
        elif mem:
            lines.append(f'peak RSS: {mem.get("error") or mem.get("skipped")}')
        cli = r.get('cli_cold')
        if cli:
            lines.append(
                'napari-heartbox propose FOLDER --json, fresh process: '
                + (
                    _fmt(cli)
                    if 'median' in cli
                    else str(cli.get('error') or cli.get('skipped'))
                )
            )
    curves = res.get('batch_curve') or {}
    if curves:
        names = [k for k, v in curves.items() if isinstance(v, list)]
        if names:
            lines.append(
                '\n== batch-size curve: ms per frame, median (one session.run of B slices of 512^2) =='
            )
            lines.append(f'{"B":>6} ' + ' '.join(f'{n:>14}' for n in names))
            by_b = {n: {row['batch']: row for row in curves[n]} for n in names}
            for b in sorted({row['batch'] for n in names for row in curves[n]}):
                cells = []
                for n in names:
                    row = by_b[n].get(b)
                    cells.append(
                        f'{row["per_frame_ms"]["median"]:14.3f}'
                        if row
                        else f'{"-":>14}'
                    )
                lines.append(f'{b:>6} ' + ' '.join(cells))
        for k, v in curves.items():
            if isinstance(v, dict) and 'skipped' in v:
                lines.append(f'{k}: skipped ({v["skipped"]})')
    sw = res.get('runtime_sweep')
    if sw and 'skipped' not in sw:
        lines.append(
            f'\n== HeartModel.propose (slice schedule + post) on {sw["n_slices"]} slices in memory: s, median [min-max] =='
        )
        for row in sw['rows']:
            lines.append(
                f'threads={row["threads"]} batch={row["batch"]:>4}: {_fmt(row["propose_s"])}'
            )
        lines.append(
            f'best: threads={sw["best"]["threads"]} batch={sw["best"]["batch"]}'
        )
    br = res.get('browser')
    if br:
        if 'skipped' in br:
            lines.append(f'\nbrowser: skipped ({br["skipped"]})')
        else:
            sm = br.get('summary', {})
            vol = br.get('volume', {})
            lines.append(
                f'\n== browser (chromium, onnxruntime-web wasm, cross-origin isolated: '
                f'{sm.get("cross_origin_isolated")}) =='
            )
            for k, v in vol.get('runs', {}).items():
                lines.append(
                    f'in-memory -> Sector, {vol.get("shape", ["?"])[0]} slices, {k}: '
                    f'{_fmt(v["in_memory_s"])} (worker: {json.dumps(v.get("worker_timings"))})'
                )
            if sm.get('ratio_c') is not None:
                lines.append(
                    f'  (c) browser / Python in-memory -> Sector = {sm["ratio_c"]:.2f}'
                )
            for k, per_b in (br.get('ratio_d_per_batch') or {}).items():
                cells = ', '.join(f'B={b}: {r:.2f}' for b, r in per_b.items())
                lines.append(
                    f'  (d) in the browser, {k}: ours / seed-style ms per frame: {cells}'
                )
            for name, per_t in (br.get('pipelines') or {}).items():
                for k, v in per_t.items():
                    if 'files_s' not in v:
                        continue
                    t = v['files_timings']
                    lines.append(
                        f'{name}: DICOM files -> Sector, {k}: {_fmt(v["files_s"])} (read+parse '
                        f'{t["read_parse_ms"]:.0f} ms, preprocess+inference wall {t["infer_ms"]:.0f} ms '
                        f'of which onnxruntime {t["run_ms"]:.0f} ms on {t.get("slices_scored")} slices, '
                        f'post {t["post_ms"]:.0f} ms)'
                    )
            for k, r in (br.get('pipeline_ratio_vs_seed') or {}).items():
                lines.append(f'  (d) browser pipeline, {k}: ours / seed-style: {json.dumps(r)}')
    return '\n'.join(lines)
