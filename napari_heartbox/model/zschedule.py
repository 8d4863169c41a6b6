"""Coarse-to-fine z schedule: on which slices the per-slice model runs.

The model scores every slice independently, and the heart is a tall, smooth
object (80-150 mm), so scoring every slice of a thin-slice scan is wasted
work. The schedule, in four steps (``docs/model.md``, "Slice schedule"):

1. **Coarse.** Run the model on every ``step``-th slice, ``z = 0, step,
   2·step, …``, plus the last slice ``Z-1``, where
   ``step = max(1, floor(z_step_mm / dz + 1e-6))``. A slice is *positive*
   when one of its valid (non-padding) cells has ``prob >= threshold``
   (float32 comparison, as in the post-processing).
2. **Refine.** For every pair of consecutive coarse slices ``a < b`` whose
   positivity differs (where a face of the heart, or of a stray blob, lies),
   run the model on the slices strictly between them, and on the
   ``reach = round(z_refine_mm / dz)`` slices beyond them on the positive
   side (``b+1 … b+reach`` when ``b`` is the positive one, ``a-reach … a-1``
   when ``a`` is), clipped to the volume. With ``z_fine_mm`` in the card and
   thin slices, only the slices of the *fine grid* are taken
   (``z % fine == 0``, ``fine`` = the largest divisor of ``step`` with
   ``fine·dz <= z_fine_mm``, :func:`fine_step`; the reach's far end rounded
   outwards to that grid), so the refinement costs what the heart's faces
   measure in mm, not in slices; without it (or when ``fine`` is 1) every
   slice of these ranges is taken.
3. **Final** (only when ``fine > 1``). Between every two consecutive scored
   slices whose positivity differs (they are at most ``fine`` apart now),
   run every slice (:func:`final_slices`): a face is placed at full slice
   resolution.
4. **Fill.** Every slice that was not run takes the probabilities of the
   nearest slice that was (ties go to the lower slice), and the unchanged
   post-processing (:func:`~napari_heartbox.model.postprocess.sector_from_prob`)
   runs on the filled ``[Z, 64, 64]`` stack. ``propose`` never builds that
   stack: it passes the scored slices with the number of slices each one
   fills (:func:`fill_runs`, ``z_len``), which gives the same sector bit for
   bit at a cost that grows with the slices scored.

With ``z_step_mm`` absent or 0 (or ``dz >= z_step_mm``) every slice is run
and the result is that of the plain per-slice model.

**z context.** The network scores slice ``z`` from three slices, ``z - k``,
``z`` and ``z + k`` (clamped to ``[0, Z-1]``), where
``k = step · max(1, floor(z_context_mm / (step · dz) + 0.5))``: the offset
nearest ``z_context_mm`` that is a whole number of coarse steps, so the
context of a coarse slice is made of coarse slices (:func:`context_offset`,
:func:`context_rows`). Scoring a set of slices therefore reads the union of
their context rows (:func:`gather_rows`). The browser port
(``web/app/zschedule.js``) implements the same steps; both runtimes must
choose the same slices. The fine grid and the context offset are both
multiples of ``fine``, so a fine slice's context slices are fine slices too.

Conventions: slice index z along the volume's axis 0 (0 = most inferior),
``dz`` in mm; all index arrays are sorted ascending, int64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    'z_step',
    'fine_step',
    'final_slices',
    'coarse_slices',
    'slice_positive',
    'refine_reach',
    'refine_slices',
    'fill_nearest',
    'fill_runs',
    'scheduled_prob',
    'scheduled_scores',
    'context_offset',
    'context_rows',
    'gather_rows',
]


def z_step(dz: float, config: dict) -> int:
    """Slices between coarse samples: ``max(1, floor(z_step_mm / dz + 1e-6))``.

    Parameters
    ----------
    dz : float
        Slice spacing in mm.
    config : dict
        The card's ``postprocess`` section; ``z_step_mm`` absent or 0 → 1.
    """
    step_mm = float(config.get('z_step_mm') or 0.0)
    if step_mm <= 0 or not dz or dz <= 0:
        return 1
    return max(1, math.floor(step_mm / float(dz) + 1e-6))


def context_offset(dz: float, config: dict) -> int:
    """Slices between a scored slice and each of its two context slices.

    ``k = step · max(1, floor(z_context_mm / (step · dz) + 0.5))`` with
    ``step = z_step(dz, config)``: the whole number of coarse steps nearest
    ``z_context_mm`` (at least one), so coarse slices have coarse context.
    ``z_context_mm`` absent or 0 → 0: a per-slice model, each slice scored
    alone (its context row is ``(z, z, z)``). ``dz`` unknown → 1 slice.

    Parameters
    ----------
    dz : float
        Slice spacing in mm.
    config : dict
        The card's ``postprocess`` section.
    """
    step = z_step(dz, config)
    mm = float(config.get('z_context_mm') or 0.0)
    if mm <= 0:
        return 0
    if not dz or dz <= 0:
        return 1
    return step * max(1, math.floor(mm / (step * float(dz)) + 0.5))


def context_rows(slices: np.ndarray, nz: int, k: int) -> np.ndarray:
    """The network's input rows: ``[z - k, z, z + k]`` per slice, clamped to the volume.

    Parameters
    ----------
    slices : numpy.ndarray of int
        Slices to score.
    nz : int
        Number of slices of the volume.
    k : int
        :func:`context_offset`.

    Returns
    -------
    numpy.ndarray
        int64 ``(len(slices), 3)``: (lower, centre, upper) slice indices.
    """
    z = np.asarray(slices, np.int64).reshape(-1)
    return np.stack([np.clip(z - k, 0, nz - 1), z, np.clip(z + k, 0, nz - 1)], axis=1)


def gather_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slices a set of context rows reads, and the rows in terms of them.

    Returns ``(needed, local)``: ``needed`` = sorted unique slice indices of
    ``rows``; ``local`` = ``rows`` as positions in ``needed`` (the model's
    ``context`` input when ``hu = volume[needed]``).
    """
    rows = np.asarray(rows, np.int64)
    needed = np.unique(rows)
    return needed, np.searchsorted(needed, rows).astype(np.int64)


def coarse_slices(nz: int, step: int) -> np.ndarray:
    """``0, step, 2·step, …`` and the last slice ``nz-1`` (sorted, unique)."""
    idx = np.arange(0, nz, max(1, int(step)), dtype=np.int64)
    if nz > 0 and idx[-1] != nz - 1:
        idx = np.append(idx, np.int64(nz - 1))
    return idx


def slice_positive(
    prob: np.ndarray, rows_valid: int, cols_valid: int, threshold: float
) -> np.ndarray:
    """Per slice of ``prob [n, 64, 64]``: does a valid cell reach the threshold?"""
    valid = np.asarray(prob)[:, :rows_valid, :cols_valid]
    return (valid >= np.float32(threshold)).any(axis=(1, 2))


def refine_reach(dz: float, config: dict) -> int:
    """Slices refined beyond a transition, inside the heart: ``round(z_refine_mm / dz)``.

    Rounding is ``floor(v + 0.5)``; 0 when ``z_refine_mm`` is absent.
    """
    mm = float(config.get('z_refine_mm') or 0.0)
    if mm <= 0 or not dz or dz <= 0:
        return 0
    return int(math.floor(mm / float(dz) + 0.5))


def _largest_divisor_within(n: int, dz: float, mm: float) -> int:
    """The largest divisor ``d`` of ``n`` with ``d·dz <= mm`` (at least 1)."""
    best = 1
    for d in range(1, int(n) + 1):
        if n % d == 0 and d * dz <= mm + 1e-6:
            best = d
    return best


def fine_step(dz: float, config: dict) -> int:
    """Slices between the samples of the refinement around a face.

    The largest divisor ``f`` of :func:`z_step` with ``f·dz <= z_fine_mm``
    (1 when ``z_fine_mm`` is absent: the refinement then scores every slice,
    as before this setting existed). The fine grid contains the coarse grid,
    and the context offset is a multiple of ``f``, so a fine slice's context
    slices are on the fine grid as well.
    """
    mm = float(config.get('z_fine_mm') or 0.0)
    if mm <= 0 or not dz or dz <= 0:
        return 1
    return _largest_divisor_within(z_step(dz, config), float(dz), mm)


def final_slices(ran: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The last refinement: every slice between two consecutive scored slices of
    differing positivity (sorted, unique; empty when they are all neighbours).

    Parameters
    ----------
    ran : numpy.ndarray of int
        Sorted slices scored so far.
    positive : numpy.ndarray of bool
        Their positivity.
    """
    ran = np.asarray(ran, np.int64)
    positive = np.asarray(positive, bool)
    parts = [
        np.arange(int(ran[k]) + 1, int(ran[k + 1]), dtype=np.int64)
        for k in np.flatnonzero(positive[1:] != positive[:-1]).tolist()
        if ran[k + 1] - ran[k] > 1
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def refine_slices(
    coarse: np.ndarray, positive: np.ndarray, nz: int, reach: int = 0, fine: int = 1
) -> np.ndarray:
    """Slices to score after the coarse pass (sorted, unique, not coarse).

    Parameters
    ----------
    coarse : numpy.ndarray of int
        The coarse slices (sorted).
    positive : numpy.ndarray of bool
        Their positivity.
    nz : int
        Number of slices of the volume.
    reach : int
        Slices refined beyond each transition on its positive side.
    fine : int
        Only slices on the fine grid (``z % fine == 0``) are taken
        (:func:`fine_step`; 1 = every slice); the reach beyond ``b`` (below
        ``a``) is rounded up (down) to that grid.
    """
    coarse = np.asarray(coarse, np.int64)
    positive = np.asarray(positive, bool)
    want = np.zeros(nz, bool)
    f = max(1, int(fine))
    for k in np.flatnonzero(positive[1:] != positive[:-1]).tolist():
        a, b = int(coarse[k]), int(coarse[k + 1])
        # the reach ends on the fine grid, rounded outwards (up above b, down below a)
        if positive[k + 1]:
            lo, hi = a + 1, min(-(-(b + reach) // f) * f, nz - 1)
        else:
            lo, hi = max((a - reach) // f * f, 0), b - 1
        want[lo : hi + 1] = True
    if f > 1:
        want[np.arange(nz) % f != 0] = False
    want[coarse] = False
    return np.flatnonzero(want).astype(np.int64)


def fill_nearest(nz: int, ran: np.ndarray, prob_ran: np.ndarray) -> np.ndarray:
    """Full ``[nz, 64, 64]`` stack: each slice copies the nearest slice that ran.

    Parameters
    ----------
    nz : int
        Number of slices of the volume.
    ran : numpy.ndarray of int
        Sorted indices of the slices that ran (at least one).
    prob_ran : numpy.ndarray, float32, shape (len(ran), 64, 64)
        Their probabilities, in the same order.

    Notes
    -----
    Ties (a slice midway between two slices that ran) go to the lower slice.
    When every slice ran, ``prob_ran`` itself is returned (no copy).
    """
    ran = np.asarray(ran, np.int64)
    if ran.size == nz:  # sorted and unique: every slice of the volume ran
        return np.asarray(prob_ran)
    z = np.arange(nz, dtype=np.int64)
    hi = np.clip(np.searchsorted(ran, z, side='left'), 0, ran.size - 1)
    lo = np.clip(hi - 1, 0, ran.size - 1)
    take_lo = np.abs(z - ran[lo]) <= np.abs(ran[hi] - z)
    src = np.where(take_lo, lo, hi)
    return np.asarray(prob_ran)[src]


def fill_runs(nz: int, ran: np.ndarray) -> np.ndarray:
    """How many slices of the volume copy each slice that ran, in :func:`fill_nearest`.

    ``np.repeat(prob_ran, fill_runs(nz, ran), axis=0)`` equals
    ``fill_nearest(nz, ran, prob_ran)``: slice ``ran[i]`` stands for the
    slices from just above the midpoint to ``ran[i-1]`` up to and including
    the midpoint to ``ran[i+1]`` (ties go to the lower slice), the first
    one from slice 0 and the last one up to slice ``nz - 1``.

    Returns
    -------
    numpy.ndarray of int64, shape (len(ran),)
        Positive counts summing to ``nz``.
    """
    ran = np.asarray(ran, np.int64)
    ends = np.append((ran[:-1] + ran[1:]) // 2 + 1, nz)  # half-open end of each run
    return np.diff(np.concatenate([[0], ends])).astype(np.int64)


def scheduled_prob(
    run: Callable[[np.ndarray], np.ndarray],
    nz: int,
    dz: float,
    rows_valid: int,
    cols_valid: int,
    config: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """The filled stack of :func:`scheduled_scores`: ``(prob [nz, 64, 64], ran)``."""
    ran, p_ran = scheduled_scores(run, nz, dz, rows_valid, cols_valid, config)
    return fill_nearest(nz, ran, p_ran), ran


def scheduled_scores(
    run: Callable[[np.ndarray], np.ndarray],
    nz: int,
    dz: float,
    rows_valid: int,
    cols_valid: int,
    config: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the schedule with ``run(indices) -> prob [len(indices), 64, 64]``.

    Parameters
    ----------
    run : callable
        Scores the given sorted slice indices.
    nz, dz : int, float
        Number of slices and slice spacing (mm).
    rows_valid, cols_valid : int
        Valid (non-padding) cell rows and columns (see ``postprocess``).
    config : dict
        The card's ``postprocess`` section (``threshold``, ``z_step_mm``).

    Returns
    -------
    ran : numpy.ndarray of int64
        Sorted indices of the slices the model ran on.
    prob_ran : numpy.ndarray, float32, shape (len(ran), 64, 64)
        Their probabilities: with ``z_len=fill_runs(nz, ran)`` the run-length
        form of the filled stack, for
        :func:`~napari_heartbox.model.postprocess.sector_from_prob`.
    """
    step = z_step(dz, config)
    if step <= 1:
        ran = np.arange(nz, dtype=np.int64)
        return ran, run(ran)
    thr = config['threshold']
    coarse = coarse_slices(nz, step)
    ran, p_ran = coarse, run(coarse)
    pos = slice_positive(p_ran, rows_valid, cols_valid, thr)
    fine = fine_step(dz, config)

    def add(extra: np.ndarray) -> None:
        nonlocal ran, p_ran, pos
        p = run(extra)
        order = np.argsort(np.concatenate([ran, extra]), kind='stable')
        ran = np.concatenate([ran, extra])[order]
        p_ran = np.concatenate([p_ran, p])[order]
        pos = np.concatenate([pos, slice_positive(p, rows_valid, cols_valid, thr)])[order]

    extra = refine_slices(coarse, pos, nz, refine_reach(dz, config), fine)
    if extra.size:
        add(extra)
        if fine > 1:  # where the face lies between two fine samples: every slice
            last = final_slices(ran, pos)
            if last.size:
                add(last)
    return ran, p_ran
