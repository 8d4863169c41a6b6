"""Turn the model's per-cell heart probabilities into a :class:`Sector`.

This module is the single definition of the post-processing; the browser
port (JavaScript) implements exactly the algorithm written in
``docs/model.md`` ("Post-processing"), which this code follows step by step.

Conventions
-----------
* ``prob`` is ``float32 [N, 64, 64]``: one 64×64 map per slice, in the
  volume's ``(z, y, x)`` order (z index 0 = most inferior slice).
* Cell ``(r, c)`` of a slice of ``H×W`` pixels covers pixel rows
  ``[r·kH, (r+1)·kH)`` and columns ``[c·kW, (c+1)·kW)`` with
  ``kH = ceil(H/64)``, ``kW = ceil(W/64)``. Cells that start at or beyond the
  image (``r·kH ≥ H`` or ``c·kW ≥ W``) are padding and are ignored.
* Edge coordinates: pixel ``i`` spans ``[i, i+1)`` on the edge axis; so a
  half-open voxel range ``[a, b)`` has its faces at edge coordinates ``a`` and
  ``b``. The same for cells (cell ``c`` spans ``[c, c+1)``) and slices.
* All arithmetic after reading ``prob`` is float64, in the order written
  below; rounding to voxel edges is ``floor(v + 0.5)``.

Pure numpy (no scipy) so that the algorithm stays small enough to port.
"""

from __future__ import annotations

import math

import numpy as np

from ..grid import Grid
from ..sector import Sector

__all__ = ['CELLS', 'cell_size', 'heart_component', 'valid_cells', 'largest_component', 'sector_from_prob']

CELLS = 64  # the model's output grid is CELLS × CELLS per slice


def cell_size(h: int, w: int) -> tuple[int, int]:
    """Pixels per cell ``(kH, kW) = (ceil(H/64), ceil(W/64))``."""
    return -(-int(h) // CELLS), -(-int(w) // CELLS)


def valid_cells(h: int, w: int) -> tuple[int, int]:
    """Cell rows and columns that start inside an ``H×W`` image (the rest is padding)."""
    kh, kw = cell_size(h, w)
    return -(-int(h) // kh), -(-int(w) // kw)


# --------------------------------------------------------------------------
# 3D connected components (6-connectivity) on run-length encoded rows
# --------------------------------------------------------------------------
def _runs(mask: np.ndarray):
    """Runs of True along the last axis, in raster order ``(z, r, c0)``.

    Returns ``row`` (flat ``z*R + r``), ``c0``, ``c1`` (half-open) arrays.
    """
    n, rr, cc = mask.shape
    flat = mask.reshape(n * rr, cc)
    rows = np.flatnonzero(flat.any(axis=1))  # only rows with a True cell
    padded = np.zeros((rows.size, cc + 2), np.int8)
    padded[:, 1:-1] = flat[rows]
    d = np.diff(padded, axis=1)
    r_idx, c0 = np.nonzero(d == 1)  # row-major → raster order
    _, c1 = np.nonzero(d == -1)
    return rows[r_idx].astype(np.int64), c0.astype(np.int64), c1.astype(np.int64)


def _adjacent_pairs(row, c0, c1, rows_per_slice: int, ncols: int):
    """Pairs ``(i, j)`` of runs that touch face-to-face (6-connectivity).

    Two runs touch when they lie in rows ``(z, r)`` and ``(z, r+1)`` or
    ``(z, r)`` and ``(z+1, r)`` and their column intervals overlap.
    """
    stride = ncols + 1
    start_key = row * stride + c0
    end_key = row * stride + c1
    pairs = []
    r = row % rows_per_slice
    for offset, ok in ((1, r + 1 < rows_per_slice), (rows_per_slice, np.ones_like(r, bool))):
        src = np.nonzero(ok)[0]
        q = row[src] + offset
        # runs j in row q with c1_j > c0_i and c0_j < c1_i form a contiguous block
        lo = np.searchsorted(end_key, q * stride + c0[src], side='right')
        hi = np.searchsorted(start_key, q * stride + c1[src], side='left')
        cnt = np.maximum(hi - lo, 0)
        if cnt.sum() == 0:
            continue
        i = np.repeat(src, cnt)
        first = np.repeat(lo, cnt)
        within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pairs.append(np.stack([i, first + within], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.concatenate(pairs)


def _connected_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each of ``n`` nodes with the smallest node index of its component.

    ``(a[k], b[k])`` are the edges. Vectorised hooking + pointer jumping
    (min-label propagation); converges in a few passes for blob-like graphs.
    """
    lab = np.arange(n, dtype=np.int64)
    if a.size == 0:
        return lab
    while True:
        la, lb = lab[a], lab[b]
        m = np.minimum(la, lb)
        new = lab.copy()
        np.minimum.at(new, la, m)  # hook the larger label onto the smaller
        np.minimum.at(new, lb, m)
        while True:  # pointer jumping: every node points at its label's label
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, lab):
            return lab
        lab = new


def _components(mask: np.ndarray, z_len: np.ndarray | None = None):
    """Runs of ``mask`` and their 6-connected component.

    Returns ``row, c0, c1`` (see :func:`_runs`), ``roots`` (per run: the index
    of its component's first run, i.e. the first cell in raster order) and
    ``size`` (cells per root index, each plane counted ``z_len[z]`` times;
    0 for indices that are not roots).
    """
    n, rr, cc = mask.shape
    row, c0, c1 = _runs(mask)
    if row.size == 0:
        return row, c0, c1, row, np.zeros(0)
    pairs = _adjacent_pairs(row, c0, c1, rr, cc)
    roots = _connected_labels(row.size, pairs[:, 0], pairs[:, 1])
    cells = c1 - c0
    if z_len is not None:
        cells = cells * np.asarray(z_len, np.int64)[row // rr]
    size = np.bincount(roots, weights=cells, minlength=row.size)
    return row, c0, c1, roots, size


def _z_runs(z_len, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(z_len, z_start)`` int64: slices per plane (default 1) and each plane's first slice."""
    z_len = np.ones(n, np.int64) if z_len is None else np.asarray(z_len, np.int64).reshape(-1)
    if z_len.shape != (n,) or (n and int(z_len.min()) < 1):
        raise ValueError(f'z_len must hold {n} positive slice counts, got {z_len.shape} {z_len[:5]}')
    return z_len, np.concatenate([[0], np.cumsum(z_len)[:-1]]).astype(np.int64)


def _paint(shape, row, c0, c1, keep_runs) -> np.ndarray:
    out = np.zeros(shape, bool)
    flat = out.reshape(shape[0] * shape[1], shape[2])
    for k in keep_runs.tolist():
        flat[row[k], c0[k] : c1[k]] = True
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean ``(N, R, C)`` array.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (N, R, C)

    Returns
    -------
    numpy.ndarray of bool, shape (N, R, C)
        Only the cells of the component with the most cells. Ties go to the
        component whose first cell in raster order ``(z, r, c)`` comes first.
        All False if ``mask`` has no True cell.
    """
    return heart_component(mask)


def heart_component(mask: np.ndarray, dz: float = 1.0, join_fraction: float | None = None,
                    join_gap_mm: float = 0.0, z_len: np.ndarray | None = None) -> np.ndarray:
    """The largest 6-connected component, plus the pieces of a heart split along z.

    A high threshold can break the heart's cells in two at a less certain
    slab (``docs/model.md`` §4 step 2). Components are visited by size
    (largest first; ties: first cell in raster order first). The largest is
    kept; each other one is kept too when it has at least ``join_fraction``
    times the largest's cells, its cell rows and columns lie inside those of
    the kept cells (its in-plane footprint is within the heart's: the rest of
    a split heart is, the liver dome or the chest wall beside it is not), and
    the z gap between the two slice ranges is at most ``join_gap_mm`` (gap =
    empty slices between them × ``dz``; 0 when they touch or overlap). The
    kept z range grows with each kept component.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (N, R, C)
        Positive cells, z first.
    dz : float
        Slice spacing (mm).
    join_fraction : float, optional
        None (default): only the largest component.
    join_gap_mm : float
        Largest z gap that is re-joined (mm).
    z_len : numpy.ndarray of int, optional
        Slices of the volume each plane of ``mask`` stands for (see
        :func:`sector_from_prob`); default one each.
    """
    mask = np.asarray(mask, bool)
    rr = mask.shape[1]
    z_len, z_start = _z_runs(z_len, mask.shape[0])
    row, c0, c1, roots, size = _components(mask, z_len)
    if row.size == 0:
        return np.zeros_like(mask)
    comp_ids = np.flatnonzero(size > 0)
    # visiting order: size descending, then root (= raster order of the first cell)
    order = comp_ids[np.lexsort((comp_ids, -size[comp_ids]))]
    best = int(order[0])
    keep = [best]
    if join_fraction is not None and order.size > 1:
        z, r = row // rr, row % rr

        def extent(ids):  # z as slices of the volume (half-open), rows, columns
            sel = np.isin(roots, ids)
            z_hi = int(z[sel].max())
            return [int(z_start[z[sel].min()]), int(z_start[z_hi] + z_len[z_hi]),
                    int(r[sel].min()), int(r[sel].max()) + 1, int(c0[sel].min()), int(c1[sel].max())]

        k = extent([best])
        for cid in order[1:].tolist():
            if size[cid] < join_fraction * size[best]:
                break  # the rest are smaller still
            e = extent([cid])
            # half-open ranges: rows [e2, e3) within [k2, k3), columns [e4, e5) within [k4, k5)
            inside = k[2] <= e[2] and e[3] <= k[3] and k[4] <= e[4] and e[5] <= k[5]
            gap = max(e[0] - k[1], k[0] - e[1], 0)  # empty slices between the z ranges
            if inside and gap * dz <= join_gap_mm:
                keep.append(cid)
                k[0], k[1] = min(k[0], e[0]), max(k[1], e[1])  # inside in-plane: only z grows
    return _paint(mask.shape, row, c0, c1, np.flatnonzero(np.isin(roots, keep)))


# --------------------------------------------------------------------------
# sub-cell faces
# --------------------------------------------------------------------------
def _face_probs(prob, comp, axis: int, side: str, ncells_valid: int):
    """``(p_in, p_out)`` for one in-plane face of the component.

    ``p_in`` = max ``prob`` over the component's cells in its outermost
    column (axis=2) or row (axis=1) on ``side``; ``p_out`` = max ``prob``
    over the cells one step further out, next to those cells (0 when that
    step leaves the valid cells).
    """
    proj = comp.any(axis=(0, 3 - axis))  # axis 1 → project over (0, 2); 2 → (0, 1)
    idx = np.flatnonzero(proj)
    edge = int(idx[0]) if side == 'lo' else int(idx[-1])
    step = -1 if side == 'lo' else 1
    take = [slice(None)] * 3
    take[axis] = edge
    face = comp[tuple(take)]  # cells of the component on its outermost layer
    p_in = float(prob[tuple(take)][face].max())
    nb = edge + step
    if 0 <= nb < ncells_valid:
        take[axis] = nb
        p_out = float(prob[tuple(take)][face].max())
    else:
        p_out = 0.0
    return edge, p_in, p_out


def _to_range(lo_edge: float, hi_edge: float, n: int) -> tuple[int, int]:
    """Round edge coordinates to a half-open voxel range inside ``[0, n)``."""
    a = min(max(math.floor(lo_edge + 0.5), 0), n)
    b = min(max(math.floor(hi_edge + 0.5), 0), n)
    if b <= a:  # never empty: keep one voxel
        if a >= n:
            a = n - 1
        b = a + 1
    return int(a), int(b)


def confidence_from_features(mean_prob: float, volume_ml: float, params: dict) -> float:
    """Calibrated confidence ``sigmoid(bias + w1·mean_prob + w2·ln(volume_ml))``.

    Parameters
    ----------
    mean_prob : float
        Mean probability over the component's cells.
    volume_ml : float
        Component volume in ml (cells × cell volume).
    params : dict
        ``{"bias", "w_mean_prob", "w_log_volume_ml"}`` (fitted on held-out
        phantoms; stored in the model card).
    """
    z = (
        float(params['bias'])
        + float(params['w_mean_prob']) * mean_prob
        + float(params['w_log_volume_ml']) * math.log(max(volume_ml, 1e-3))
    )
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def component_features(prob: np.ndarray, grid: Grid, config: dict,
                       z_len: np.ndarray | None = None) -> dict | None:
    """Threshold, keep the heart's component (:func:`heart_component`), and measure it.

    ``z_len`` as in :func:`sector_from_prob`. Returns None when no cell
    reaches the threshold; otherwise a dict with ``comp`` (bool mask, one
    plane per plane of ``prob``), ``cells`` (cells of the volume),
    ``volume_ml``, ``mean_prob``, and ``z_len``/``z_start`` (int64 per plane).
    """
    prob = np.asarray(prob)
    nz, hh, ww = grid.shape
    planes = nz if z_len is None else np.asarray(z_len).size
    if prob.ndim != 3 or prob.shape[1:] != (CELLS, CELLS) or prob.shape[0] != planes:
        raise ValueError(
            f'prob must have shape ({planes}, {CELLS}, {CELLS}) for this grid, got {prob.shape}'
        )
    z_len, z_start = _z_runs(z_len, planes)
    if int(z_len.sum()) != nz:
        raise ValueError(f"z_len must sum to the grid's {nz} slices, got {int(z_len.sum())}")
    kh, kw = cell_size(hh, ww)
    rows_valid, cols_valid = valid_cells(hh, ww)
    thr = np.float32(config['threshold'])
    mask = prob >= thr  # compare in float32; ties (== threshold) count as heart
    mask[:, rows_valid:, :] = False  # padding cells
    mask[:, :, cols_valid:] = False
    join = config.get('join_fraction')
    comp = heart_component(mask, float(grid.spacing[0]), None if join is None else float(join),
                           float(config.get('join_gap_mm', 0.0)), z_len)
    per_plane = comp.sum(axis=(1, 2))
    cells = int((per_plane * z_len).sum())
    if cells == 0:
        return None
    # mean over the volume's cells: each plane's sum weighted by its slices. Every
    # prob >= threshold >= 2**-8 is a float32 multiple of 2**-32, so with fewer
    # than 2**21 cells every partial sum is exact in float64, in any order: the
    # run-length stack gives the expanded stack's value bit for bit.
    plane_sum = np.where(comp, prob, 0).astype(np.float64).sum(axis=(1, 2))
    dz, dy, dx = grid.spacing
    cell_ml = dz * (kh * dy) * (kw * dx) / 1000.0
    return {
        'comp': comp,
        'cells': cells,
        'volume_ml': cells * cell_ml,
        'mean_prob': float((plane_sum * z_len).sum() / cells),
        'z_len': z_len,
        'z_start': z_start,
        'rows_valid': rows_valid,
        'cols_valid': cols_valid,
        'kh': kh,
        'kw': kw,
    }


#: a scan shorter than this along z holds no heart box to report (the heart is
#: 80-150 mm tall): a folder of junk with one real slice must not get a 1-slice box
MIN_Z_EXTENT_MM = 20.0


def short_scan_note(grid: Grid) -> str:
    """The ``note`` of a scan too short for a heart box (same text in the browser)."""
    n = grid.shape[0]
    return (f'the scan covers only {grid.shape[0] * grid.spacing[0]:.4g} mm along z '
            f'({n} slice{"s" if n != 1 else ""}); a heart box needs at least {MIN_Z_EXTENT_MM:g} mm')


def sector_from_prob(
    prob: np.ndarray,
    grid: Grid,
    config: dict,
    *,
    margin_mm: float | None = None,
    series_uid: str | None = None,
    model_sha256: str | None = None,
    z_len: np.ndarray | None = None,
) -> Sector:
    """Build the heart :class:`Sector` from per-cell probabilities.

    Parameters
    ----------
    prob : numpy.ndarray, float32, shape (Z, 64, 64)
        The model output ``prob`` for every slice of the volume, in z order
        (``(len(z_len), 64, 64)`` with ``z_len``).
    grid : Grid
        The volume's grid (``shape[0] == Z``).
    config : dict
        The model card's ``postprocess`` section: ``threshold``,
        ``min_heart_volume_ml``, ``min_confidence`` (optional, default 0),
        ``default_margin_mm`` and ``confidence`` (``bias``, ``w_mean_prob``,
        ``w_log_volume_ml``).
    margin_mm : float, optional
        Safety margin added on every face (mm); default
        ``config['default_margin_mm']``.
    series_uid, model_sha256 : str, optional
        Copied into the sector.
    z_len : numpy.ndarray of int, optional
        Run-length form of a stack whose consecutive slices repeat (what the
        slice schedule's fill makes): plane ``i`` of ``prob`` stands for
        ``z_len[i] >= 1`` consecutive slices of the volume (``sum(z_len) ==
        Z``). The sector is the one of the expanded stack
        ``np.repeat(prob, z_len, axis=0)``, bit for bit, at a cost that
        grows with the planes instead of the slices. Default: one slice per
        plane.

    Returns
    -------
    Sector
        ``found=False`` (confidence as computed, 0 with no candidate) when
        the heart's component is under ``min_heart_volume_ml`` or its
        confidence is under ``min_confidence``; ``found=False`` with a
        ``note`` when the scan is shorter than :data:`MIN_Z_EXTENT_MM` along z.
    """
    kw_sector = {'series_uid': series_uid, 'model_sha256': model_sha256}
    extent = grid.shape[0] * grid.spacing[0]
    if extent < MIN_Z_EXTENT_MM:
        return Sector.not_found(grid, confidence=0.0, note=short_scan_note(grid), **kw_sector)
    feats = component_features(prob, grid, config, z_len)
    if feats is None:
        return Sector.not_found(grid, confidence=0.0, **kw_sector)
    conf = confidence_from_features(feats['mean_prob'], feats['volume_ml'], config['confidence'])
    if feats['volume_ml'] < float(config['min_heart_volume_ml']) or conf < float(
        config.get('min_confidence', 0.0)
    ):
        return Sector.not_found(grid, confidence=conf, **kw_sector)

    comp = feats['comp']
    prob = np.asarray(prob)
    zs = np.flatnonzero(comp.any(axis=(1, 2)))  # planes of the component
    # work on the component's planes only (same result, less memory traffic)
    offset = int(zs[0])
    comp = comp[offset : zs[-1] + 1]
    prob = prob[offset : zs[-1] + 1]
    z_first = int(feats['z_start'][zs[0]])  # its slices of the volume, half-open
    z_end = int(feats['z_start'][zs[-1]] + feats['z_len'][zs[-1]])
    nz, hh, ww = grid.shape
    dz, dy, dx = grid.spacing
    margin = float(config['default_margin_mm'] if margin_mm is None else margin_mm)

    # z: whole slices (no sub-slice refinement); edges at slice edges
    z_lo = float(z_first) - margin / dz
    z_hi = float(z_end) + margin / dz

    ranges = [_to_range(z_lo, z_hi, nz)]
    # y (rows, axis 1) then x (columns, axis 2): sub-cell faces
    for axis, k, n, sp, valid in (
        (1, feats['kh'], hh, dy, feats['rows_valid']),
        (2, feats['kw'], ww, dx, feats['cols_valid']),
    ):
        c_lo, pin_lo, pout_lo = _face_probs(prob, comp, axis, 'lo', valid)
        c_hi, pin_hi, pout_hi = _face_probs(prob, comp, axis, 'hi', valid)
        lo_cell = float(c_lo + 1) - (pin_lo + pout_lo)  # cell-edge coordinates
        hi_cell = float(c_hi) + (pin_hi + pout_hi)
        lo_px = min(lo_cell * k, float(n)) - margin / sp
        hi_px = min(hi_cell * k, float(n)) + margin / sp
        ranges.append(_to_range(lo_px, hi_px, n))
    return Sector(grid, *ranges, found=True, confidence=conf, **kw_sector)
