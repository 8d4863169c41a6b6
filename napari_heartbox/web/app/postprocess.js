// Per-cell heart probabilities → heart box: the JavaScript port of
// napari_heartbox/model/postprocess.py, following docs/model.md §4 step by step.
//
// Conventions: prob is float32 [Z, 64, 64] in the volume's (z, y, x) order
// (z index 0 = most inferior slice). Cell (r, c) covers pixel rows
// [r·kH, (r+1)·kH) and columns [c·kW, (c+1)·kW), kH = ceil(H/64),
// kW = ceil(W/64); cells starting at or beyond H/W are padding and ignored.
// Edge coordinates: voxel (cell, slice) i spans [i, i+1), so a half-open range
// [a, b) has its faces at a and b. The threshold comparison is in float32;
// everything after it is float64 in the documented order; rounding to an edge
// is floor(v + 0.5).

export const CELLS = 64;

/** Valid (non-padding) cell rows and columns of an H×W image: ceil(H/kH), ceil(W/kW). */
export function validCells(H, W) {
  const kH = Math.ceil(H / CELLS);
  const kW = Math.ceil(W / CELLS);
  return [Math.ceil(H / kH), Math.ceil(W / kW)];
}

function toRange(loEdge, hiEdge, n) {
  let a = Math.min(Math.max(Math.floor(loEdge + 0.5), 0), n);
  let b = Math.min(Math.max(Math.floor(hiEdge + 0.5), 0), n);
  if (b <= a) {
    if (a >= n) a = n - 1;
    b = a + 1;
  }
  return [a, b];
}

function sigmoid(t) {
  if (t >= 0) return 1 / (1 + Math.exp(-t));
  const e = Math.exp(t);
  return e / (1 + e);
}

/**
 * The heart's cells: the largest 6-connected component of the positive cells,
 * plus the pieces of a heart split along z (docs/model.md §4 step 2).
 *
 * Components are visited by size (largest first; ties: the one whose first
 * cell in raster order comes first). The largest is kept; each other one is
 * kept too when it has at least joinFraction times the largest's cells, its
 * cell rows and columns lie inside those of the kept cells, and the number of
 * empty slices between the two z ranges times dz is at most joinGapMm. The
 * kept z range grows with each kept component (its rows and columns cannot:
 * a kept piece lies inside them). joinFraction null/undefined: only the
 * largest.
 *
 * @param {Uint8Array} mask [Z*64*64] 1 = positive
 * @returns {{cells: Int32Array}} flat indices of the kept cells in raster
 *   order (empty when no cell is positive).
 */
export function heartComponent(mask, nz, dz = 1, joinFraction = null, joinGapMm = 0) {
  const G = CELLS;
  const total = nz * G * G;
  const label = new Int32Array(total); // 0 = unvisited; labels follow raster order of first cells
  const stack = new Int32Array(total);
  const comps = []; // per label - 1: {label, size, ext: [z0, z1, r0, r1, c0, c1]} (half-open)
  let next = 0;
  for (let start = 0; start < total; start++) {
    if (!mask[start] || label[start]) continue;
    next += 1;
    let size = 0;
    let sp = 0;
    const ext = [Infinity, -Infinity, Infinity, -Infinity, Infinity, -Infinity];
    stack[sp++] = start;
    label[start] = next;
    while (sp > 0) {
      const i = stack[--sp];
      size += 1;
      const c = i % G;
      const r = ((i - c) / G) % G;
      const z = (i - c - r * G) / (G * G);
      ext[0] = Math.min(ext[0], z); ext[1] = Math.max(ext[1], z + 1);
      ext[2] = Math.min(ext[2], r); ext[3] = Math.max(ext[3], r + 1);
      ext[4] = Math.min(ext[4], c); ext[5] = Math.max(ext[5], c + 1);
      // the 6 face neighbours
      if (c > 0 && mask[i - 1] && !label[i - 1]) { label[i - 1] = next; stack[sp++] = i - 1; }
      if (c < G - 1 && mask[i + 1] && !label[i + 1]) { label[i + 1] = next; stack[sp++] = i + 1; }
      if (r > 0 && mask[i - G] && !label[i - G]) { label[i - G] = next; stack[sp++] = i - G; }
      if (r < G - 1 && mask[i + G] && !label[i + G]) { label[i + G] = next; stack[sp++] = i + G; }
      if (z > 0 && mask[i - G * G] && !label[i - G * G]) { label[i - G * G] = next; stack[sp++] = i - G * G; }
      if (z < nz - 1 && mask[i + G * G] && !label[i + G * G]) { label[i + G * G] = next; stack[sp++] = i + G * G; }
    }
    comps.push({ label: next, size, ext });
  }
  if (comps.length === 0) return { cells: new Int32Array(0) };
  const order = comps.slice().sort((a, b) => b.size - a.size || a.label - b.label);
  const best = order[0];
  const keep = new Uint8Array(next + 1);
  keep[best.label] = 1;
  let nKeep = best.size;
  if (joinFraction !== null) {
    const k = best.ext.slice();
    for (let j = 1; j < order.length; j++) {
      const e = order[j];
      if (e.size < joinFraction * best.size) break; // the rest are smaller still
      const x = e.ext;
      // half-open ranges: rows [x2, x3) within [k2, k3), columns [x4, x5) within [k4, k5)
      const inside = k[2] <= x[2] && x[3] <= k[3] && k[4] <= x[4] && x[5] <= k[5];
      const gap = Math.max(x[0] - k[1], k[0] - x[1], 0); // empty slices between the z ranges
      if (inside && gap * dz <= joinGapMm) {
        keep[e.label] = 1;
        nKeep += e.size;
        k[0] = Math.min(k[0], x[0]); // inside in-plane: only the z range grows
        k[1] = Math.max(k[1], x[1]);
      }
    }
  }
  const cells = new Int32Array(nKeep);
  let n = 0;
  for (let i = 0; i < total && n < nKeep; i++) if (label[i] && keep[label[i]]) cells[n++] = i;
  return { cells };
}

// (edge, p_in, p_out) of one in-plane face; axis 1 = rows, 2 = columns.
// p_in = max prob over the component's cells on its outermost row/column;
// p_out = max prob over the cells one step further out next to them (0 when
// that step leaves the valid cells).
function faceProbs(prob, cells, axis, side, nValid) {
  const G = CELLS;
  const coord = (i) => (axis === 1 ? ((i / G) | 0) % G : i % G);
  let edge = side === 'lo' ? G : -1;
  for (let k = 0; k < cells.length; k++) {
    const v = coord(cells[k]);
    if (side === 'lo' ? v < edge : v > edge) edge = v;
  }
  const step = side === 'lo' ? -1 : 1;
  const nb = edge + step;
  const hasOut = nb >= 0 && nb < nValid;
  const offset = step * (axis === 1 ? G : 1);
  let pIn = -Infinity;
  let pOut = hasOut ? -Infinity : 0;
  for (let k = 0; k < cells.length; k++) {
    const i = cells[k];
    if (coord(i) !== edge) continue;
    pIn = Math.max(pIn, prob[i]);
    if (hasOut) pOut = Math.max(pOut, prob[i + offset]);
  }
  return [edge, pIn, pOut];
}

// a scan shorter than this along z holds no heart box (model/postprocess.py MIN_Z_EXTENT_MM)
export const MIN_Z_EXTENT_MM = 20;

function fmtG(v) { return String(Number(v.toPrecision(4))); } // ~ Python's {:.4g}

/**
 * The heart box from the model output (docs/model.md §4).
 *
 * @param {Float32Array} prob [Z*64*64]
 * @param {number[]} shape [Z, H, W]
 * @param {number[]} spacing [dz, dy, dx] mm
 * @param {object} config the model card's postprocess section
 * @param {number} [marginMm] default config.default_margin_mm
 * @returns {{found: boolean, confidence: number, z?: number[], y?: number[], x?: number[],
 *            cells: number, volume_ml: number, mean_prob: number, note?: string}}
 */
export function sectorFromProb(prob, shape, spacing, config, marginMm) {
  const G = CELLS;
  const [nz, H, W] = shape;
  const [dz, dy, dx] = spacing;
  if (prob.length !== nz * G * G) throw new Error(`prob has ${prob.length} values, expected ${nz}x${G}x${G}`);
  const kH = Math.ceil(H / G);
  const kW = Math.ceil(W / G);
  const [rowsValid, colsValid] = validCells(H, W);
  // a scan too short along z holds no heart box (model/postprocess.py MIN_Z_EXTENT_MM)
  if (nz * dz < MIN_Z_EXTENT_MM) {
    const note = `the scan covers only ${fmtG(nz * dz)} mm along z (${nz} slice${nz !== 1 ? 's' : ''}); ` +
      `a heart box needs at least ${MIN_Z_EXTENT_MM} mm`;
    return { found: false, confidence: 0, note, cells: 0, volume_ml: 0, mean_prob: 0 };
  }
  // step 1: positive cells (float32 comparison)
  const thr = Math.fround(config.threshold);
  const mask = new Uint8Array(nz * G * G);
  for (let z = 0; z < nz; z++) for (let r = 0; r < rowsValid; r++) for (let c = 0; c < colsValid; c++) {
    const i = (z * G + r) * G + c;
    if (prob[i] >= thr) mask[i] = 1;
  }
  // step 2: the largest component, plus the pieces of a heart split along z
  const { cells: comp } = heartComponent(mask, nz, dz, config.join_fraction ?? null, config.join_gap_mm ?? 0);
  const cells = comp.length;
  if (cells === 0) return { found: false, confidence: 0, cells: 0, volume_ml: 0, mean_prob: 0 };
  // step 3: features, confidence, found
  const cellMl = (dz * (kH * dy) * (kW * dx)) / 1000;
  const volumeMl = cells * cellMl;
  let sum = 0;
  for (let k = 0; k < cells; k++) sum += prob[comp[k]]; // raster order
  const meanProb = sum / cells;
  const cc = config.confidence;
  const confidence = sigmoid(cc.bias + cc.w_mean_prob * meanProb + cc.w_log_volume_ml * Math.log(Math.max(volumeMl, 1e-3)));
  const feats = { cells, volume_ml: volumeMl, mean_prob: meanProb, confidence };
  // too small, or not confident enough (min_confidence may be absent: then 0)
  if (volumeMl < config.min_heart_volume_ml || confidence < (config.min_confidence ?? 0)) return { found: false, ...feats };
  const m = marginMm ?? config.default_margin_mm;
  // step 4: z faces (whole slices); cells are in raster order, so z is sorted
  const zmin = Math.floor(comp[0] / (G * G));
  const zmax = Math.floor(comp[cells - 1] / (G * G));
  const zr = toRange(zmin - m / dz, zmax + 1 + m / dz, nz);
  // step 5: in-plane faces with sub-cell precision; step 6: ranges
  const ranges = [];
  for (const [axis, k, n, sp, valid] of [[1, kH, H, dy, rowsValid], [2, kW, W, dx, colsValid]]) {
    const [cLo, pinLo, poutLo] = faceProbs(prob, comp, axis, 'lo', valid);
    const [cHi, pinHi, poutHi] = faceProbs(prob, comp, axis, 'hi', valid);
    const loCell = (cLo + 1) - (pinLo + poutLo);
    const hiCell = cHi + (pinHi + poutHi);
    const loPx = Math.min(loCell * k, n) - m / sp;
    const hiPx = Math.min(hiCell * k, n) + m / sp;
    ranges.push(toRange(loPx, hiPx, n));
  }
  return { found: true, z: zr, y: ranges[0], x: ranges[1], ...feats };
}
