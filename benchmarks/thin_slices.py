"""Thin-slice schedule benchmark (issue 23): slices scored and ratio (a) per slice spacing.

Run ``python -m benchmarks.thin_slices`` from the repository root. It takes the shared CPTAC
and RICORD scans (``../shared/data/ct``; skipped with a message when absent) and the demo
phantoms, resamples each in z (nearest neighbour: real anatomy, repeated slices) to 0.43,
0.625, 1.25 mm and the native spacing, and for the bundled card's schedule and the same card
without ``z_fine_mm`` (the rule before issue 23) prints: slices scored, slices read (with
their z context), ``propose`` ÷ ``volume.hu.max()`` (medians of ``--repeats`` interleaved
runs), and the box difference against the old rule (z0, z1, y0, y1, x0, x1 in voxels).

Conventions: volumes ``(z, y, x)``, margin 0, boxes as half-open voxel ranges.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_heartbox.io import load_ct
from napari_heartbox.model.postprocess import sector_from_prob
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args(argv)
    model = HeartModel.default()
    card = dict(model.postprocess)
    old = {k: v for k, v in card.items() if k != 'z_fine_mm'}
    print('case           slices | old rule: scored read ratio(a) | card: scored read ratio(a) box-diff')
    for name, vol in _cases():
        dz = vol.spacing[0]
        row, ref = [f'{name:14s} {vol.shape[0]:5d}'], None
        for cfg in (old, card):
            model.card['postprocess'] = cfg
            try:
                prob, ran = model.scheduled_prob(vol.hu, dz)
                s = sector_from_prob(prob, vol.grid, cfg, margin_mm=0)
                reads = np.unique(context_rows(ran, vol.shape[0], model.context_offset(dz))).size
                t = _median_s(lambda v=vol: model.propose(v, margin_mm=0), args.repeats)
                base = _median_s(lambda v=vol: v.hu.max(), args.repeats)
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
            row.append(f'{ran.size:4d} {reads:4d} {t / base:6.2f} {diff}')
        print(' | '.join(row), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
