"""Stage timings of the real pipeline (folder → Sector, in-memory → Sector) and its baselines.

Nothing is re-implemented: the stages are the package's own calls, timed
one after the other exactly as :meth:`HeartModel.propose` chains them
(``scheduled_prob`` = the one ONNX graph, preprocessing included, on the
slices the coarse-to-fine slice schedule picks, then ``sector_from_prob``). The DICOM load is split with ``load_ct``'s
``progress`` callback: the header pass reports files ``1..n`` and the pixel
pass continues from ``n``, so "discovery + header parse" ends when the
callback reports ``done == n``.

Each ratio's numerator and baseline are run alternately in the same loop so
that load from other processes hits both alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ._timing import stats

__all__ = [
    'load_model',
    'in_memory',
    'folder_to_sector',
    'seed_pipeline',
    'count_files',
]


def snapshot_model(onnx_path, card_path, cache_dir: Path) -> tuple[Path, Path]:
    """Copy the model (default: the bundled one) and its card into ``cache_dir``."""
    import shutil

    from napari_heartbox.model.card import CARD_NAME, ONNX_NAME, assets_dir

    src = Path(onnx_path) if onnx_path else assets_dir() / ONNX_NAME
    card = Path(card_path) if card_path else src.with_name(CARD_NAME)
    dst = Path(cache_dir) / 'model'
    dst.mkdir(parents=True, exist_ok=True)
    for f in (src, card):
        if not f.is_file():
            from napari_heartbox.errors import ModelError

            raise ModelError(f'no model bundled yet: {f} not found')
        shutil.copyfile(f, dst / f.name)
    return dst / src.name, dst / card.name


def load_model(onnx_path=None, card_path=None, threads=None, batch=None):
    """The package's :class:`HeartModel` (raises ModelError when none is bundled)."""
    from napari_heartbox.model import HeartModel

    m = HeartModel(onnx_path, card_path, threads=threads, batch=batch)
    _ = m.session  # create it now, outside the timings
    return m


def _scores(model, volume):
    """Preprocess + inference as ``propose`` runs it: the slice schedule."""
    return model.scheduled_prob(volume.hu, volume.grid.spacing[0])[0]


def _post(model, prob, grid):
    from napari_heartbox.model.postprocess import sector_from_prob

    return sector_from_prob(prob, grid, model.postprocess, model_sha256=model.sha256)


def in_memory(model, volume, repeats: int) -> dict:
    """In-memory volume → Sector, by stage, alternating with the numpy baseline ``hu.max()``."""
    predict, post, total, base = [], [], [], []
    model.predict(volume.hu[: min(64, volume.shape[0])], volume.grid.spacing[0])  # warm-up
    sector = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        volume.hu.max()
        base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        prob = _scores(model, volume)
        t1 = time.perf_counter()
        sector = _post(model, prob, volume.grid)
        t2 = time.perf_counter()
        predict.append(t1 - t0)
        post.append(t2 - t1)
        total.append(t2 - t0)
    return {
        'stages_s': {
            'preprocess+inference': stats(predict),
            'post': stats(post),
            'total': stats(total),
        },
        'baseline_numpy_max_s': stats(base),
        'ratio_a': round(float(np.median(total)) / float(np.median(base)), 3),
        'found': bool(sector.found) if sector is not None else None,
    }


def count_files(folder: Path) -> int:
    """Files the loader will see (the synthetic folders hold only slices)."""
    return sum(1 for p in Path(folder).rglob('*') if p.is_file())


def _header_only_scan(files) -> None:
    import pydicom

    for f in files:
        pydicom.dcmread(f, stop_before_pixels=True)


def _timed_load(folder: Path, n_files: int):
    """One ``load_ct(folder)``; returns ``(volume, header_s, decode_s)``.

    The header pass ends when the loader's ``progress`` reports
    ``done == n_files`` (its documented contract); the rest is pixel decode.
    """
    from napari_heartbox.io import load_ct

    mark = {}

    def progress(done, total):
        if done >= n_files and 'hdr' not in mark:
            mark['hdr'] = time.perf_counter()

    t0 = time.perf_counter()
    vol = load_ct(folder, progress=progress)
    t1 = time.perf_counter()
    th = mark.get('hdr', t1)
    return vol, th - t0, t1 - th


def folder_to_sector(model, folder: Path, repeats: int) -> dict:
    """DICOM folder → Sector, alternating with a pydicom header-only scan.

    Two paths, both timed in each round: the propose path (``open_ct`` +
    ``propose``: the header pass, then the pixels of the scheduled slices only;
    what ``napari-heartbox propose FOLDER`` runs) and the whole-volume path by
    stage (``load_ct`` + scores + post; what napari does, since it displays the
    volume).
    """
    files = sorted(p for p in Path(folder).rglob('*') if p.is_file())
    n = len(files)
    rows = {
        k: []
        for k in (
            'discovery+header',
            'pixel decode',
            'preprocess+inference',
            'post',
            'total',
        )
    }
    from napari_heartbox.io import open_ct

    lazy = {k: [] for k in ('header pass', 'pixels+preprocess+inference+post', 'total')}
    base = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _header_only_scan(files)
        base.append(time.perf_counter() - t0)

        vol, t_hdr, t_dec = _timed_load(folder, n)
        t1 = time.perf_counter()
        prob = _scores(model, vol)
        t2 = time.perf_counter()
        _post(model, prob, vol.grid)
        t3 = time.perf_counter()
        rows['discovery+header'].append(t_hdr)
        rows['pixel decode'].append(t_dec)
        rows['preprocess+inference'].append(t2 - t1)
        rows['post'].append(t3 - t2)
        rows['total'].append(t_hdr + t_dec + t3 - t1)
        del vol, prob

        # the propose path (CLI): header pass, then only the scheduled slices' pixels
        t0 = time.perf_counter()
        series = open_ct(folder)
        t1 = time.perf_counter()
        model.propose(series)
        t2 = time.perf_counter()
        lazy['header pass'].append(t1 - t0)
        lazy['pixels+preprocess+inference+post'].append(t2 - t1)
        lazy['total'].append(t2 - t0)
        del series
    return {
        'stages_s': {k: stats(v) for k, v in rows.items()},
        'baseline_header_scan_s': stats(base),
        # (b): the propose path, which is what "folder -> Sector" runs (the CLI);
        # (b_whole): the whole volume loaded first, as napari does to display it
        'ratio_b': round(float(np.median(lazy['total'])) / float(np.median(base)), 3),
        'ratio_b_whole_volume': round(
            float(np.median(rows['total'])) / float(np.median(base)), 3
        ),
        'propose_path_s': {k: stats(v) for k, v in lazy.items()},
        'n_files': n,
    }


def load_only(folder: Path, repeats: int) -> dict:
    """``load_ct`` alone by stage (used when no model is bundled)."""
    files = sorted(p for p in Path(folder).rglob('*') if p.is_file())
    n = len(files)
    hdr, dec, base = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _header_only_scan(files)
        base.append(time.perf_counter() - t0)
        _vol, t_hdr, t_dec = _timed_load(folder, n)
        del _vol
        hdr.append(t_hdr)
        dec.append(t_dec)
    return {
        'stages_s': {'discovery+header': stats(hdr), 'pixel decode': stats(dec)},
        'baseline_header_scan_s': stats(base),
        'load_over_header_scan': round(
            float(np.median(np.add(hdr, dec))) / float(np.median(base)), 3
        ),
        'n_files': n,
    }


def seed_pipeline(model, seed_session, volume, repeats: int, chunk: int = 64) -> dict:
    """Ratio (d): our in-memory → Sector ÷ the seed-style pipeline, alternating.

    The seed-style pipeline runs its graph (bilinear resize + ~48k-param net)
    in chunks of ``chunk`` slices on one session (2 intra-op threads), then
    the demo's threshold + extent.
    """
    from ._seed import seed_box

    hu = volume.hu

    def seed_run():
        outs = [
            seed_session.run(None, {'hu': hu[i : i + chunk]})[0]
            for i in range(0, hu.shape[0], chunk)
        ]
        return seed_box(np.concatenate(outs))

    seed_run()
    ours, seed = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        seed_run()
        seed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _post(model, _scores(model, volume), volume.grid)
        ours.append(time.perf_counter() - t0)
    return {
        'seed_style_s': stats(seed),
        'ours_s': stats(ours),
        'ratio_d': round(float(np.median(ours)) / float(np.median(seed)), 3),
        'seed_chunk': chunk,
    }
