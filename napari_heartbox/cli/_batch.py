"""``napari-heartbox batch ROOT --out OUTDIR``: box every CT series of a study tree on Dask.

One task per series on a local cluster of worker processes (``--workers N``,
default one per core) or on a running Dask scheduler (``--scheduler
tcp://HOST:8786``). Resumable: re-running the same command skips the series
already done. See ``docs/batch.md``; needs the ``batch`` extra (Dask, pyarrow),
imported only when the command runs.
"""

from __future__ import annotations

__all__ = ['add_parser']


def add_parser(subparsers) -> None:
    """Register the ``batch`` subcommand."""
    p = subparsers.add_parser(
        'batch',
        help='box every CT series under a folder on a Dask cluster (resumable; review gallery)',
        description=(
            'Find every CT series under ROOT (DICOM grouped by SeriesInstanceUID across folders, '
            'NIfTI files; scouts and non-CT skipped with a reason) and box each on a Dask cluster. '
            'OUTDIR gets one heartbox.sector-file/1 per series (cases/), results.parquet/.csv, '
            'failures.csv, skipped.csv, a worklist index (open OUTDIR in the napari worklist) and '
            'index.html, a review gallery. Re-running resumes.'
        ),
    )
    p.add_argument('root', metavar='ROOT', help='root folder of the study tree (read only)')
    p.add_argument('--out', required=True, metavar='OUTDIR', help='output folder (created)')
    where = p.add_mutually_exclusive_group()
    where.add_argument('--scheduler', metavar='ADDRESS', default=None,
                       help='a running Dask scheduler, e.g. tcp://HOST:8786 (workers must see ROOT '
                       'and OUTDIR at the same paths)')
    where.add_argument('--workers', type=int, default=None, metavar='N',
                       help='worker processes of the local cluster (default: one per CPU core)')
    p.add_argument('--margin-mm', type=float, default=None, metavar='M',
                   help="safety margin on every face in mm (default: the model card's)")
    p.add_argument('--model', metavar='MODEL', default=None,
                   help='model folder (e.g. what `finetune --out` wrote) or .onnx (default: bundled)')
    p.add_argument('--series-per-task', type=int, default=1, metavar='K',
                   help='series boxed by one Dask task (default 1; a few per task on clusters of '
                   'more than ~50 workers, docs/batch.md)')
    p.add_argument('--no-thumbnails', action='store_true', help='skip the gallery thumbnails')
    p.add_argument('--dashboard', default=':8787', metavar='ADDRESS',
                   help="local cluster's dashboard address (default :8787; 'none' for no dashboard)")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys

    from napari_heartbox.batch import run as batch_run
    from napari_heartbox.errors import HeartboxError

    if args.workers is not None and args.workers < 1:
        raise HeartboxError('--workers must be at least 1')
    dashboard = None if str(args.dashboard).lower() == 'none' else args.dashboard
    try:
        table = batch_run(args.root, args.out, scheduler=args.scheduler, workers=args.workers,
                          margin_mm=args.margin_mm, model=args.model,
                          thumbnails=not args.no_thumbnails, dashboard=dashboard,
                          series_per_task=args.series_per_task)
    except KeyboardInterrupt:
        print(f'interrupted: the series finished so far are in {args.out}; '
              'run the same command again to resume', file=sys.stderr)
        return 130
    a = table.attrs
    n = len(table)
    failed = int((table['status'] != 'done').sum()) if n else 0
    found = int(table['found'].fillna(False).astype(bool).sum()) if n else 0
    print(f'{n} series: {found} with a heart box, {n - found - failed} without, {failed} failed; '
          f'{a.get("computed", 0)} computed now, {a.get("resumed", 0)} from an earlier run; '
          f'{a.get("skipped", 0)} skipped (skipped.csv)')
    print(f'review: {args.out}/index.html (or open {args.out} in the napari worklist)')
    return 0 if failed == 0 else 1
