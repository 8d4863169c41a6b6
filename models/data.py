"""Training data: phantom volumes → the ONNX preprocessing → cached z-context cells.

Inputs are produced ONLY by running the preprocessing graph
(:func:`napari_heartbox.model.graph.build_preprocess_model`) in onnxruntime,
so training sees exactly what the shipped model sees. The label of a cell is
the fraction of its ``kH×kW`` pixels inside the phantom's heart mask (cells
defined as in ``docs/model.md``; padding pixels count as not heart).

Each training sample is one slice ``z`` with its z context: the cells of
slices ``z - k``, ``z``, ``z + k`` (``[3, 64, 64]``), ``k`` from
:func:`napari_heartbox.model.zschedule.context_offset` with :data:`SCHEDULE`
(the card's values), exactly as the runtime forms them.

Cache: ``models/cache/<generator fingerprint>/phantom_<seed>.npz``
(gitignored), one per case, holding a subset of slices (all heart-edge
slices plus a uniform sample and hard negatives).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_heartbox._training.cells import heart_fraction, prep_session, run_prep
from napari_heartbox.model.zschedule import context_offset, context_rows

__all__ = ['SCHEDULE', 'build_cache', 'choose_slices', 'heart_fraction', 'load_arrays', 'load_training_arrays',
           'make_case', 'prep_session', 'run_prep', 'save_arrays']

CACHE = Path(__file__).resolve().parent / 'cache'
SLICES_PER_CASE = 72  # uniform sample of each volume
EDGE_BAND_MM = 15.0  # plus every slice this close to the heart's top/bottom (capped)
EDGE_MAX_PER_SIDE = 12
# hard negatives: slices in a band just below the heart (liver dome, which in
# venous phase has the HU of myocardium) and just above it (the great-vessel
# mass), beyond the edge band: (near mm, far mm) from the heart's bottom / top
HARD_BELOW_MM = (15.0, 80.0)
HARD_ABOVE_MM = (15.0, 50.0)
HARD_MAX_PER_SIDE = 8
CACHE_VERSION = 4  # 4: z-context cells [S, 3, 64, 64]
# the slice schedule and z context written to the card's postprocess section
# (napari_heartbox/model/zschedule.py): score every 4 mm, then every slice
# around heart/no-heart transitions, 12 mm into the heart; each slice is seen
# with the slices ~8 mm below and above it
SCHEDULE = {'z_step_mm': 4.0, 'z_refine_mm': 12.0, 'z_context_mm': 8.0}
# experiment (models/EXPERIMENTS.md round 16): when set, every training volume is cut to
# its fixed-mm in-plane window (models/grid_window.py) before the
# preprocessing graph, so every cell is about this many mm; None: the shipped recipe
GRID_CELL_MM: float | None = None


def cache_suffix() -> str:
    """Cache folder-name suffix of the training data's window (empty for the shipped recipe)."""
    return '' if GRID_CELL_MM is None else f'-cell{GRID_CELL_MM:g}'


def windowed(hu: np.ndarray, mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """``(hu, mask)`` cut to their fixed-mm window when :data:`GRID_CELL_MM` is set."""
    if GRID_CELL_MM is None:
        return hu, mask
    from models.grid_window import PAD_HU, apply_window, plan_window

    w = plan_window(hu.shape[1:], spacing[1:], GRID_CELL_MM)
    return apply_window(hu, w, np.int16(PAD_HU)), apply_window(mask, w, False)


def choose_slices(label: np.ndarray, dz: float, rng: np.random.Generator) -> np.ndarray:
    """Slice indices kept for training: a uniform sample + heart-edge bands +
    hard-negative bands below and above the heart."""
    nz = label.shape[0]
    keep = set(np.unique(np.linspace(0, nz - 1, min(nz, SLICES_PER_CASE)).round().astype(int)).tolist())
    heart = np.flatnonzero(label.reshape(nz, -1).max(axis=1) > 0)
    if heart.size:
        band = max(1, int(round(EDGE_BAND_MM / dz)))
        for edge in (heart[0], heart[-1]):
            near = np.arange(max(0, edge - band), min(nz, edge + band + 1))
            if near.size > EDGE_MAX_PER_SIDE:
                near = np.sort(rng.choice(near, EDGE_MAX_PER_SIDE, replace=False))
            keep.update(near.tolist())
        for (near_mm, far_mm), sign, edge in ((HARD_BELOW_MM, -1, heart[0]), (HARD_ABOVE_MM, 1, heart[-1])):
            lo, hi = int(round(near_mm / dz)), max(int(round(near_mm / dz)) + 1, int(round(far_mm / dz)))
            cand = edge + sign * np.arange(lo, hi + 1)
            cand = cand[(cand >= 0) & (cand < nz)]
            if cand.size > HARD_MAX_PER_SIDE:
                cand = np.sort(rng.choice(cand, HARD_MAX_PER_SIDE, replace=False))
            keep.update(cand.tolist())
    return np.array(sorted(keep), dtype=np.int64)


def make_case(seed: int, sess=None) -> dict:
    """Generate phantom ``seed`` and return its cached training arrays."""
    from napari_heartbox.phantom import make_phantom

    sess = sess or prep_session()
    case = make_phantom(seed)
    vol = case.volume
    hu, mask = windowed(vol.hu, np.asarray(case.heart_mask, bool), vol.spacing)
    label = heart_fraction(mask)
    rng = np.random.default_rng(seed + 7_000_000)
    idx = choose_slices(label, vol.spacing[0], rng)
    rows = context_rows(idx, vol.shape[0], context_offset(vol.spacing[0], SCHEDULE))
    return {
        'context_cells': run_prep(sess, hu, rows),
        'label': label[idx].astype(np.float16),
        'z_index': idx,
        'context_rows': rows,
        'shape': np.array(hu.shape),
        'spacing': np.array(vol.spacing),
        'has_heart': np.array(bool(case.heart_box.found) if case.heart_box is not None else False),
        'version': np.array(CACHE_VERSION),
    }


def generator_fingerprint() -> str:
    """Short hash of the phantom generator's source (cache key: new code → new data)."""
    import hashlib

    import napari_heartbox.phantom as ph

    h = hashlib.sha256(str(CACHE_VERSION).encode())
    for f in sorted(Path(ph.__file__).parent.glob('*.py')):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


_FP = None


def cache_dir() -> Path:
    """Cache folder of the current generator code (fixed once per process)."""
    global _FP
    if _FP is None:
        _FP = generator_fingerprint()
    return CACHE / f'{_FP}{cache_suffix()}'


def cache_path(seed: int, folder: Path | None = None) -> Path:
    return (folder or cache_dir()) / f'phantom_{seed}.npz'


def _build_one(job) -> str:
    seed, folder = job
    p = cache_path(seed, folder)
    if p.is_file():
        try:
            with np.load(p) as d:
                if int(d['version']) == CACHE_VERSION:
                    return 'cached'
        except Exception:  # noqa: BLE001 - a broken cache file is rebuilt
            pass
    save_arrays(p, make_case(seed, _worker_sess()))
    return 'built'


def save_arrays(path: Path, arrays: dict) -> None:
    """Write one case's training arrays atomically (a killed build leaves no half file)."""
    tmp = path.with_suffix('.tmp.npz')
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


_SESS = None


def _worker_sess():
    global _SESS
    if _SESS is None:
        _SESS = prep_session()
    return _SESS


def build_cache(seeds, workers: int = 2, log=print) -> None:
    """Generate (or reuse) the cache files of ``seeds`` with a process pool."""
    from concurrent.futures import ProcessPoolExecutor

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    todo = [(s, folder) for s in seeds if not cache_path(s, folder).is_file()]
    log(f'phantom cache {folder.name}: {len(seeds) - len(todo)} cached, {len(todo)} to build')
    if not todo:
        return
    if workers <= 1:
        for i, s in enumerate(todo):
            _build_one(s)
            log(f'  built {i + 1}/{len(todo)}')
        return
    with ProcessPoolExecutor(workers) as pool:
        for i, _ in enumerate(pool.map(_build_one, todo, chunksize=4)):
            if (i + 1) % 10 == 0 or i + 1 == len(todo):
                log(f'  built {i + 1}/{len(todo)}')


def load_training_arrays(seeds) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the cached slices of ``seeds``: ``(context_cells [S,3,64,64], label [S,64,64])``."""
    return load_arrays(cache_path(s) for s in seeds)


def load_arrays(paths) -> tuple[np.ndarray, np.ndarray]:
    """``(context_cells [S,3,64,64], label [S,64,64])`` of the given cache files, concatenated."""
    xs, ys = [], []
    for p in paths:
        with np.load(p) as d:
            xs.append(d['context_cells'])
            ys.append(d['label'])
    return np.concatenate(xs), np.concatenate(ys)
