"""``python -m benchmarks.archive_batch``: series/s of ``napari-heartbox batch`` (issue 20).

Writes a synthetic archive of ``--series`` DICOM series (phantom chest CTs,
``--matrix``² × ``--slices``, uncompressed, shuffled file names) into a temp
folder, then in one process measures (medians of ``--repeats`` runs):

* **serial**: a loop over ``open_ct`` + ``propose`` in this process, the model
  loaded once (the series known beforehand; and with ``discover_series`` first);
* **shell loop**: one ``napari-heartbox propose SERIES`` process per series
  (what users did before ``batch``), timed on the first series;
* **batch, N workers**: :func:`napari_heartbox.batch.run` on a LocalCluster of
  N processes started beforehand (the start is reported on its own), into a
  fresh output folder each run: discovery on the workers, one task per
  series, thumbnails, tables, index and gallery;
* **per-series costs** for the cost model in ``docs/batch.md``: header pass,
  pixels + model, thumbnail and files, and the scheduler's overhead per task
  (10,000 empty tasks).

Ratios are against the serial loop of the same run. Results go to stdout and
``benchmarks/results/archive-batch-<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / 'results'


def make_archive(root: Path, n: int, matrix: int, slices: int) -> None:
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.phantom import make_phantom

    for i in range(n):
        v = make_phantom(500 + i, coverage='chest', matrix=(matrix, matrix), n_slices=slices,
                         keep_labels=False).volume
        write_dicom_series(v, root / f'site_{i % 3}' / f'patient_{i:03d}' / 'CT', seed=500 + i,
                           shuffle_names=True)


def _noop(x):
    return x


def _load_model() -> None:
    from napari_heartbox.model.runtime import HeartModel

    HeartModel.default()


def _median_runs(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def serial_loop(root: Path, jobs) -> dict:
    """One pass over the series in this process; per-stage seconds."""
    from napari_heartbox.batch import _Recording, _write_thumbnail
    from napari_heartbox.io import open_ct
    from napari_heartbox.model import propose

    stages = {'headers': 0.0, 'pixels_and_model': 0.0, 'thumbnail': 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for j in jobs:
            t0 = time.perf_counter()
            series = open_ct([root / f for f in j.files], series_uid=j.series_uid)
            t1 = time.perf_counter()
            rec = _Recording(series, max(1, -(-max(series.shape[1:]) // 160)))
            sector = propose(rec)
            t2 = time.perf_counter()
            _write_thumbnail(Path(tmp), j.case, rec, sector)
            t3 = time.perf_counter()
            stages['headers'] += t1 - t0
            stages['pixels_and_model'] += t2 - t1
            stages['thumbnail'] += t3 - t2
    return stages


def time_batch(root: Path, tmp: Path, n: int, repeats: int) -> dict:
    """``batch.run`` on a fresh n-worker LocalCluster: medians, phases, scheduler cost per task."""
    from distributed import Client, LocalCluster

    from napari_heartbox.batch import run

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR,
                           scheduler_kwargs={'dashboard_address': ':0'})
    client = Client(cluster)
    start = time.perf_counter() - t0
    phases = []
    try:
        client.run(_load_model)  # each worker loads the model once, as a run would

        def once():
            t = run(root, tmp / f'out-{n}-{len(phases)}', client=client, progress=False)
            phases.append({p: t.attrs[p] for p in ('discovery_s', 'tasks_s', 'outputs_s')})

        once()  # warm-up (imports on the workers); its phases are not counted
        t_batch, tb = _median_runs(once, repeats)
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(10_000), pure=False))
        per_task = (time.perf_counter() - t0) / 10_000
    finally:
        client.close()
        cluster.close()
    return {'cluster_start_s': start, 'median_s': t_batch, 'runs_s': tb,
            'phases_s': {p: statistics.median(ph[p] for ph in phases[1:]) for p in phases[0]},
            'scheduler_s_per_task': per_task}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--series', type=int, default=16)
    ap.add_argument('--matrix', type=int, default=512)
    ap.add_argument('--slices', type=int, default=160)
    ap.add_argument('--workers', default='1,2')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--tag', default=datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ'))
    args = ap.parse_args(argv)

    from napari_heartbox.archive import discover_series
    from napari_heartbox.model.runtime import HeartModel

    tmp = Path(tempfile.mkdtemp(prefix='heartbox-batch-bench-'))
    try:
        root = tmp / 'archive'
        t0 = time.perf_counter()
        make_archive(root, args.series, args.matrix, args.slices)
        n_files = sum(1 for _ in root.rglob('*.dcm'))
        print(f'archive: {args.series} series x {args.slices} x {args.matrix}^2 '
              f'({n_files} files) written in {time.perf_counter() - t0:.1f} s', file=sys.stderr)
        jobs, _ = discover_series(root)
        HeartModel.default()  # load outside the timings
        serial_loop(root, jobs[:1])  # warm the page cache and the session
        res: dict = {'series': args.series, 'slices': args.slices, 'matrix': args.matrix,
                     'files': n_files, 'repeats': args.repeats}
        t_serial, ts = _median_runs(lambda: serial_loop(root, jobs), args.repeats)
        stages = serial_loop(root, jobs)
        t_serial_d, tsd = _median_runs(lambda: serial_loop(root, discover_series(root)[0]), args.repeats)
        res['serial_with_discovery'] = {'median_s': t_serial_d, 'runs_s': tsd,
                                        'series_per_s': args.series / t_serial_d}
        res['serial'] = {'median_s': t_serial, 'runs_s': ts, 'series_per_s': args.series / t_serial,
                         'per_series_s': {k: v / args.series for k, v in stages.items()}}
        cli = [sys.executable, '-m', 'napari_heartbox', 'propose', str(root / jobs[0].source)]
        t_cli, _ = _median_runs(lambda: subprocess.run(cli, check=True, capture_output=True),
                                args.repeats)
        res['shell_loop'] = {'per_series_s': t_cli, 'series_per_s': 1 / t_cli}
        res['batch'] = {}
        for n in (int(w) for w in args.workers.split(',')):
            b = time_batch(root, tmp, n, args.repeats)
            b.update(series_per_s=args.series / b['median_s'],
                     speedup_vs_serial=t_serial / b['median_s'],
                     speedup_vs_serial_with_discovery=t_serial_d / b['median_s'])
            res['batch'][n] = b
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    s = res['serial']
    print(f"\n{args.series} series of {args.slices} x {args.matrix}^2, medians of {args.repeats}")
    print(f"{'run':<22}{'seconds':>9}{'series/s':>10}{'vs serial':>11}")
    print(f"{'serial propose loop':<22}{s['median_s']:>9.2f}{s['series_per_s']:>10.2f}{1.0:>11.2f}")
    sd = res['serial_with_discovery']
    print(f"{'serial + discovery':<22}{sd['median_s']:>9.2f}{sd['series_per_s']:>10.2f}"
          f"{s['median_s'] / sd['median_s']:>11.2f}")
    for n, b in res['batch'].items():
        ph = ', '.join(f"{k[:-2]} {v:.2f} s" for k, v in b['phases_s'].items())
        print(f"{f'batch, {n} worker(s)':<22}{b['median_s']:>9.2f}{b['series_per_s']:>10.2f}"
              f"{b['speedup_vs_serial']:>11.2f}   ({ph}; cluster start {b['cluster_start_s']:.1f} s, "
              f"{b['scheduler_s_per_task'] * 1e3:.2f} ms/task on the scheduler)")
    print('per series (serial): ' + ', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in s['per_series_s'].items()))
    print(f"shell loop of 'napari-heartbox propose': {res['shell_loop']['per_series_s']:.2f} s per series "
          f"({res['shell_loop']['series_per_s']:.2f} series/s)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f'archive-batch-{args.tag}.json'
    out.write_text(json.dumps(res, indent=2) + '\n')
    print(f'wrote {out}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
