"""Box every CT series of a study tree on a Dask cluster: resumable, reviewable.

``napari-heartbox batch ROOT --out OUTDIR`` and :func:`run` find every CT
series under ``ROOT`` (:mod:`napari_heartbox.archive`), run one task per
series on ``dask.distributed`` (a local cluster of worker processes by
default, or an existing scheduler), and write::

    OUTDIR/cases/<case>.json     one heartbox.sector-file/1 per series (status "proposed")
    OUTDIR/thumbs/<case>.png     axial / coronal / sagittal through the box
    OUTDIR/results.parquet       the results table (and results.csv)
    OUTDIR/failures.csv          series that could not be boxed, with the one-line reason
    OUTDIR/skipped.csv           what is not a CT series to box (scouts, non-CT, not DICOM)
    OUTDIR/index.json|csv        heartbox.corrections/1: OUTDIR opens in the napari worklist
    OUTDIR/index.html            review gallery, lowest confidence first (static, offline)
    OUTDIR/.heartbox-batch/records/<key>.json   one record per finished series (resume)

Every file is written atomically. A worker writes only its series' files
(sector file, thumbnail, then the record, last); the client writes the tables,
index and gallery from the records, also when the run is interrupted. A re-run
skips every series whose record exists for the same key (series UID + file
list, :class:`~napari_heartbox.archive.SeriesJob`); failed series are tried again.

Workers need the same paths as the client (a shared file system for a
multi-machine cluster). A worker reads every header of its series and the
pixels of only the slices the model scores (:func:`~napari_heartbox.io.open_ct`).
No patient name, ID or birth date is written anywhere; paths are relative to
``ROOT`` and ``OUTDIR``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ._atomic import atomic_write_text
from ._json import json_safe
from .archive import SeriesJob, Skipped, chunked, group_series, list_files, scan_chunk
from .errors import HeartboxError, one_line
from .sector_file import read_sector_file, write_sector_file

__all__ = ['COLUMNS', 'process_group', 'process_series', 'run']

RECORDS = Path('.heartbox-batch') / 'records'
REVIEWED = ('corrected', 'accepted')

#: results table columns, in order (``docs/batch.md``)
COLUMNS = (
    'case', 'source', 'series_uid', 'kind', 'n_files', 'status', 'found', 'confidence',
    'z0', 'z1', 'y0', 'y1', 'x0', 'x1',
    'lps_min_x', 'lps_min_y', 'lps_min_z', 'lps_max_x', 'lps_max_y', 'lps_max_z',
    'volume_ml', 'n_slices', 'slices_read', 'seconds', 'warnings', 'error',
    'sector_file', 'thumbnail', 'key',
)

_INT_COLUMNS = ('n_files', 'z0', 'z1', 'y0', 'y1', 'x0', 'x1', 'n_slices', 'slices_read')

Progress = Callable[[int, int, dict], object]


# ----------------------------------------------------------------- worker side
class _Recording:
    """A :class:`~napari_heartbox.io.CTSeries` that keeps a small copy of each slice read.

    The model reads a few slices per centimetre; their in-plane subsample
    (every ``stride``-th pixel) makes the coronal and sagittal thumbnails
    without reading any other slice.
    """

    def __init__(self, series, stride: int):
        self._series = series
        self.stride = stride
        self.grid, self.info, self.shape = series.grid, series.info, series.shape
        self.small: dict[int, np.ndarray] = {}

    def read_slices(self, zs):
        hu = self._series.read_slices(zs)
        s = self.stride
        for z, sl in zip(zs, hu, strict=True):
            self.small[int(z)] = sl[::s, ::s].copy()
        return hu


def _thumbnail_volume(rec: _Recording, zc: int | None):
    """A coarse :class:`CTVolume` for the thumbnails: every slice is its nearest slice
    read, in-plane every ``stride``-th pixel (same LPS geometry)."""
    from .grid import Grid
    from .volume import CTVolume

    if zc is not None and zc not in rec.small:
        rec.read_slices([zc])  # the axial panel shows the box's own middle slice
    zs = np.array(sorted(rec.small))
    nz = rec.shape[0]
    pos = np.clip(np.searchsorted(zs, np.arange(nz)), 0, len(zs) - 1)
    left = np.clip(pos - 1, 0, len(zs) - 1)
    nearest = np.where(np.abs(zs[left] - np.arange(nz)) <= np.abs(zs[pos] - np.arange(nz)),
                       zs[left], zs[pos])
    hu = np.stack([rec.small[int(z)] for z in nearest])
    g, s = rec.grid, rec.stride
    a = g.matrix.copy()
    a[:3, 1] *= s  # y and x index steps grow by the stride; voxel (0, 0, 0) stays put
    a[:3, 2] *= s
    grid = Grid(hu.shape, (g.spacing[0], g.spacing[1] * s, g.spacing[2] * s), a)
    return CTVolume(hu, grid)


_MODELS: dict = {}


def _model(path):
    """The worker process's model (loaded once per process and path), on one thread:
    the parallelism of a batch is its worker processes, one per core."""
    from .model.runtime import HeartModel

    key = None if path is None else str(path)
    if key not in _MODELS:
        _MODELS[key] = HeartModel.load(path, threads=1)
    return _MODELS[key]


def _base_row(job: SeriesJob) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(case=job.case, source=job.source, series_uid=job.series_uid, kind=job.kind,
               n_files=len(job.files), key=job.key, warnings=[])
    return row


def process_series(job: SeriesJob, root, out, margin_mm=None, model=None,
                   thumbnail: bool = True) -> dict:
    """Box one series and write its files (the task a worker runs).

    Parameters
    ----------
    job : SeriesJob
        From :func:`napari_heartbox.archive.group_series`.
    root, out : str or Path
        The study tree and the output folder.
    margin_mm : float, optional
        Box margin (default: the model card's).
    model : str or Path, optional
        Model folder or ``.onnx`` (default: the bundled model).
    thumbnail : bool
        Write ``thumbs/<case>.png``.

    Returns
    -------
    dict
        The results-table row (:data:`COLUMNS`), also written as the series'
        record, last, so a record always means its files are complete. A
        problem with the series is the row's ``error`` (one line), never an
        exception.
    """
    from .io import open_ct
    from .model import propose

    t0 = time.perf_counter()
    root, out = Path(root), Path(out)
    row = _base_row(job)
    try:
        files = [root / f for f in job.files]
        series = open_ct(files[0] if job.kind == 'nifti' else files, series_uid=job.series_uid)
        rec = _Recording(series, max(1, math.ceil(max(series.shape[1:]) / 160)))
        sector = propose(rec, margin_mm=margin_mm, model=_model(model))
        warnings = series.read_warnings()
        case_file = out / 'cases' / f'{job.case}.json'
        if _reviewed(case_file):
            warnings.append(f'kept the reviewed box already in cases/{job.case}.json')
        else:
            write_sector_file(case_file, sector, sector, status='proposed', case=job.case)
        row.update(status='done', found=bool(sector.found), confidence=float(sector.confidence),
                   n_slices=int(series.shape[0]), slices_read=len(rec.small),
                   sector_file=f'cases/{job.case}.json', warnings=warnings)
        if sector.found:
            (z0, z1), (y0, y1), (x0, x1) = sector.ranges
            lo, hi = sector.patient_mm()
            row.update(z0=z0, z1=z1, y0=y0, y1=y1, x0=x0, x1=x1, volume_ml=float(sector.volume_ml),
                       **{f'lps_min_{a}': float(v) for a, v in zip('xyz', lo, strict=True)},
                       **{f'lps_max_{a}': float(v) for a, v in zip('xyz', hi, strict=True)})
        if thumbnail:
            try:
                row['thumbnail'] = _write_thumbnail(out, job.case, rec, sector)
            except (OSError, ValueError) as e:  # the box is what matters; say so and go on
                warnings.append(one_line(f'no thumbnail ({type(e).__name__}: {e})'))
    except HeartboxError as e:
        row.update(status='failed', error=str(e))
    except Exception as e:  # noqa: BLE001 - one bad series never stops the batch
        row.update(status='failed', error=one_line(f'{job.source}: {type(e).__name__}: {e}'))
    row['seconds'] = round(time.perf_counter() - t0, 4)
    _write_record(out, row)
    return row


def process_group(jobs: list[SeriesJob], root, out, margin_mm=None, model=None,
                  thumbnail: bool = True) -> list[dict]:
    """:func:`process_series` for each of ``jobs``, in order (one task for several series)."""
    return [process_series(j, root, out, margin_mm, model, thumbnail) for j in jobs]


def _reviewed(case_file: Path) -> bool:
    """True when the worklist has a corrected/accepted box there (never overwritten)."""
    if not case_file.is_file():
        return False
    try:
        return read_sector_file(case_file).status in REVIEWED
    except HeartboxError:
        return False


def _write_thumbnail(out: Path, case: str, rec: _Recording, sector) -> str:
    from ._atomic import atomic_write_bytes
    from ._box_overlay import PROPOSED_RGB, render_box_views
    from ._png import encode_png

    zc = None
    boxes = []
    if sector.found:
        z0, z1 = sector.ranges[0]
        zc = (z0 + z1 - 1) // 2
        lo, hi = sector.patient_mm()
        boxes.append((lo, hi, PROPOSED_RGB, 2))
    vol = _thumbnail_volume(rec, zc)
    rel = f'thumbs/{case}.png'
    atomic_write_bytes(out / rel, encode_png(render_box_views(vol, boxes, size_px=180)))
    return rel


def _record_path(out: Path, key: str) -> Path:
    return out / RECORDS / f'{key}.json'


def _write_record(out: Path, row: dict) -> None:
    atomic_write_text(_record_path(out, row['key']), json.dumps(json_safe(row), allow_nan=False) + '\n')


def _read_record(out: Path, job: SeriesJob) -> dict | None:
    try:
        row = json.loads(_record_path(out, job.key).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get('key') == job.key else None


# ----------------------------------------------------------------- client side
def _client(client, scheduler, workers, dashboard):
    """``(client, owned)``: the given client, one connected to ``scheduler``, or a new
    LocalCluster of worker processes (owned: closed by :func:`run`)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise HeartboxError(
            "batch needs Dask: pip install 'napari-heartbox[batch]' (dask[distributed], pyarrow)"
        ) from None
    if client is not None:
        return client, False
    if scheduler:
        try:
            return Client(scheduler, timeout='20s'), True
        except (OSError, TimeoutError) as e:
            raise HeartboxError(f'--scheduler {scheduler}: cannot connect ({one_line(e)})') from None
    import logging

    n = workers or os.cpu_count() or 1
    # no dashboard: its HTTP server (health checks) still listens, on any free port
    extra = {} if dashboard else {'scheduler_kwargs': {'dashboard_address': ':0'}}
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=dashboard or None, silence_logs=logging.ERROR, **extra)
    return Client(cluster), True


def _discover(client, root: Path) -> tuple[list[SeriesJob], list[Skipped], int]:
    files = list_files(root)
    chunks = chunked(files)
    futures = client.map(scan_chunk, [str(root)] * len(chunks), chunks, pure=False)
    infos = [i for part in client.gather(futures) for i in part]
    jobs, skipped = group_series(root, infos)
    return jobs, skipped, len(files)


def run(root, out, client=None, *, scheduler: str | None = None, workers: int | None = None,
        margin_mm: float | None = None, model=None, thumbnails: bool = True,
        progress: bool | Progress = True, dashboard: str | None = ':8787',
        series_per_task: int = 1):
    """Box every CT series under ``root``; write the outputs into ``out`` (module docstring).

    Parameters
    ----------
    root : str or Path
        Root of the study tree (read only).
    out : str or Path
        Output folder (created; must not be ``root`` or inside it).
    client : distributed.Client, optional
        Run on this client's cluster (it stays open).
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:8786``) when no client is given.
    workers : int, optional
        Worker processes of the local cluster made when neither ``client`` nor
        ``scheduler`` is given (default: one per CPU core).
    margin_mm : float, optional
        Box margin (default: the model card's).
    model : str or Path, optional
        Model folder or ``.onnx`` (default: the bundled model); checked here
        before any task starts.
    thumbnails : bool
        Render ``thumbs/<case>.png`` for the gallery.
    progress : bool or callable
        True: a progress bar on stderr (series/s, ETA); a callable gets
        ``progress(done, total, row)`` after each series; False: silent.
    dashboard : str or None
        Dashboard address of a local cluster (None: no dashboard).
    series_per_task : int
        Series boxed by one task (default 1). The scheduler spends 1-3 ms per task,
        so above about 50 workers a few series per task keep it from being the
        bottleneck (``docs/batch.md``, cost model).

    Returns
    -------
    pandas.DataFrame
        The results table (:data:`COLUMNS`), one row per series, by case. Its
        ``attrs`` hold ``computed`` (series run now), ``resumed`` (records
        reused), ``skipped`` (count), ``dashboard`` and the seconds of the three
        phases (``discovery_s``, ``tasks_s``, ``outputs_s``).

    Raises
    ------
    HeartboxError
        Bad folders or model, Dask missing, a scheduler that cannot be reached.
    KeyboardInterrupt
        Re-raised after the outputs were written from the series finished so far.
    """
    from .model.runtime import HeartModel
    from .worklist import _inside

    root, out = Path(root).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise HeartboxError(f'{root}: not a folder (give the root of a study tree)')
    if _inside(out, root):
        raise HeartboxError(f'{out}: the output folder must not be {root} or inside it; choose another')
    if int(series_per_task) < 1:
        raise HeartboxError(f'series per task must be at least 1, got {series_per_task}')
    series_per_task = int(series_per_task)
    if margin_mm is not None and not (0 <= margin_mm <= 200):
        raise HeartboxError(f'margin {margin_mm} mm: must be between 0 and 200 mm')
    if model is not None:
        model = str(Path(model).resolve())
        HeartModel.load(model)  # a bad model fails before any task starts
    client, owned = _client(client, scheduler, workers, dashboard)
    t_start = time.perf_counter()
    done: dict[str, dict] = {}
    jobs: list[SeriesJob] = []
    skipped: list[Skipped] = []
    stats = {'computed': 0, 'resumed': 0, 'skipped': 0, 'dashboard': None}
    futures = []
    bar = None
    run_id = uuid.uuid4().hex[:8]  # task keys unique per run: a cancelled task of an
    # interrupted run may still be finishing on a worker when the next run starts
    try:
        stats['dashboard'] = _dashboard_link(client) if dashboard or not owned or scheduler else None
        if progress is True and stats['dashboard']:
            print(f'Dask dashboard: {stats["dashboard"]}', file=sys.stderr)
        t0 = time.perf_counter()
        jobs, skipped, n_files = _discover(client, root)
        stats['skipped'] = len(skipped)
        stats['discovery_s'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        todo = []
        for job in jobs:
            rec = _read_record(out, job)
            if rec is not None and rec.get('status') == 'done':
                done[job.key] = rec
            else:
                todo.append(job)
        stats['resumed'] = len(done)
        if progress is True:
            bar = _bar(len(jobs), len(done), n_files)
        from distributed import as_completed

        groups = [todo[i : i + series_per_task] for i in range(0, len(todo), series_per_task)]
        futures = [
            client.submit(process_group, group, str(root), str(out), margin_mm, model, thumbnails,
                          key=f'heartbox-series-{group[0].case}-{run_id}', pure=False)
            for group in groups
        ]
        by_future = dict(zip(futures, groups, strict=True))
        for fut in as_completed(futures):
            group = by_future[fut]
            try:
                rows = fut.result()
            except Exception as e:  # noqa: BLE001 - e.g. KilledWorker: the series keeps killing its worker
                rows = []
                for job in group:
                    row = _read_record(out, job)  # finished before the worker died
                    if row is None:
                        row = _base_row(job)
                        row.update(status='failed', error=one_line(
                            f'{job.source}: the task failed on the cluster ({type(e).__name__}: {e})'))
                        _write_record(out, row)
                    rows.append(row)
            for job, row in zip(group, rows, strict=True):
                done[job.key] = row
                stats['computed'] += 1
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(len(done), len(jobs), row)
        stats['tasks_s'] = time.perf_counter() - t0
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
        if bar is not None:
            bar.close()
        if owned:
            _close(client)
        t0 = time.perf_counter()
        table = _write_outputs(root, out, jobs, done, skipped, time.perf_counter() - t_start)
        stats['outputs_s'] = time.perf_counter() - t0
    table.attrs.update(stats)
    return table


def _dashboard_link(client) -> str | None:
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no bokeh, or a scheduler without a dashboard
        return None


def _bar(total: int, already: int, n_files: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=already, unit='series', file=sys.stderr, dynamic_ncols=True,
                desc=f'boxing ({n_files} files, {already} done before)')


def _close(client) -> None:
    cluster = getattr(client, 'cluster', None)
    client.close()
    if cluster is not None:
        cluster.close()


# ----------------------------------------------------------------- outputs
def _write_outputs(root: Path, out: Path, jobs, done: dict, skipped, seconds: float):
    """Tables, failures, worklist index and gallery from the finished records."""
    import pandas as pd

    from .batch_gallery import write_gallery
    from .worklist import Case, Worklist

    out.mkdir(parents=True, exist_ok=True)
    rows = [done[j.key] for j in jobs if j.key in done]
    rows.sort(key=lambda r: r['case'])
    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    table = table.astype({**dict.fromkeys(_INT_COLUMNS, 'Int64'), 'found': 'boolean'})
    _write_table(out, table)
    failed = [r for r in rows if r.get('status') != 'done']
    _write_csv(out / 'failures.csv', ['case', 'source', 'series_uid', 'error'],
               [{k: r.get(k) for k in ('case', 'source', 'series_uid', 'error')} for r in failed])
    _write_csv(out / 'skipped.csv', ['path', 'series_uid', 'reason', 'n_files'],
               [asdict(s) for s in skipped])
    # the worklist index: one case per series, the statuses read from the case files
    cases = [Case(j.case, root / j.source, j.source, j.series_uid) for j in jobs]
    if cases:
        Worklist(root, out, cases=cases).write_index()
    write_gallery(out, rows, n_series=len(jobs), n_skipped=len(skipped), seconds=seconds)
    return table


def _write_table(out: Path, table) -> None:
    from ._atomic import atomic_write_bytes

    flat = table.copy()
    flat['warnings'] = [' | '.join(w or []) for w in flat['warnings']]
    atomic_write_text(out / 'results.csv', flat.to_csv(index=False))
    try:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
    except ImportError:  # pyarrow missing: the CSV says the same
        return
    atomic_write_bytes(out / 'results.parquet', buf.getvalue())


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow({k: '' if r.get(k) is None else r.get(k) for k in fields})
    atomic_write_text(path, buf.getvalue())
